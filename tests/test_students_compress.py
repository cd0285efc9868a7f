"""Compression primitives: fake quantization, bit packing, magnitude pruning, size accounting."""

from __future__ import annotations

import math

import pytest
import torch

from hybridsearch.errors import UserError
from hybridsearch.students import HybridStudent, StudentArch
from hybridsearch.students.arch import EmbeddingSpec, LayerSpec
from hybridsearch.students.compress import build_plan, clone, prepare
from hybridsearch.students.quant import (
    dequantize,
    fake_quant_act,
    fake_quant_weight,
    pack_bits,
    pack_codes,
    qmax,
    quantize,
    set_quantization,
    unpack_bits,
    unpack_codes,
)
from hybridsearch.students.size import entry_layout, param_count, size_bytes, tensor_costs
from hybridsearch.students.sparsity import make_permanent, prune_to_arch


def small_arch(bits=32, sparsity=0.0, act_bits=32, share=False, emb_bits=32) -> StudentArch:
    layer = dict(block="transformer", heads=2, head_size=8, ffn=32, weight_bits=bits, act_bits=act_bits,
                 sparsity=sparsity)
    return StudentArch(
        embedding=EmbeddingSpec(vocab_size=40, size=None, unk_id=1, max_positions=16, weight_bits=emb_bits),
        hidden=16,
        layers=[LayerSpec(**layer), LayerSpec(**layer)],
        share_groups=[[0, 1]] if share else [],
        dropout=0.0,
        attn_dropout=0.0,
    )


@pytest.mark.parametrize("bits", [8, 4, 3, 2])
def test_fake_quant_equals_integer_codes_times_scale(bits):
    w = torch.randn(6, 10)
    q, scale = quantize(w, bits)
    assert q.dtype == torch.int8 and scale.shape == (6,)
    assert int(q.abs().max()) == qmax(bits)  # the largest weight of each row maps to the top code
    assert torch.equal(fake_quant_weight(w, bits), dequantize(q, scale))
    assert len(torch.unique(q)) <= 2 * qmax(bits) + 1
    err = (dequantize(q, scale) - w).abs().max()
    assert err <= scale.max() / 2 + 1e-6  # rounding error at most half a step


def test_fake_quant_straight_through_gradient_and_16_bits():
    w = torch.randn(4, 5, requires_grad=True)
    (fake_quant_weight(w, 4) * torch.arange(5.0)).sum().backward()
    assert torch.allclose(w.grad, torch.arange(5.0).expand(4, 5))
    h = fake_quant_weight(w, 16)
    assert torch.equal(h, w.detach().half().float())
    assert fake_quant_weight(w, 32) is w


@pytest.mark.parametrize("emb_bits", [8, 4, 16])
def test_quantized_embedding_lookup_equals_the_whole_quantized_table(emb_bits):
    """The student quantizes only the looked-up word rows (per-row scales): same values, same gradient."""
    from hybridsearch.students.model import _lookup

    torch.manual_seed(0)
    word = prepare(HybridStudent(small_arch(emb_bits=emb_bits))).embeddings.word
    original = word.parametrizations.weight.original
    ids = torch.randint(0, 40, (3, 7))
    upstream = torch.randn(3, 7, 16)
    grads = []
    for lookup in (lambda: _lookup(word, ids), lambda: word(ids)):  # rows only / the whole table
        out = lookup()
        (out * upstream).sum().backward()
        grads.append((out.detach(), original.grad.clone()))
        original.grad = None
    (lazy, lazy_grad), (full, full_grad) = grads
    assert torch.equal(lazy, full)
    assert torch.allclose(lazy_grad, full_grad, rtol=1e-5, atol=1e-7)  # summation order differs for repeated ids
    assert not torch.equal(lazy, original.detach()[ids])  # the lookup really is quantized


@pytest.mark.parametrize("levels", [128, 256])
def test_activation_fake_quant_grid(levels):
    x = torch.randn(3, 7, 11) * 3
    y = fake_quant_act(x, levels)
    step = (x.max() - x.min().clamp(max=0)) / (levels - 1)
    assert (y - x).abs().max() <= step / 2 + 1e-5
    assert len(torch.unique(y)) <= levels


def test_activation_fake_quant_matches_torch_dynamic_int8_linear():
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.manual_seed(0)
    lin = torch.nn.Linear(32, 8)
    x = torch.randn(4, 32) * 2 + 0.5
    q, scale = quantize(lin.weight, 8)
    qlin = quantize_dynamic(torch.nn.Sequential(lin), {torch.nn.Linear: per_channel_dynamic_qconfig})[0]
    zero = torch.zeros(8, dtype=torch.long)
    qlin.set_weight_bias(torch._make_per_channel_quantized_tensor(q, scale.double(), zero, 0), lin.bias)
    simulated = torch.nn.functional.linear(fake_quant_act(x), dequantize(q, scale), lin.bias)
    coarse = torch.nn.functional.linear(fake_quant_act(x, 256), dequantize(q, scale), lin.bias)
    err = (qlin(x) - simulated).abs().max()
    assert err < 1e-4 < (qlin(x) - coarse).abs().max()


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("count", [1, 7, 13, 64])
def test_pack_unpack_round_trip(bits, count):
    values = torch.randint(0, 2**bits, (count,))
    packed = pack_bits(values, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(count * bits / 8)
    assert torch.equal(unpack_bits(packed, bits, count), values)


@pytest.mark.parametrize("bits", [8, 4, 3, 2])
def test_pack_codes_round_trip(bits):
    q = torch.randint(-qmax(bits), qmax(bits) + 1, (33,), dtype=torch.int8)
    assert torch.equal(unpack_codes(pack_codes(q, bits), bits, 33), q)


def test_plan_assigns_bits_per_layer_and_keeps_head_float():
    arch = small_arch(bits=4, sparsity=0.5, emb_bits=8)
    plan = build_plan(HybridStudent(arch), arch)
    by_name = {e.name: e for e in plan.entries}
    assert by_name["embeddings.word.weight"].bits == 8 and by_name["embeddings.word.weight"].sparsity == 0
    assert by_name["layers.0.mixer.query.weight"].bits == 4
    assert by_name["layers.1.ffn.down.weight"].sparsity == 0.5
    assert not any(n.startswith(("pooler", "classifier")) for n in by_name)
    assert "classifier.weight" in plan.other and "layers.0.norm1.weight" in plan.other


def test_quantization_switch_gives_the_float_function_and_back():
    torch.manual_seed(0)
    arch = small_arch(bits=8, act_bits=8, emb_bits=8)
    float_model = HybridStudent(arch).eval()
    student = prepare(clone_plain(float_model)).eval()
    ids = torch.randint(2, 40, (2, 9))
    with torch.no_grad():
        quantized, reference = student(ids).logits, float_model(ids).logits
        set_quantization(student, False)
        off = student(ids).logits
        set_quantization(student, True)
        on = student(ids).logits
    assert torch.allclose(off, reference, atol=1e-6)  # off: weights and activations untouched
    assert not torch.equal(quantized, reference) and torch.equal(on, quantized)


def clone_plain(model: HybridStudent) -> HybridStudent:
    copy = HybridStudent(model.arch)
    copy.load_state_dict(model.state_dict())
    return copy


def test_pruning_exact_counts_and_masks_persist_through_training():
    torch.manual_seed(0)
    arch = small_arch(bits=8, sparsity=0.5, act_bits=8)
    student = prepare(HybridStudent(arch), prune_backend="torch")
    plan = build_plan(student, arch)
    for e in plan.entries:
        if e.sparsity:
            assert e.pruned == int(0.5 * e.numel)
            assert int((getattr(e.module, e.param) == 0).sum()) >= e.pruned
    opt = torch.optim.SGD(student.parameters(), lr=0.5)
    ids = torch.randint(2, 40, (2, 9))
    student.train()
    loss = torch.nn.functional.cross_entropy(student(ids).logits, torch.tensor([0, 1]))
    loss.backward()
    opt.step()
    q = student.layers["0"].mixer.query
    assert torch.all(q.weight[~q.parametrizations.weight[0].mask] == 0)  # masked weights still zero
    plain = make_permanent(clone(student))
    assert not hasattr(plain.layers["0"].mixer.query, "parametrizations")
    assert torch.equal(plain.layers["0"].mixer.query.weight, q.weight.detach())
    assert hasattr(student.layers["0"].mixer.query, "parametrizations")  # the original is untouched


def test_nni_level_pruner_gives_the_magnitude_masks():
    pytest.importorskip("nni")
    torch.manual_seed(1)
    arch = small_arch(sparsity=0.3)
    a = HybridStudent(arch)
    b = clone(a)
    masks_nni = prune_to_arch(a, backend="nni")
    masks_torch = prune_to_arch(b, backend="torch")
    assert masks_nni.keys() == masks_torch.keys() and masks_nni
    for k in masks_nni:
        assert torch.equal(masks_nni[k], masks_torch[k]), k


def test_unknown_pruning_backend_is_a_user_error():
    with pytest.raises(UserError, match="backend"):
        prune_to_arch(HybridStudent(small_arch(sparsity=0.5)), backend="magic")


def test_size_accounting_by_hand():
    arch = small_arch(bits=8, sparsity=0.5)
    costs = {c.name: c for c in tensor_costs(arch)}
    q = costs["layers.0.mixer.query.weight"]  # (16, 16) at 8 bits, 128 of 256 kept
    assert q.layout == "bitmap" and q.nbytes == 256 // 8 + 128 + 4 * 16
    assert costs["layers.0.mixer.query.bias"].nbytes == 4 * 16
    assert costs["embeddings.word.weight"].nbytes == 40 * 16 * 4
    assert entry_layout(1000, 0, 4) == ("dense", 500)
    assert entry_layout(1000, 100, 2) == ("dense", 250)  # a bitmap would cost 125 + 225
    assert size_bytes(arch) == sum(c.nbytes for c in costs.values())
    n_params = sum(p.numel() for p in HybridStudent(arch).parameters())
    pruned = sum(e.pruned for e in build_plan(HybridStudent(arch), arch).entries)
    assert param_count(arch) == n_params - pruned


def test_size_shrinks_with_bits_and_counts_shared_layers_once():
    s32, s8, s4 = (size_bytes(small_arch(bits=b, emb_bits=b)) for b in (32, 8, 4))
    assert s32 > s8 > s4
    shared, separate = size_bytes(small_arch(share=True)), size_bytes(small_arch())
    one_layer = small_arch()
    one_layer.layers = one_layer.layers[:1]
    assert shared == size_bytes(one_layer) < separate


def test_param_count_of_the_teacher_shape_equals_transformers_bert(tmp_path):
    from hybridsearch.students.init import arch_from_teacher_config
    from tests.conftest import make_tiny_bert

    model, tokenizer, _ = make_tiny_bert(tmp_path, save=False)
    arch = arch_from_teacher_config(model.config, tokenizer)
    assert param_count(arch) == sum(p.numel() for p in model.parameters())
    assert size_bytes(arch) == 4 * param_count(arch)  # all float32, no buffers
