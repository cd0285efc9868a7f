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

from hybridsearch.students.blocks import register_block
from hybridsearch.students.blocks.base import FFN, BlockContext, PostLNLayer, activation, require_positive


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


@register_block("cnn")
class CNNBlock(PostLNLayer):
    """Post-LN unit: ConvMixer + optional FFN (ffn=None: no FFN sublayer)."""

    def __init__(self, in_hidden: int, hidden: int, kernel: int, dilation: int = 1, separable: bool = False,
                 ffn: int | None = None, act: str = "gelu", dropout: float = 0.1, eps: float = 1e-12):
        mixer = ConvMixer(in_hidden, hidden, kernel, dilation, separable, act)
        super().__init__(mixer, FFN(hidden, ffn, act) if ffn else None, in_hidden, hidden, dropout, eps)

    @classmethod
    def check_spec(cls, spec, where: str) -> None:
        require_positive(spec, where, "kernel", "dilation")
        if spec.ffn is not None:
            require_positive(spec, where, "ffn")

    @classmethod
    def kwargs_from_spec(cls, spec, in_hidden, hidden, arch) -> dict:
        return dict(in_hidden=in_hidden, hidden=hidden, kernel=spec.kernel, dilation=spec.dilation,
                    separable=spec.separable, ffn=spec.ffn, act=arch.hidden_act, dropout=arch.dropout,
                    eps=arch.layer_norm_eps)
