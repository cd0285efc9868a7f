"""`bilstm`: a bidirectional LSTM (lstm_hidden per direction) projected back to H, plus optional FFN.

Two unidirectional `nn.LSTM`s; the backward one reads each sequence reversed
within its own length (a gather, no packing), so right padding never changes real
tokens, and the graph exports to ONNX and quantizes with dynamic int8.
"""

from __future__ import annotations

import torch
from torch import nn

from hybridsearch.students.blocks import register_block
from hybridsearch.students.blocks.base import FFN, BlockContext, PostLNLayer, require_positive


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first lengths[b] steps, leave the padding in place. (B, T, D) -> (B, T, D).

    The permutation is its own inverse.
    """
    T = x.shape[1]
    pos = torch.arange(T, device=x.device)[None, :]  # (1, T)
    rev = lengths[:, None] - 1 - pos  # (B, T)
    idx = torch.where(rev >= 0, rev, pos.expand_as(rev))  # (B, T)
    return x.gather(1, idx[..., None].expand_as(x))


class BiLSTMMixer(nn.Module):
    """H_in -> [fwd LSTM ; bwd LSTM] (2*lstm_hidden) -> Linear -> H."""

    def __init__(self, in_hidden: int, hidden: int, lstm_hidden: int):
        super().__init__()
        self.fwd = nn.LSTM(in_hidden, lstm_hidden, batch_first=True)
        self.bwd = nn.LSTM(in_hidden, lstm_hidden, batch_first=True)
        self.proj = nn.Linear(2 * lstm_hidden, hidden)

    def forward(self, x: torch.Tensor, ctx: BlockContext):
        x = x * ctx.mask[..., None].to(x.dtype)  # (B, T, H_in)
        lengths = ctx.mask.sum(dim=1)  # (B,)
        f, _ = self.fwd(x)  # (B, T, Hl)
        b, _ = self.bwd(reverse_within_length(x, lengths))  # (B, T, Hl), in reversed order
        b = reverse_within_length(b, lengths)
        return self.proj(torch.cat([f, b], dim=-1)), None  # (B, T, H)


@register_block("bilstm")
class BiLSTMBlock(PostLNLayer):
    """Post-LN unit: BiLSTMMixer + optional FFN (ffn=None: no FFN sublayer)."""

    def __init__(self, in_hidden: int, hidden: int, lstm_hidden: int, ffn: int | None = None,
                 act: str = "gelu", dropout: float = 0.1, eps: float = 1e-12):
        mixer = BiLSTMMixer(in_hidden, hidden, lstm_hidden)
        super().__init__(mixer, FFN(hidden, ffn, act) if ffn else None, in_hidden, hidden, dropout, eps)

    @classmethod
    def check_spec(cls, spec, where: str) -> None:
        require_positive(spec, where, "lstm_hidden")
        if spec.ffn is not None:
            require_positive(spec, where, "ffn")

    @classmethod
    def kwargs_from_spec(cls, spec, in_hidden, hidden, arch) -> dict:
        return dict(in_hidden=in_hidden, hidden=hidden, lstm_hidden=spec.lstm_hidden, ffn=spec.ffn,
                    act=arch.hidden_act, dropout=arch.dropout, eps=arch.layer_norm_eps)
