"""`skip`: the encoder unit is dropped; its input passes through unchanged."""

from __future__ import annotations

import torch

from hybridsearch.students.blocks import BlockInfo, register_block
from hybridsearch.students.blocks.base import Block, BlockContext

INFO = BlockInfo(label=("skip", None, ""), color="#DDDDDD", cost_rank=0, free=True)


@register_block("skip", INFO)
class SkipBlock(Block):
    """Identity; no parameters, no cost."""

    def __init__(self, in_hidden: int, hidden: int | None = None):
        super().__init__()
        self.hidden = in_hidden

    @classmethod
    def kwargs_from_spec(cls, spec, in_hidden, hidden, arch) -> dict:
        return {"in_hidden": in_hidden, "hidden": hidden}

    def forward(self, x: torch.Tensor, ctx: BlockContext):  # (B, T, H) -> (B, T, H)
        return x, None
