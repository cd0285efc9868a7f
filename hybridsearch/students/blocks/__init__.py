"""Block registry (timm style): one file per block type, registered by name.

    @register_block("cnn")
    class CNNBlock(Block): ...

    create_block("cnn", in_hidden=64, hidden=64, kernel=5, ...)  # -> nn.Module
    list_blocks()                                                # -> ["bilstm", "cnn", "skip", "transformer"]

A block is an `nn.Module` with `forward(x (B, T, H_in), ctx: BlockContext) ->
(y (B, T, H), attn (B, heads, T, T) | None)` and two classmethods:
`check_spec(spec, where)` (raise UserError on bad LayerSpec fields) and
`kwargs_from_spec(spec, in_hidden, hidden, arch)` (constructor arguments).
A new block type = one file here + one import line below; the tests pick it up.
"""

from __future__ import annotations

_REGISTRY: dict[str, type] = {}


def register_block(name: str):
    """Class decorator registering a block type under `name`."""

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"block {name!r} registered twice")
        cls.block_name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def list_blocks() -> list[str]:
    """Names of all registered block types, sorted."""
    return sorted(_REGISTRY)


def get_block(name: str) -> type:
    """The registered block class; UserError for an unknown name."""
    from hybridsearch.errors import UserError

    if name not in _REGISTRY:
        raise UserError(f"unknown block type {name!r}; use one of {list_blocks()}")
    return _REGISTRY[name]


def create_block(name: str, **kwargs):
    """Build a block of type `name` from its constructor arguments."""
    return get_block(name)(**kwargs)


def block_from_spec(spec, in_hidden: int, hidden: int, arch):
    """Build the block a `LayerSpec` describes, with input / output widths."""
    cls = get_block(spec.block)
    return cls(**cls.kwargs_from_spec(spec, in_hidden, hidden, arch))


from hybridsearch.students.blocks import bilstm, cnn, skip, transformer  # noqa: E402, F401, I001
from hybridsearch.students.blocks.base import Block, BlockContext  # noqa: E402

__all__ = ["Block", "BlockContext", "block_from_spec", "create_block", "get_block", "list_blocks", "register_block"]
