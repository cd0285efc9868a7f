"""Registry-driven block tests (timm style): every registered block, several variants."""

from __future__ import annotations

import pytest
import torch

from hybridsearch.errors import UserError
from hybridsearch.students.arch import EmbeddingSpec, LayerSpec, StudentArch
from hybridsearch.students.blocks import block_from_spec, create_block, get_block, list_blocks, register_block
from hybridsearch.students.blocks.base import BlockContext

ARCH = StudentArch(embedding=EmbeddingSpec(vocab_size=50), hidden=16, layers=[LayerSpec("skip")],
                   dropout=0.0, attn_dropout=0.0)

# A LayerSpec carrying every block's fields; each block reads only its own.
FULL = dict(heads=2, head_size=8, ffn=24, kernel=3, dilation=1, lstm_hidden=8)
VARIANTS = [
    ("plain", dict(), 16),
    ("widen", dict(), 24),  # residual projection 16 -> 24
    ("options", dict(separable=True, dilation=2, local_window=2, attn_decomposition=True, ffn=None), 16),
]


def cases():
    for name in list_blocks():
        for tag, extra, out in VARIANTS:
            if name == "skip" and out != 16:
                continue
            if name == "transformer" and extra.get("ffn", 1) is None:
                extra = {**extra, "ffn": 24}
            yield pytest.param(name, {**FULL, **extra}, out, id=f"{name}-{tag}")


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
    if name == "transformer":
        assert attn.shape == (3, fields["heads"], 7, 7)
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


@pytest.mark.parametrize("name", list_blocks())
def test_check_spec_rejects_missing_sizes(name):
    if name == "skip":
        return
    required = {"transformer": "heads", "cnn": "kernel", "bilstm": "lstm_hidden"}[name]
    spec = LayerSpec(block=name, **{**FULL, required: 0})
    with pytest.raises(UserError, match=f"{required} must be a positive integer"):
        get_block(name).check_spec(spec, "layer 0")


def test_local_window_and_decomposition_restrict_attention():
    block = make("transformer", {**FULL, "local_window": 1, "attn_decomposition": True}, 16).eval()
    x, mask, tt = batch()
    _, attn = block(x, BlockContext(mask=mask, token_type_ids=tt, output_attentions=True))  # (B, nh, T, T)
    a = attn[0, 0]
    assert a[3, 5] == 0 and a[3, 1] == 0  # outside the window
    assert a[3, 4] == 0  # inside the window but another segment
    assert a[3, 0] > 0 and a[0, 2] > 0  # CLS is global
    assert attn[1, :, :5, 5:].abs().max() == 0  # real tokens never attend padding
