"""Registry-driven block tests (timm style): every registered block, several variants."""

from __future__ import annotations

import pytest
import torch

from hybridsearch.errors import UserError
from hybridsearch.students.arch import EmbeddingSpec, LayerSpec, StudentArch
from hybridsearch.students.blocks import (
    block_from_spec,
    block_info,
    create_block,
    get_block,
    list_blocks,
    register_block,
)
from hybridsearch.students.blocks.base import BlockContext

ARCH = StudentArch(embedding=EmbeddingSpec(vocab_size=50), hidden=16, layers=[LayerSpec("skip")],
                   dropout=0.0, attn_dropout=0.0)

# Each block's fields come from its descriptor: "plain" takes every field's first example,
# "options" its last (separable, dilation 2, local window, decomposition, no FFN, ...).
VARIANTS = [("plain", 0, 16), ("widen", 0, 24), ("options", -1, 16)]  # widen: residual projection 16 -> 24


def example_fields(name: str, which: int) -> dict:
    """LayerSpec fields of block `name` from its declared examples (`BlockField.examples`)."""
    return {f.name: f.examples[which] for f in block_info(name).fields if f.examples}


def cases():
    for name in list_blocks():
        for tag, which, out in VARIANTS:
            if block_info(name).free and out != 16:
                continue  # a free block (skip) keeps its width
            yield pytest.param(name, example_fields(name, which), out, id=f"{name}-{tag}")


def make(name, fields, out):
    torch.manual_seed(0)
    return block_from_spec(LayerSpec(block=name, **fields), 16, out, ARCH)


def batch():
    torch.manual_seed(1)
    x = torch.randn(3, 7, 16)  # (B, T, H_in)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    mask[2, 3:] = False
    tt = torch.zeros(3, 7, dtype=torch.long)
    tt[:, 4:] = 1
    return x, mask, tt


def test_registry_lists_the_four_blocks():
    assert {"transformer", "cnn", "bilstm", "skip"} <= set(list_blocks())
    with pytest.raises(UserError, match="unknown block type 'gru'"):
        create_block("gru")
    with pytest.raises(ValueError):
        register_block("cnn")(type("Other", (), {}))


@pytest.mark.parametrize("name,fields,out", list(cases()))
def test_forward_backward_grads(name, fields, out):
    block = make(name, fields, out)
    x, mask, tt = batch()
    x.requires_grad_(True)
    y, attn = block(x, BlockContext(mask=mask, token_type_ids=tt, output_attentions=True))
    assert y.shape == (3, 7, out)
    assert torch.isfinite(y).all()
    if block_info(name).attention:
        assert attn.shape[0] == 3 and attn.shape[2:] == (7, 7)  # (B, heads, T, T)
    else:
        assert attn is None
    (y * mask[..., None]).pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, p in block.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{name}: {pname} zero/NaN gradient"


@pytest.mark.parametrize("name,fields,out", list(cases()))
def test_padding_invariance(name, fields, out):
    block = make(name, fields, out).eval()
    x, mask, tt = batch()
    y, _ = block(x, BlockContext(mask=mask, token_type_ids=tt))
    for b in range(3):
        n = int(mask[b].sum())
        alone, _ = block(x[b: b + 1, :n], BlockContext(mask=mask[b: b + 1, :n], token_type_ids=tt[b: b + 1, :n]))
        torch.testing.assert_close(y[b: b + 1, :n], alone, atol=1e-5, rtol=1e-5)


def required_cases():
    for name in list_blocks():
        for f in block_info(name).fields:
            if f.required and f.type is int:
                yield pytest.param(name, f.name, id=f"{name}-{f.name}")


@pytest.mark.parametrize("name,required", list(required_cases()))
def test_check_spec_rejects_missing_sizes(name, required):
    get_block(name).check_spec(LayerSpec(block=name, **example_fields(name, 0)), "layer 0")  # the examples pass
    for bad in (0, None):
        spec = LayerSpec(block=name, **{**example_fields(name, 0), required: bad})
        with pytest.raises(UserError, match=f"layer 0: {required} must be a positive integer"):
            get_block(name).check_spec(spec, "layer 0")


@pytest.mark.parametrize("name", list_blocks())
def test_descriptor_fields_are_layer_spec_fields_with_examples(name):
    info = block_info(name)
    assert info.label[0] and info.color.startswith("#") and len(info.color) == 7
    for f in info.fields:
        assert hasattr(LayerSpec(block=name), f.name) and f.examples, (name, f.name)
    if not info.free:
        assert info.profile is not None and info.profile.components, name  # FLOPs / profiler rows


def test_local_window_and_decomposition_restrict_attention():
    fields = {**example_fields("transformer", 0), "local_window": 1, "attn_decomposition": True}
    block = make("transformer", fields, 16).eval()
    x, mask, tt = batch()
    _, attn = block(x, BlockContext(mask=mask, token_type_ids=tt, output_attentions=True))  # (B, nh, T, T)
    a = attn[0, 0]
    assert a[3, 5] == 0 and a[3, 1] == 0  # outside the window
    assert a[3, 4] == 0  # inside the window but another segment
    assert a[3, 0] > 0 and a[0, 2] > 0  # CLS is global
    assert attn[1, :, :5, 5:].abs().max() == 0  # real tokens never attend padding
