"""A new block is one file + one import; a new loss is one function: everything else reads the registries.

The toy block `toyconv` is written to tmp_path as a real module and imported (no other file
edited, no table patched); the space, arch validation, the model, the latency table, FLOPs,
the profiler and the report must all pick it up from its descriptor.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import yaml

from hybridsearch.errors import UserError
from hybridsearch.students.blocks import block_info, list_blocks, unregister_block

TOY_BLOCK = '''
"""`toyconv`: a depthwise 1-D convolution (odd kernel) + projection in the post-LN unit, no FFN."""

from __future__ import annotations

from torch import nn

from hybridsearch.students.blocks import BlockField, BlockInfo, BlockProfile, register_block
from hybridsearch.students.blocks.base import BlockContext, PostLNLayer


class ToyMixer(nn.Module):
    def __init__(self, in_hidden: int, hidden: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(in_hidden, in_hidden, kernel, padding=kernel // 2, groups=in_hidden)
        self.proj = nn.Linear(in_hidden, hidden)

    def forward(self, x, ctx: BlockContext):
        x = x * ctx.mask[..., None].to(x.dtype)  # (B, T, H_in), padding zeroed
        y = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T, H_in)
        return self.proj(y), None  # (B, T, H)


def _latency_macs(v, B, T):
    return {"fp": B * T * v["in"] * v["k"], "lin": B * T * v["in"] * v["out"]}


def _flops(spec, h_in, h, B, T, ew):
    N = B * T
    return {"toyconv": (2 * N * h_in * spec.kernel + 2 * N * h_in * h, N * h_in + N * h)}


def _map_parts(mixer, mp, put):
    put(mp, "toyconv", "toy mixer's own time (mask, transposes)", is_glue=True)
    put(f"{mp}.conv", "toyconv", "depthwise conv")
    put(f"{mp}.proj", "toyconv", "projection Linear")


INFO = BlockInfo(
    fields=(BlockField("kernel", required=True, values=(3, 5), tag="k", examples=(3, 5)),),
    label=("toy", "kernel", "k{}"), color="#8172B2", cost_rank=1, latency_macs=_latency_macs,
    profile=BlockProfile(components=(("toyconv", "Toy depthwise-conv mixer", "toy mixer"),),
                         map_parts=_map_parts, flops=_flops),
)


@register_block("toyconv", INFO)
class ToyConvBlock(PostLNLayer):
    def __init__(self, in_hidden: int, hidden: int, kernel: int, dropout: float = 0.1, eps: float = 1e-12):
        super().__init__(ToyMixer(in_hidden, hidden, kernel), None, in_hidden, hidden, dropout, eps)

    @classmethod
    def kwargs_from_spec(cls, spec, in_hidden, hidden, arch) -> dict:
        return dict(in_hidden=in_hidden, hidden=hidden, kernel=spec.kernel, dropout=arch.dropout,
                    eps=arch.layer_norm_eps)
'''

SPACE = """
depth: [1, 2]
arch: {hidden: 16, act_bits: [32, 8]}
emb: {size: 16}
layer:
  block: [transformer, toyconv]
  heads: {value: 2, when: {block: transformer}}
  head_size: {value: 8, when: {block: transformer}}
  ffn: {value: 32, when: {block: transformer}}
  kernel: {choices: [3, 5], when: {block: toyconv}}
  weight_bits: [32, 8]
recipe: {steps: 1}
"""


@pytest.fixture
def toyconv(tmp_path):
    """The toy block module, imported from a file; unregistered afterwards."""
    path = tmp_path / "toyconv_block.py"
    path.write_text(TOY_BLOCK)
    spec = importlib.util.spec_from_file_location("toyconv_block", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        unregister_block("toyconv")
        sys.modules.pop(spec.name, None)
    assert "toyconv" not in list_blocks()


def _space(text=SPACE, path="toy.yaml"):
    from hybridsearch.search.space import parse_space

    return parse_space(yaml.safe_load(text), path)


def _archs(space, n=12):
    from hybridsearch.measure.latency_calib import freeze_base
    from hybridsearch.search.freeze import FreezeBase

    base = FreezeBase(**freeze_base(type("Cfg", (), {"vocab_size": 45, "max_position_embeddings": 64})))
    return [space.freeze(space.random_sample(seed), base)[0] for seed in range(n)]


def _toy_arch(*kernels, hidden=16):
    from hybridsearch.students.arch import EmbeddingSpec, LayerSpec, StudentArch

    layers = [LayerSpec(block="toyconv", kernel=k) for k in kernels]
    layers.append(LayerSpec(block="transformer", heads=2, head_size=8, ffn=32, hidden=hidden + 8))
    return StudentArch(embedding=EmbeddingSpec(vocab_size=45, max_positions=64), hidden=hidden, layers=layers,
                       dropout=0.0, attn_dropout=0.0)


def test_space_validates_the_new_blocks_declared_fields(toyconv, tmp_path):
    space = _space()
    assert "toyconv" in space.layer["block"].values
    archs = _archs(space)
    kernels = {spec.kernel for a in archs for spec in a.layers if spec.block == "toyconv"}
    assert kernels == {3, 5}
    for arch in archs:
        arch.validate(is_pair=False)
        assert all(s.heads is None for s in arch.layers if s.block == "toyconv")  # fields it does not declare
    bad = {
        "heads: {value: 2, when: {block: transformer}}": "heads: {value: 2, when: {block: [transformer, toyconv]}}",
        "kernel: {choices: [3, 5], when: {block: toyconv}}": "kernel: {choices: [3, 4], when: {block: toyconv}}",
    }
    expected = ["key 'layer.heads' is not a field of block 'toyconv'", "4 for block 'toyconv' must be one of [3, 5]"]
    for (old, new), want in zip(bad.items(), expected):
        path = tmp_path / "bad.yaml"
        path.write_text(SPACE.replace(old, new))
        from hybridsearch.search.space import load_space

        with pytest.raises(UserError) as err:
            load_space(str(path))
        msg = str(err.value)
        assert str(path) in msg and want in msg and ";" in msg and "\n" not in msg, msg
    arch = _toy_arch(4)
    with pytest.raises(UserError, match=r"layer 0 \(toyconv\): kernel must be one of \[3, 5\]"):
        arch.validate()


def test_student_with_the_new_block_builds_runs_and_learns(toyconv):
    import tests.test_blocks as registry_tests
    from hybridsearch.students.model import HybridStudent

    for which, out in ((0, 16), (0, 24), (-1, 16)):  # the registry-driven block tests, on the new block
        fields = registry_tests.example_fields("toyconv", which)
        registry_tests.test_forward_backward_grads("toyconv", fields, out)
        registry_tests.test_padding_invariance("toyconv", fields, out)
    torch.manual_seed(0)
    student = HybridStudent(_toy_arch(3, 5).validate())
    ids = torch.randint(0, 45, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    out = student(ids, attention_mask=mask, output_hidden_states=True)
    assert out.logits.shape == (2, 2) and torch.isfinite(out.logits).all()
    out.logits.pow(2).sum().backward()
    assert all(p.grad is not None for p in student.parameters())


def test_latency_table_enumerates_and_fits_the_new_block(toyconv, tiny_bert):
    from hybridsearch.measure import latency_calib
    from hybridsearch.measure.latency_model import LatencyTable, arch_keys, part_features

    model = tiny_bert[0]
    space = _space()
    base = latency_calib.freeze_base(model.config)
    parts = latency_calib.space_parts(space, base)
    toy_keys = sorted(k for k in parts if k.startswith("layer|toyconv|"))
    assert toy_keys == ["layer|toyconv|16>16|k3|q0", "layer|toyconv|16>16|k3|q1",
                        "layer|toyconv|16>16|k5|q0", "layer|toyconv|16>16|k5|q1"]
    kind, x = part_features(toy_keys[0], (1, 8))
    assert kind == "toyconv" and x[1] > 0 and x[2] == 0  # float MACs only on the q0 path
    for _, arch in latency_calib.random_archs(space, base, range(40)):
        assert set(arch_keys(arch)) <= set(parts)
    table = latency_calib.calibrate(model, space, shape=(1, 8), threads=1, repeats=2, warmup=1, n_students=3,
                                    progress=False, log=lambda *_: None)
    assert "toyconv" in table.fits and table.entries.keys() == parts.keys()
    unseen = _toy_arch(5, hidden=24)  # another width: not in the table, predicted by the toyconv fit
    unseen.embedding.vocab_size = model.config.vocab_size
    pred = LatencyTable(**table.to_dict()).predict(unseen)
    assert "layer|toyconv|24>24|k5|q0" in pred.fallback and pred.latency_ms > 0


def test_flops_profile_and_report_read_the_descriptor(toyconv):
    from hybridsearch.measure.components import map_components, param_breakdown
    from hybridsearch.measure.flops import component_flops, counted_matmul_flops
    from hybridsearch.measure.profiler import make_inputs
    from hybridsearch.report import _layer_label, block_color, describe, text_color
    from hybridsearch.students.model import HybridStudent

    student = HybridStudent(_toy_arch(3, 5)).eval()
    cmap = map_components(student)
    assert "toyconv" in cmap.names() and cmap.names().index("toyconv") > cmap.names().index("attn_out")
    counts = param_breakdown(student, cmap)
    assert counts["toyconv"] == sum(p.numel() for i in ("0", "1") for p in student.layers[i].mixer.parameters())
    counted = counted_matmul_flops(student, cmap, make_inputs(cmap, 1, 8, "cpu"))
    analytic = component_flops(student.arch, 8, 1)
    for name in ("toyconv", "projection", "attn_qkv", "ffn"):
        assert analytic[name].matmul == pytest.approx(counted[name], rel=0.01), name
    params = {"depth": 2, "layer_0.block": "toyconv", "layer_0.kernel": 5, "layer_1.block": "skip"}
    assert _layer_label(params, 0) == "toy k5" and describe(params).startswith("toy k5 | skip")
    assert block_color("toyconv") == block_info("toyconv").color == "#8172B2"
    assert text_color(block_color("toyconv")) == "white" and text_color(block_color("skip")) == "black"


def test_a_registered_loss_is_accepted_by_recipe_space_and_sum(toyconv):
    from hybridsearch.distill.losses import (
        DistillLoss,
        hidden_mse,
        list_losses,
        register_loss,
        unregister_loss,
    )
    from hybridsearch.distill.recipe import DistillRecipe

    @register_loss("last_mse", hidden=lambda pairs: [(-1, -1)])
    def last_mse(b):
        """MSE of the last hidden states (a toy KD-EO)."""
        return hidden_mse(b.student.hidden_states[-1], b.teacher.hidden_states[-1], b.mask, b.proj(-1))

    try:
        assert list_losses()[-1] == "last_mse"
        recipe = DistillRecipe(losses=["kd_ol", "last_mse"], weights={"last_mse": 2.0}).validate()
        assert recipe.needs_teacher_states() and not recipe.needs_attention() and not recipe.needs_layer_map()
        assert not DistillRecipe(losses=["kd_ol"]).needs_teacher_states()
        space = _space(SPACE.replace("recipe: {steps: 1}", "recipe: {steps: 1, losses: [kd_ol+last_mse], "
                                     "weight_last_mse: 0.5}"))
        _, frozen = space.freeze(space.random_sample(0))
        assert frozen.losses == ["kd_ol", "last_mse"] and frozen.weights == {"last_mse": 0.5}
        loss = DistillLoss(recipe, student_widths=[4, 4], teacher_width=6, teacher_layers=2)
        assert set(loss.proj) == {"-1"} and loss.teacher_layers() == [-1]
        S = type("Out", (), {})
        s_out, t_out = S(), S()
        s_out.logits, s_out.hidden_states = torch.randn(3, 2), (torch.randn(3, 5, 4),) * 2
        t_out.hidden_states = (torch.randn(3, 5, 6),) * 3
        total, parts = loss(s_out, torch.randn(3, 2), teacher_out=t_out, mask=torch.ones(3, 5))
        assert set(parts) == {"kd_ol", "last_mse"}
        assert total.item() == pytest.approx((parts["kd_ol"] + 2.0 * parts["last_mse"]).item(), rel=1e-6)
    finally:
        unregister_loss("last_mse")
    assert "last_mse" not in list_losses()
    with pytest.raises(UserError, match="unknown loss 'last_mse'"):
        DistillRecipe(losses=["last_mse"]).validate()
