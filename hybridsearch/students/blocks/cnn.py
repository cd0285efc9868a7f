"""`cnn`: a token-mixing 1-D convolution (optionally depthwise-separable) plus FFN.

The full convolution is a plain `nn.Linear` over the k dilated neighbours
concatenated (so compression can wrap it like any Linear); the separable one is a
depthwise `nn.Conv1d` followed by a pointwise `nn.Linear`. Padded positions are
zeroed before mixing, so padding on the right never changes real tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hybridsearch.students.blocks import BlockField, BlockInfo, BlockProfile, register_block
from hybridsearch.students.blocks.base import FFN, BlockContext, PostLNLayer, activation


class ConvMixer(nn.Module):
    """'Same'-padded dilated convolution over time, H_in -> H, then the activation."""

    def __init__(self, in_hidden: int, hidden: int, kernel: int, dilation: int = 1, separable: bool = False,
                 act: str = "gelu"):
        super().__init__()
        self.kernel, self.dilation, self.separable = kernel, dilation, separable
        total = dilation * (kernel - 1)
        self.pad = (total // 2, total - total // 2)  # (left, right) time padding
        if separable:
            self.depthwise = nn.Conv1d(in_hidden, in_hidden, kernel, dilation=dilation, groups=in_hidden)
            self.pointwise = nn.Linear(in_hidden, hidden)
        else:
            self.conv = nn.Linear(kernel * in_hidden, hidden)  # weight (H, k*H_in): tap j at columns j*H_in..
        self.act = activation(act)

    def forward(self, x: torch.Tensor, ctx: BlockContext):
        T = x.shape[1]
        x = x * ctx.mask[..., None].to(x.dtype)  # (B, T, H_in), padding zeroed
        xp = F.pad(x, (0, 0, *self.pad))  # (B, T + total, H_in)
        if self.separable:
            y = self.depthwise(xp.transpose(1, 2)).transpose(1, 2)  # (B, T, H_in)
            y = self.pointwise(y)  # (B, T, H)
        else:
            d = self.dilation
            taps = torch.cat([xp[:, j * d: j * d + T] for j in range(self.kernel)], dim=-1)  # (B, T, k*H_in)
            y = self.conv(taps)  # (B, T, H)
        return self.act(y), None


# ---- descriptor: what measure/, search/ and the report read -------------------------------------
def _latency_macs(v: dict, B: int, T: int) -> dict:
    """Latency-fallback features of the conv mixer (v: parsed key, tags k, dl, sep)."""
    N = B * T
    if v["sep"]:
        return {"fp": N * v["in"] * v["k"], "lin": N * v["in"] * v["out"]}  # the depthwise conv stays float
    return {"lin": N * v["k"] * v["in"] * v["out"]}


def _flops(spec, h_in: int, h: int, B: int, T: int, ew) -> dict:
    """Analytic FLOPs of ConvMixer: {component: (matmul, other)}."""
    N, k = B * T, spec.kernel
    other = N * h_in + N * h * ew.activation  # padding mask, activation
    if spec.separable:  # depthwise conv, pointwise Linear, their biases
        return {"cnn": (2 * N * h_in * k + 2 * N * h_in * h, other + N * h_in + N * h)}
    return {"cnn": (2 * N * k * h_in * h, other + N * h)}


def _map_parts(mixer, mp: str, put) -> None:
    """Profiler rows of ConvMixer's modules."""
    put(mp, "cnn", "conv mixer's own time (mask, padding, taps, activation)", is_glue=True)
    for part in ("conv", "depthwise", "pointwise"):
        if hasattr(mixer, part):
            put(f"{mp}.{part}", "cnn", f"{part} module")


INFO = BlockInfo(
    fields=(
        BlockField("kernel", required=True, tag="k", examples=(3,)),
        BlockField("dilation", required=True, default=1, tag="dl", examples=(1, 2)),
        BlockField("separable", bool, default=False, tag="sep", examples=(False, True)),
        BlockField("ffn", tag="f", examples=(24, None)),
    ),
    label=("conv", "kernel", "k{}"),
    color="#55A868",
    cost_rank=1,
    latency_macs=_latency_macs,
    profile=BlockProfile(components=(("cnn", "CNN token mixer (conv + activation)", "CNN mixer"),),
                         map_parts=_map_parts, flops=_flops),
)


@register_block("cnn", INFO)
class CNNBlock(PostLNLayer):
    """Post-LN unit: ConvMixer + optional FFN (ffn=None: no FFN sublayer)."""

    def __init__(self, in_hidden: int, hidden: int, kernel: int, dilation: int = 1, separable: bool = False,
                 ffn: int | None = None, act: str = "gelu", dropout: float = 0.1, eps: float = 1e-12):
        mixer = ConvMixer(in_hidden, hidden, kernel, dilation, separable, act)
        super().__init__(mixer, FFN(hidden, ffn, act) if ffn else None, in_hidden, hidden, dropout, eps)

    @classmethod
    def kwargs_from_spec(cls, spec, in_hidden, hidden, arch) -> dict:
        return dict(in_hidden=in_hidden, hidden=hidden, kernel=spec.kernel, dilation=spec.dilation,
                    separable=spec.separable, ffn=spec.ffn, act=arch.hidden_act, dropout=arch.dropout,
                    eps=arch.layer_norm_eps)
