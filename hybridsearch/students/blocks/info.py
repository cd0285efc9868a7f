"""Block descriptors: what a block declares beside its class, at registration
(timm's `default_cfgs` beside `register_model`):

    @register_block("cnn", BlockInfo(fields=(BlockField("kernel", required=True, tag="k"), ...),
                                     label=("conv", "kernel", "k{}"), color="#55A868", ...))
    class CNNBlock(PostLNLayer): ...

Everything that used to be a hand-kept table keyed by block name reads these, through
`hybridsearch.students.blocks.block_info(name)`: `arch.validate` (`Block.check_spec`), the
search space (`layer:` keys, their types and allowed values, the cheapest block), `freeze`
(which space keys fill which `LayerSpec` fields), the latency table (key and fallback
features), FLOPs and the profiler's component rows, and the report's label and colour.
Pure data and small functions: no torch here, and nothing from `measure/` or `search/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hybridsearch.errors import UserError

COMMON_FIELDS = ("block", "hidden", "weight_bits", "act_bits", "sparsity")  # every block's, not declared


@dataclass(frozen=True)
class BlockField:
    """One `LayerSpec` field a block reads.

    name: the `LayerSpec` attribute (it must exist there).
    type: int or bool (float allowed); ints are positive integers.
    key: its space-YAML `layer:` key; "" = `name`, None = not offered by search spaces.
    required: must be set (an int: positive) for the layer to build; else None means "off".
    values: allowed values (() = any value of the type).
    default: what `freeze` gives the layer when the space does not choose the key.
    tag: its short name in the latency-table key (None: latency does not depend on it).
    examples: (plain, variant) small valid values for the registry-driven tests.
    """

    name: str
    type: type = int
    key: str | None = ""
    required: bool = False
    values: tuple = ()
    default: Any = None
    tag: str | None = None
    examples: tuple = ()

    @property
    def space_key(self) -> str | None:
        return self.name if self.key == "" else self.key

    def problem(self, value) -> str | None:
        """Why `value` is not allowed for this field ("must be ..."), or None."""
        if value is None:
            return "must be a positive integer" if self.required and self.type is int else None
        if self.type is bool:
            ok = isinstance(value, bool)
        elif self.type is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            return "must be a positive integer" if self.type is int else f"must be a {self.type.__name__}"
        if self.values and value not in self.values:
            return f"must be one of {list(self.values)}"
        return None

    def check(self, value, where: str) -> None:
        """UserError (one line naming `where` and the field) if `value` is not allowed."""
        why = self.problem(value)
        if why:
            raise UserError(f"{where}: {self.name} {why}, got {value!r}; fix {self.name}")

    def from_space(self, value):
        """A space value (or the default when None) -> the LayerSpec value."""
        value = self.default if value is None else value
        return None if value is None else self.type(value)

    def key_value(self, value) -> int:
        """The value as it appears in the latency key: bools as 0/1, None as 0."""
        return int(bool(value)) if isinstance(value, bool) else int(value or 0)


@dataclass(frozen=True)
class BlockProfile:
    """How measure/ counts the block's token mixer (a `PostLNLayer`'s `mixer`, else the whole block).

    components: profile rows its modules fill, as (name, label, short), in display order.
    map_parts(module, prefix, put): places the mixer's modules: `put(name, component, part,
        is_glue=False)`; `prefix` names the mixer; a glue module's own time is wiring only.
    flops(spec, in_hidden, hidden, batch, seq_len, ew) -> {component: (matmul, other)}: the mixer's
        analytic FLOPs; `ew.activation`, `ew.softmax`, `ew.layernorm` are the elementwise costs
        per element (`measure.flops` conventions). Residual projection, LayerNorms and the FFN of
        a `PostLNLayer` are counted by measure/.
    uncounted: its rows whose kernels torch's FLOP counter cannot see (no counted cross-check).
    """

    components: tuple[tuple[str, str, str], ...]
    map_parts: Callable
    flops: Callable
    uncounted: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BlockInfo:
    """A registered block's descriptor.

    fields: the `LayerSpec` fields it reads (validation, space keys, freeze, latency key).
    label: (name, space key of its main size or None, format) for the report: ("conv", "kernel", "k{}").
    color: its colour in the report's per-layer picture.
    cost_rank: relative cost (lower = cheaper), for the cheapest-candidate budget check.
    attention: whether it returns attention maps (B, heads, T, T): KD-AM can pair it.
    free: no parameters and no cost (skip): no latency part, no FLOPs, no profile rows.
    latency_macs(v, batch, seq_len) -> {"lin", "fp", "attn", "steps"}: the mixer's latency-fallback
        features from its parsed latency key `v` ({tag: int, "in", "out", "q"}): quantizable Linear
        MACs, float MACs, attention MACs, sequential steps (a PostLNLayer's FFN and residual are added
        by measure/); None: no fallback fit (every configuration must be calibrated).
    profile: FLOPs and profiler mapping; None: the profiler and FLOPs do not know it.
    elastic: for a weight-sharing supernet to slice it (a function slot, None for now).
    """

    fields: tuple[BlockField, ...] = ()
    label: tuple[str, str | None, str] = ("?", None, "")
    color: str = "#000000"
    cost_rank: int = 1
    attention: bool = False
    free: bool = False
    latency_macs: Callable | None = None
    profile: BlockProfile | None = None
    elastic: Callable | None = None

    def field(self, name: str) -> BlockField | None:
        """The declared field with LayerSpec attribute `name`, or None."""
        return next((f for f in self.fields if f.name == name), None)

    def field_for_key(self, key: str) -> BlockField | None:
        """The declared field behind space key `key`, or None."""
        return next((f for f in self.fields if f.space_key == key), None)

    def space_keys(self) -> list[str]:
        return [f.space_key for f in self.fields if f.space_key]

    def latency_rest(self, spec) -> str:
        """The block-specific part of its latency key, from the tagged fields: 'k3.dl1.sep0.f768'."""
        return ".".join(f"{f.tag}{f.key_value(getattr(spec, f.name))}" for f in self.fields if f.tag)

    def check_declaration(self, name: str, layer_fields: set[str]) -> None:
        """ValueError (a bug in the block file) if a field is not a LayerSpec attribute, repeats, or takes a
        common field's name or space key."""
        names = [f.name for f in self.fields]
        bad = [f.name for f in self.fields if f.name not in layer_fields or {f.name, f.space_key} & set(COMMON_FIELDS)]
        if bad or len(set(names)) != len(names):
            raise ValueError(f"block {name!r}: fields {bad or names} are not distinct LayerSpec fields "
                             f"outside {COMMON_FIELDS}; add a LayerSpec field or fix the descriptor")
        tags = [f.tag for f in self.fields if f.tag]
        if len(set(tags)) != len(tags) or any(not t.isalpha() for t in tags):
            raise ValueError(f"block {name!r}: latency tags {tags} must be distinct letters-only names")
