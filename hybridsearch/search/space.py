"""Search spaces: YAML -> labelled choices -> a sample dict -> (StudentArch, DistillRecipe).

A space file has these top-level keys (all optional except `layer`):

    name, description
    depth:      choices for the number of student layers        -> label "depth"
    arch:       {hidden, sharing, act_bits, weight_bits, sparsity, ...} -> labels "arch.<key>"
                (act_bits / weight_bits / sparsity: every layer's, unless its template chooses its own;
                dropout: hidden and attention dropout while distilling, default 0.1)
    emb:        {size, vocab (full|task), weight_bits}                       -> labels "emb.<key>"
    layer:      per-layer template {block, hidden, weight_bits, act_bits, sparsity, + the fields the
                blocks declare (heads, head_size, ffn, kernel, lstm, ...: `BlockInfo.fields`)};
                a key may say `when: {block: [...]}`; a block field must be declared by every
                block it is active for                          -> labels "layer_<i>.<key>"
    recipe:     {losses, temperature, alpha, steps, lr, ...}    -> labels "recipe.<key>"
                (steps_scale: S > 1 gives a student k times cheaper than the teacher min(k ** P, S)
                times the steps, P = steps_power (default 1: equal compute), `freeze.scale_steps`)
    seeds:      [{name, sample: {label: value}}]  known-good points (enqueued first)

A value is either fixed (a scalar: not sampled), a list of choices, or a mapping
`{choices: [...]}` / `{low, high, log?, step?}` with an optional `when`.
Labels are stable strings; a sample holds exactly the labels that are active
(layers beyond the sampled depth, and keys whose `when` fails, are absent).
Every error names the file, the key and the fix, as a `UserError`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridsearch.errors import UserError

# key -> python type: the schema every space file is checked against. `layer:` keys are the common
# ones below plus every registered block's declared fields (`students.blocks.BlockInfo.fields`);
# `recipe:` has a weight_<name> key per registered loss (`distill.losses`).
SHARING = ("none", "all")
ARCH_KEYS = {"hidden": int, "sharing": str, "act_bits": int, "weight_bits": int, "sparsity": float, "pooling": str,
             "dropout": float}
EMB_KEYS = {"size": int, "vocab": str, "weight_bits": int}
COMMON_LAYER_KEYS = {"block": str, "hidden": int, "weight_bits": int, "act_bits": int, "sparsity": float}
RECIPE_KEYS = {
    "losses": str, "temperature": float, "alpha": float, "layer_map": str, "steps": int, "lr": float,
    "batch_size": int, "warmup": float, "weight_decay": float, "eval_every": int, "transfer": bool,
    "transfer_limit": int, "qat_from": float,
    "augment": int, "max_length": int, "seed": int, "steps_scale": float, "steps_power": float,
}
ENUMS = {"vocab": ("full", "task"), "sharing": SHARING, "pooling": ("cls", "mean", "max"), "layer_map": ("uniform", "last_k")}
TOP_KEYS = ("name", "description", "depth", "arch", "emb", "layer", "recipe", "seeds")
# which way is "smaller / cheaper" for each key, for the smallest-candidate budget check
LARGER_IS_CHEAPER = {"sparsity"}
CHEAPEST = {"vocab": "task", "sharing": "all"}


def layer_keys() -> dict[str, type]:
    """`layer:` keys: the common ones and every registered block's declared space keys."""
    from hybridsearch.students.blocks import block_infos

    keys = dict(COMMON_LAYER_KEYS)
    for info in block_infos().values():
        keys.update({f.space_key: f.type for f in info.fields if f.space_key and f.space_key not in keys})
    return keys


def loss_names() -> list[str]:
    """Registered distillation losses (`distill.losses.register_loss`)."""
    from hybridsearch.distill.losses import list_losses

    return list_losses()


def schema(group: str) -> dict[str, type]:
    """The keys (and their types) a space file's group may have."""
    if group == "layer":
        return layer_keys()
    if group == "recipe":
        return {**RECIPE_KEYS, **{f"weight_{name}": float for name in loss_names()}}
    return {"arch": ARCH_KEYS, "emb": EMB_KEYS}[group]


def enum(key: str) -> tuple | None:
    """Allowed values of a string key (block: the registered blocks), or None."""
    if key == "block":
        from hybridsearch.students.blocks import list_blocks

        return tuple(list_blocks())
    return ENUMS.get(key)


GROUPS = ("arch", "emb", "layer", "recipe")


def block_cost(name: str) -> int:
    """A block's cost rank (lower = cheaper), from its descriptor."""
    from hybridsearch.students.blocks import block_info

    return block_info(name).cost_rank


@dataclass(frozen=True)
class Choice:
    """One labelled decision. kind: "fixed" | "categorical" | "int" | "float"."""

    key: str
    kind: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    when: tuple = ()  # ((sibling_key, (allowed values...)), ...)

    def active(self, siblings: dict) -> bool:
        return all(siblings.get(k) in allowed for k, allowed in self.when)

    def suggest(self, trial, label: str):
        """Ask an Optuna-like trial for this choice (fixed values are not asked)."""
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "categorical":
            return trial.suggest_categorical(label, list(self.values))
        if self.kind == "int":
            return trial.suggest_int(label, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(label, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value) -> bool:
        if self.kind in ("fixed", "categorical"):
            return value in self.values
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return self.low - 1e-12 <= value <= self.high + 1e-12

    def cheapest(self):
        if self.kind == "fixed":
            return self.values[0]
        if self.kind in ("int", "float"):
            return self.high if self.key in LARGER_IS_CHEAPER else self.low
        if self.key == "block":
            return min(self.values, key=block_cost)
        if CHEAPEST.get(self.key) in self.values:
            return CHEAPEST[self.key]
        try:
            return max(self.values) if self.key in LARGER_IS_CHEAPER else min(self.values)
        except TypeError:
            return self.values[0]


@dataclass
class SearchSpace:
    """A parsed, validated space file. `sample(trial)` asks active labels only."""

    path: str
    name: str
    description: str
    depth: Choice
    arch: dict[str, Choice]
    emb: dict[str, Choice]
    layer: dict[str, Choice]
    recipe: dict[str, Choice]
    seeds: list[dict] = field(default_factory=list)
    canonical: dict = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """Content hash of the parsed space (comments and formatting do not count)."""
        text = json.dumps(self.canonical, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def max_depth(self) -> int:
        return int(self.depth.high if self.depth.kind == "int" else max(self.depth.values))

    # --- sampling ---------------------------------------------------------
    def sample(self, trial) -> dict:
        """Ask `trial` (Optuna Trial or anything with suggest_*) for the active labels; return the sample."""
        out: dict[str, Any] = {}
        if self.depth.kind != "fixed":
            out["depth"] = self.depth.suggest(trial, "depth")
        depth = out.get("depth", self.depth.values[0] if self.depth.kind == "fixed" else None)
        for group in ("arch", "emb"):
            for key, ch in getattr(self, group).items():
                if ch.kind != "fixed":
                    out[f"{group}.{key}"] = ch.suggest(trial, f"{group}.{key}")
        sharing = out.get("arch.sharing", self._fixed("arch", "sharing", "none"))
        for i in range(1 if sharing == "all" else int(depth)):
            values: dict[str, Any] = {}
            for key, ch in self.layer.items():
                if not ch.active(values):
                    continue
                values[key] = ch.suggest(trial, f"layer_{i}.{key}")
                if ch.kind != "fixed":
                    out[f"layer_{i}.{key}"] = values[key]
        for key, ch in self.recipe.items():
            if ch.kind != "fixed":
                out[f"recipe.{key}"] = ch.suggest(trial, f"recipe.{key}")
        return out

    def _fixed(self, group: str, key: str, default=None):
        ch = getattr(self, group).get(key)
        return ch.values[0] if ch is not None and ch.kind == "fixed" else default

    def labels(self) -> list[str]:
        """Every label the space can ask (layer labels for all layers up to the max depth)."""
        out = ["depth"] if self.depth.kind != "fixed" else []
        out += [f"{g}.{k}" for g in ("arch", "emb") for k, ch in getattr(self, g).items() if ch.kind != "fixed"]
        out += [f"layer_{i}.{k}" for i in range(self.max_depth) for k, ch in self.layer.items() if ch.kind != "fixed"]
        out += [f"recipe.{k}" for k, ch in self.recipe.items() if ch.kind != "fixed"]
        return out

    def cheapest_sample(self) -> dict:
        """The sample with the cheapest value of every choice (for budgets no candidate can meet)."""
        return self.sample(_Picker(self, "cheapest"))

    def random_sample(self, seed: int = 0) -> dict:
        import random

        return self.sample(_Picker(self, "random", random.Random(seed)))

    # --- checking and freezing --------------------------------------------
    def resolve(self, sample: dict, where: str = "sample") -> dict:
        """Check `sample` against the space; return {"depth", "arch", "emb", "layers", "recipe"} with fixed values filled."""
        used: set[str] = set()

        def get(label: str, ch: Choice):
            if ch.kind == "fixed":
                if label in sample and sample[label] != ch.values[0]:
                    raise UserError(f"{where}: label '{label}' is fixed to {ch.values[0]!r} in {self.path}; "
                                    f"drop it or make it a choice in the space")
                used.add(label)
                return ch.values[0]
            if label not in sample:
                raise UserError(f"{where}: label '{label}' is missing; give one of {_describe(ch)}")
            value = sample[label]
            if not ch.contains(value):
                raise UserError(f"{where}: label '{label}' = {value!r} is not in the space; use one of {_describe(ch)}")
            used.add(label)
            return value

        depth = int(get("depth", self.depth))
        arch = {k: get(f"arch.{k}", ch) for k, ch in self.arch.items()}
        emb = {k: get(f"emb.{k}", ch) for k, ch in self.emb.items()}
        layers = []
        for i in range(1 if arch.get("sharing") == "all" else depth):
            values: dict[str, Any] = {}
            for key, ch in self.layer.items():
                if ch.active(values):
                    values[key] = get(f"layer_{i}.{key}", ch)
            layers.append(values)
        layers += [dict(layers[0]) for _ in range(depth - len(layers))]  # sharing "all": copies of layer 0
        recipe = {k: get(f"recipe.{k}", ch) for k, ch in self.recipe.items()}
        extra = sorted(set(sample) - used)
        if extra:
            raise UserError(f"{where}: label(s) {', '.join(extra)} are not active in space {self.path}; remove them")
        return {"depth": depth, "arch": arch, "emb": emb, "layers": layers, "recipe": recipe}

    def freeze(self, sample: dict, base=None, steps: int | None = None):
        """sample -> (StudentArch, DistillRecipe); `base` (a FreezeBase, or a dict of its fields) gives
        vocab, labels and the teacher's cost; `steps` replaces the space's `recipe.steps` (before compute
        scaling)."""
        from hybridsearch.search.freeze import as_base, scale_steps, to_arch, to_recipe

        spec = self.resolve(sample)
        base = as_base(base)
        arch, recipe = to_arch(spec, base), to_recipe(spec, base)
        if steps:
            recipe.steps = int(steps)
            recipe.eval_every = max(1, min(recipe.eval_every, recipe.steps // 3 or 1))
        return arch, scale_steps(recipe, arch, base, float(spec["recipe"].get("steps_scale", 1.0)),
                                 float(spec["recipe"].get("steps_power", 1.0)))

    def to_arch(self, spec: dict, base=None):
        """Resolved values {"arch", "emb", "layers": [layer values]} -> StudentArch, as `freeze` builds it
        (not validated). Also for parts of a sample: `measure.latency_calib` builds its one-layer
        probes through this, so measure needs no import of search."""
        from hybridsearch.search.freeze import as_base, to_arch

        return to_arch(spec, as_base(base))


class _Picker:
    """A trial stand-in that picks the cheapest or a random value (no Optuna needed)."""

    def __init__(self, space: SearchSpace, mode: str, rng=None):
        self.mode, self.rng = mode, rng
        self.by_label: dict[str, Choice] = {}
        self.space = space

    def _choice(self, label: str) -> Choice:
        if label == "depth":
            return self.space.depth
        group, key = label.split(".", 1)
        group = "layer" if group.startswith("layer_") else group
        return getattr(self.space, group)[key]

    def _pick(self, label):
        ch = self._choice(label)
        if self.mode == "cheapest":
            if label == "layer_0.block" and ch.kind == "categorical" and set(ch.values) - {"skip"}:
                return min([v for v in ch.values if v != "skip"], key=block_cost)  # a student needs one layer
            return ch.cheapest()
        if ch.kind == "categorical":
            return self.rng.choice(list(ch.values))
        if ch.kind == "int":
            return self.rng.randrange(int(ch.low), int(ch.high) + 1, int(ch.step or 1))
        return self.rng.uniform(ch.low, ch.high)

    def suggest_categorical(self, label, choices):
        return self._pick(label)

    def suggest_int(self, label, low, high, step=1, log=False):
        return self._pick(label)

    def suggest_float(self, label, low, high, step=None, log=False):
        return self._pick(label)


def _describe(ch: Choice) -> str:
    if ch.kind in ("fixed", "categorical"):
        return "[" + ", ".join(repr(v) for v in ch.values) + "]"
    return f"a number in [{ch.low}, {ch.high}]"


# --- parsing ------------------------------------------------------------------
def _type_ok(value, typ) -> bool:
    if typ is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if typ is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, typ)


def _parse_choice(path: str, label: str, key: str, raw, typ, when_keys=()) -> Choice:
    loc = f"{path}: key '{label}'"
    tname = typ.__name__
    when: tuple = ()
    if isinstance(raw, dict):
        raw = dict(raw)
        if "when" in raw:
            w = raw.pop("when")
            if not isinstance(w, dict) or not w:
                raise UserError(f"{loc}: 'when' must be a mapping like {{block: [transformer]}}; fix the condition")
            pairs = []
            for wk, wv in w.items():
                if wk not in when_keys:
                    raise UserError(f"{loc}: 'when' refers to '{wk}', which is not an earlier key of the same group; "
                                    f"use one of {', '.join(when_keys) or '(none)'}")
                allowed = tuple(wv) if isinstance(wv, list) else (wv,)
                pairs.append((wk, allowed))
            when = tuple(pairs)
        unknown = set(raw) - {"choices", "low", "high", "log", "step", "value"}
        if unknown:
            raise UserError(f"{loc}: unknown field(s) {', '.join(sorted(unknown))}; "
                            f"use 'choices', 'value', or 'low'/'high' (with optional 'log', 'step') and 'when'")
        if "choices" in raw:
            raw = raw["choices"]
            if not isinstance(raw, list):
                raise UserError(f"{loc}: 'choices' must be a list of {tname} values; write choices: [a, b, ...]")
        elif "value" in raw:
            raw = raw["value"]
        elif "low" in raw or "high" in raw:
            if typ not in (int, float) or not all(_type_ok(raw.get(b), typ) for b in ("low", "high")):
                raise UserError(f"{loc}: a range needs numeric 'low' and 'high' of type {tname}; fix the bounds")
            if raw["low"] > raw["high"]:
                raise UserError(f"{loc}: low {raw['low']} > high {raw['high']}; swap them")
            kind = "int" if typ is int else "float"
            return Choice(key, kind, (), raw["low"], raw["high"], bool(raw.get("log", False)), raw.get("step"), when)
        else:
            raise UserError(f"{loc}: a mapping needs 'choices', 'value' or 'low'/'high'; add one of them")
    if isinstance(raw, list):
        if not raw:
            raise UserError(f"{loc}: empty choices; give at least one value")
        bad = [v for v in raw if not _type_ok(v, typ)]
        if bad:
            raise UserError(f"{loc}: {bad[0]!r} is not a {tname}; every choice must be a {tname}")
        allowed = enum(key)
        unknown = [v for v in raw if allowed and v not in allowed]
        if unknown:
            raise UserError(f"{loc}: unknown value '{unknown[0]}'; use {', '.join(allowed)}")
        if key == "losses":
            names = loss_names()
            bad = [p for v in raw for p in str(v).split("+") if p not in names]
            if bad:
                raise UserError(f"{loc}: unknown loss '{bad[0]}'; combine {', '.join(names)} with '+'")
        values = tuple(float(v) if typ is float else v for v in raw)
        if len(set(values)) != len(values):
            raise UserError(f"{loc}: repeated choices {list(values)}; list each value once")
        return Choice(key, "categorical" if len(values) > 1 else "fixed", values, when=when)
    if not _type_ok(raw, typ):
        raise UserError(f"{loc}: {raw!r} is not a {tname}; give a {tname} or a list of them")
    allowed = enum(key)
    if allowed and raw not in allowed:
        raise UserError(f"{loc}: unknown value '{raw}'; use {', '.join(allowed)}")
    return Choice(key, "fixed", (float(raw) if typ is float else raw,), when=when)


def _parse_group(path: str, data: dict, group: str) -> dict[str, Choice]:
    raw = data.get(group) or {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: key '{group}' must be a mapping of key: choices; fix its indentation")
    keys = schema(group)
    out: dict[str, Choice] = {}
    for key, value in raw.items():
        if key not in keys:
            raise UserError(f"{path}: unknown key '{group}.{key}'; use one of {', '.join(keys)}")
        label = f"{group}.{key}"
        out[key] = _parse_choice(path, label, key, value, keys[key], when_keys=tuple(out))
    return out


def _check_block_fields(path: str, layer: dict[str, Choice]) -> None:
    """Every block-specific `layer:` key must be a declared field of each block it is active for
    (its `when: {block: ...}`, else every block the template offers), with allowed values."""
    from hybridsearch.students.blocks import block_info, list_blocks

    offered = layer["block"].values
    for key, ch in layer.items():
        if key in COMMON_LAYER_KEYS:
            continue
        cond = dict(ch.when).get("block")
        unknown = [b for b in cond or () if b not in list_blocks()]
        if unknown:
            raise UserError(f"{path}: key 'layer.{key}': 'when' names unknown block '{unknown[0]}'; "
                            f"use one of {', '.join(list_blocks())}")
        for b in (b for b in offered if cond is None or b in cond):
            field = block_info(b).field_for_key(key)
            if field is None:
                users = [n for n in offered if block_info(n).field_for_key(key)]
                fix = f"add when: {{block: [{', '.join(users)}]}}" if users else "remove it"
                raise UserError(f"{path}: key 'layer.{key}' is not a field of block '{b}' (its fields: "
                                f"{', '.join(block_info(b).space_keys()) or 'none'}); {fix}")
            _check_field_values(path, key, b, field, ch)


def _check_field_values(path: str, key: str, block: str, field, ch: Choice) -> None:
    """UserError if a choice of `key` is not allowed for `block`'s declared field."""
    loc = f"{path}: key 'layer.{key}'"
    if ch.kind in ("int", "float"):
        if field.values:
            raise UserError(f"{loc}: block '{block}' allows only {list(field.values)}; list them as choices")
        values = (ch.low, ch.high)
    else:
        values = ch.values
    for v in values:
        why = field.problem(v)
        if why:
            raise UserError(f"{loc}: {v!r} for block '{block}' {why}; fix the choices")


def parse_space(data: Any, path: str = "<space>") -> SearchSpace:
    """Validate a loaded YAML document and build the SearchSpace."""
    if not isinstance(data, dict):
        raise UserError(f"{path}: a search space must be a YAML mapping with keys {', '.join(TOP_KEYS)}")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise UserError(f"{path}: unknown key '{unknown[0]}'; use one of {', '.join(TOP_KEYS)}")
    if "layer" not in data:
        raise UserError(f"{path}: key 'layer' is missing; add a per-layer template with at least 'block'")
    depth = _parse_choice(path, "depth", "depth", data.get("depth", 1), int)
    if (depth.low or 0) < 0 or any(v < 1 for v in depth.values):
        raise UserError(f"{path}: key 'depth' must be >= 1; fix the choices")
    groups = {g: _parse_group(path, data, g) for g in GROUPS}
    if "block" not in groups["layer"]:
        from hybridsearch.students.blocks import list_blocks

        raise UserError(f"{path}: key 'layer.block' is missing; add block: [{', '.join(list_blocks())}]")
    _check_block_fields(path, groups["layer"])
    seeds = data.get("seeds") or []
    if not isinstance(seeds, list):
        raise UserError(f"{path}: key 'seeds' must be a list of {{name, sample}}; fix it")
    space = SearchSpace(
        path=path, name=str(data.get("name") or Path(path).stem), description=str(data.get("description", "")),
        depth=depth, arch=groups["arch"], emb=groups["emb"], layer=groups["layer"], recipe=groups["recipe"],
        canonical={k: v for k, v in data.items() if k not in ("description",)},
    )
    for i, seed in enumerate(seeds):
        if not isinstance(seed, dict) or not isinstance(seed.get("sample"), dict):
            raise UserError(f"{path}: key 'seeds[{i}]' needs 'name' and a 'sample' mapping; fix it")
        name = str(seed.get("name", f"seed_{i}"))
        space.resolve(seed["sample"], where=f"{path}: key 'seeds[{i}]' ({name})")
        space.seeds.append({"name": name, "sample": dict(seed["sample"])})
    return space


SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"


def space_path(name_or_path: str | None) -> Path:
    """A space name ("hybrid") or a YAML path -> the file path."""
    name_or_path = name_or_path or "hybrid"
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise UserError(f"search space file {p} not found; give an existing YAML file or one of {list_spaces()}")
        return p
    for d in (SPACES_DIR, Path(__file__).parent / "spaces"):
        cand = d / f"{name_or_path}.yaml"
        if cand.is_file():
            return cand
    raise UserError(f"unknown search space '{name_or_path}'; use one of {list_spaces()} or a YAML path")


def list_spaces() -> list[str]:
    dirs = [SPACES_DIR, Path(__file__).parent / "spaces"]
    return sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})


def load_space(name_or_path: str | None = None) -> SearchSpace:
    """Load and validate a space by name or path (UserError naming file, key and fix on any problem)."""
    import yaml

    path = space_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" line {line + 1}" if line is not None else ""
        raise UserError(f"{path}:{at} is not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    return parse_space(data, str(path))
