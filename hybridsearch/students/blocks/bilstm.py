"""`bilstm`: a bidirectional LSTM (lstm_hidden per direction) projected back to H, plus optional FFN.

Two unidirectional `nn.LSTM`s; the backward one reads each sequence reversed
within its own length (a gather, no packing), so right padding never changes real
tokens, and the graph exports to ONNX and quantizes with dynamic int8.
"""

from __future__ import annotations

import torch
from torch import nn

from hybridsearch.students.blocks import BlockField, BlockInfo, BlockProfile, register_block
from hybridsearch.students.blocks.base import FFN, BlockContext, PostLNLayer


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


# ---- descriptor: what measure/, search/ and the report read -------------------------------------
def _latency_macs(v: dict, B: int, T: int) -> dict:
    """Latency-fallback features of the BiLSTM mixer (v: parsed key, tag l): 2 directions, T steps each."""
    N, hl = B * T, v["l"]
    return {"lin": 2 * N * 4 * hl * (v["in"] + hl) + N * 2 * hl * v["out"], "steps": 2.0 * T}


def _flops(spec, h_in: int, h: int, B: int, T: int, ew) -> dict:
    """Analytic FLOPs of BiLSTMMixer: {component: (matmul, other)}."""
    N, hl = B * T, spec.lstm_hidden
    # per direction and token: input and recurrent matmuls, 2 biases, 5 gate activations, cell update
    matmul = 2 * N * (2 * h_in * 4 * hl + 2 * hl * 4 * hl) + 2 * N * 2 * hl * h  # + projection
    other = 2 * N * (2 * 4 * hl + 5 * hl * ew.activation + 4 * hl) + N * h_in + N * h
    return {"bilstm": (matmul, other)}


def _map_parts(mixer, mp: str, put) -> None:
    """Profiler rows of BiLSTMMixer's modules."""
    put(mp, "bilstm", "BiLSTM mixer's own time (mask, reversal, concat)", is_glue=True)
    put(f"{mp}.fwd", "bilstm", "forward LSTM")
    put(f"{mp}.bwd", "bilstm", "backward LSTM")
    put(f"{mp}.proj", "bilstm", "projection Linear 2*lstm_hidden -> H")


INFO = BlockInfo(
    fields=(
        BlockField("lstm_hidden", key="lstm", required=True, tag="l", examples=(8,)),
        BlockField("ffn", tag="f", examples=(24, None)),
    ),
    label=("lstm", "lstm", "{}"),
    color="#C44E52",
    cost_rank=2,
    latency_macs=_latency_macs,
    profile=BlockProfile(components=(("bilstm", "BiLSTM token mixer (2 LSTMs + projection)", "BiLSTM mixer"),),
                         map_parts=_map_parts, flops=_flops,
                         uncounted=frozenset({"bilstm"})),  # LSTM kernels: invisible to the counter on CPU
)


@register_block("bilstm", INFO)
class BiLSTMBlock(PostLNLayer):
    """Post-LN unit: BiLSTMMixer + optional FFN (ffn=None: no FFN sublayer)."""

    def __init__(self, in_hidden: int, hidden: int, lstm_hidden: int, ffn: int | None = None,
                 act: str = "gelu", dropout: float = 0.1, eps: float = 1e-12):
        mixer = BiLSTMMixer(in_hidden, hidden, lstm_hidden)
        super().__init__(mixer, FFN(hidden, ffn, act) if ffn else None, in_hidden, hidden, dropout, eps)

    @classmethod
    def kwargs_from_spec(cls, spec, in_hidden, hidden, arch) -> dict:
        return dict(in_hidden=in_hidden, hidden=hidden, lstm_hidden=spec.lstm_hidden, ffn=spec.ffn,
                    act=arch.hidden_act, dropout=arch.dropout, eps=arch.layer_norm_eps)
