"""Block registry (timm style): one file per block type, registered by name with its descriptor.

    @register_block("cnn", BlockInfo(fields=(BlockField("kernel", required=True, tag="k"), ...), ...))
    class CNNBlock(PostLNLayer): ...

    create_block("cnn", in_hidden=64, hidden=64, kernel=5, ...)  # -> nn.Module
    list_blocks()                                                # -> ["bilstm", "cnn", "skip", "transformer"]
    block_info("cnn")                                            # -> its BlockInfo (blocks/info.py)

A block is an `nn.Module` with `forward(x (B, T, H_in), ctx: BlockContext) ->
(y (B, T, H), attn (B, heads, T, T) | None)` and two classmethods:
`check_spec(spec, where)` (UserError on bad LayerSpec fields; the default checks the
declared fields) and `kwargs_from_spec(spec, in_hidden, hidden, arch)` (constructor arguments).
Its `BlockInfo` declares its fields, latency key, FLOPs / profile mapping, report label and
colour; the space, latency table, FLOPs, profiler, report and registry tests read it.
A new block type = one file here + one import line below (docs/extending.md).
"""

from __future__ import annotations

from hybridsearch.students.blocks.info import BlockField, BlockInfo, BlockProfile

_REGISTRY: dict[str, type] = {}  # registration order: the profiler's row order


def register_block(name: str, info: BlockInfo | None = None):
    """Class decorator registering a block type under `name` with its descriptor (`cls.info`)."""
    info = info or BlockInfo(label=(name, None, ""))

    def deco(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"block {name!r} registered twice")
        _check_info(name, info)
        cls.block_name = name
        cls.info = info
        _REGISTRY[name] = cls
        return cls

    return deco


def _check_info(name: str, info: BlockInfo) -> None:
    """ValueError if the descriptor names fields LayerSpec lacks, or a space key another block types differently."""
    import dataclasses

    from hybridsearch.students.arch import LayerSpec

    info.check_declaration(name, {f.name for f in dataclasses.fields(LayerSpec)})
    for other, cls in _REGISTRY.items():
        for f in info.fields:
            g = cls.info.field_for_key(f.space_key) if f.space_key else None
            if other != name and g is not None and g.type is not f.type:
                raise ValueError(f"block {name!r}: space key {f.space_key!r} is a {f.type.__name__}, "
                                 f"but block {other!r} declares it a {g.type.__name__}; use another key")


def unregister_block(name: str) -> None:
    """Remove a registered block type (for tests that register a toy block)."""
    _REGISTRY.pop(name, None)


def list_blocks() -> list[str]:
    """Names of all registered block types, sorted."""
    return sorted(_REGISTRY)


def get_block(name: str) -> type:
    """The registered block class; UserError for an unknown name."""
    from hybridsearch.errors import UserError

    if name not in _REGISTRY:
        raise UserError(f"unknown block type {name!r}; use one of {list_blocks()}")
    return _REGISTRY[name]


def block_info(name: str) -> BlockInfo:
    """The registered block's descriptor; UserError for an unknown name."""
    return get_block(name).info


def block_infos() -> dict[str, BlockInfo]:
    """{name: descriptor} of every registered block, in registration order."""
    return {name: cls.info for name, cls in _REGISTRY.items()}


def create_block(name: str, **kwargs):
    """Build a block of type `name` from its constructor arguments."""
    return get_block(name)(**kwargs)


def block_from_spec(spec, in_hidden: int, hidden: int, arch):
    """Build the block a `LayerSpec` describes, with input / output widths."""
    cls = get_block(spec.block)
    return cls(**cls.kwargs_from_spec(spec, in_hidden, hidden, arch))


# registration order = display order of the profiler's block rows
from hybridsearch.students.blocks import transformer, cnn, bilstm, skip  # noqa: E402, F401, I001
from hybridsearch.students.blocks.base import Block, BlockContext  # noqa: E402

__all__ = ["Block", "BlockContext", "BlockField", "BlockInfo", "BlockProfile", "block_from_spec", "block_info",
           "block_infos", "create_block", "get_block", "list_blocks", "register_block", "unregister_block"]
