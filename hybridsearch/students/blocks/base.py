"""Shared block parts: the block interface, the per-forward context, FFN and the
generic post-LN residual layer (parts passed in, torchtune style).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from hybridsearch.students.blocks.info import BlockInfo


def activation(name: str):
    """Elementwise activation function by BERT config name."""
    return {
        "gelu": F.gelu,
        "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
        "relu": F.relu,
        "tanh": torch.tanh,
    }[name]


def tracing() -> bool:
    """True under TorchScript tracing, torch.compile or torch.export: no data-dependent Python branches."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.compiler.is_exporting()


@dataclass
class BlockContext:
    """What every block sees besides its input, built once per forward.

    mask: (B, T) bool, True at real tokens (padding is on the right).
    token_type_ids: (B, T) long segment ids.
    output_attentions: whether transformer blocks must return their attention maps.
    cache: per-forward memo (e.g. attention masks shared by layers of one shape).
    """

    mask: torch.Tensor
    token_type_ids: torch.Tensor
    output_attentions: bool = False
    cache: dict = field(default_factory=dict)


class Block(nn.Module):
    """Base class of registered blocks; `register_block` sets `block_name` and `info` (its descriptor)."""

    block_name = "?"
    info = BlockInfo()

    @classmethod
    def check_spec(cls, spec, where: str) -> None:
        """Raise UserError if `spec` lacks or misuses a field this block needs (default: its declared fields)."""
        for f in cls.info.fields:
            f.check(getattr(spec, f.name), where)

    @classmethod
    def kwargs_from_spec(cls, spec, in_hidden: int, hidden: int, arch) -> dict:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, ctx: BlockContext):  # (B, T, H_in) -> ((B, T, H), attn | None)
        raise NotImplementedError


class FFN(nn.Module):
    """Position-wise feed-forward: up (H -> F), activation, down (F -> H)."""

    def __init__(self, hidden: int, ffn: int, act: str = "gelu"):
        super().__init__()
        self.up = nn.Linear(hidden, ffn)
        self.down = nn.Linear(ffn, hidden)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, H)
        return self.down(self.act(self.up(x)))


class PostLNLayer(Block):
    """BERT's post-LN unit around any token mixer:

        h = LN1(residual(x) + drop(mixer(x)))       # residual = Linear(H_in, H) if widths differ
        y = LN2(h + drop(ffn(h)))                   # when an FFN is given

    `mixer(x, ctx) -> (m (B, T, H), attn | None)`; `ffn` is a module (B, T, H) -> (B, T, H) or None.
    """

    def __init__(self, mixer: nn.Module, ffn: nn.Module | None, in_hidden: int, hidden: int,
                 dropout: float = 0.1, eps: float = 1e-12):
        super().__init__()
        self.mixer = mixer
        self.residual = nn.Linear(in_hidden, hidden) if in_hidden != hidden else None
        self.norm1 = nn.LayerNorm(hidden, eps=eps)
        self.ffn = ffn
        self.norm2 = nn.LayerNorm(hidden, eps=eps) if ffn is not None else None
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, ctx: BlockContext):
        m, attn = self.mixer(x, ctx)  # (B, T, H)
        res = self.residual(x) if self.residual is not None else x  # (B, T, H)
        h = self.norm1(res + self.drop(m))
        if self.ffn is not None:
            h = self.norm2(h + self.drop(self.ffn(h)))
        return h, attn  # (B, T, H), (B, nh, T, T) | None
