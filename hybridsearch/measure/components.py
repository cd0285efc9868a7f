"""Component mappers: which named component owns each module's parameters and own time.

A mapper turns a model into a `ComponentMap`: the ordered list of components and,
for every module the profiler hooks, the (component, part) that module's *own*
work belongs to. "Own" work is what runs inside the module but outside any other
hooked module below it; e.g. the BERT self-attention module's own work is the
attention core (scores, softmax, context), since its Q/K/V Linears are hooked
separately. Parameters go to the component of their nearest mapped ancestor.

Contract: every parameter and every measured millisecond lands in a named
component. A mapper that cannot place a parameter raises `UserError`
(unsupported architecture) rather than inventing an "other" row.

A new model family (e.g. the hybrid students) is one more function registered
with `@register_mapper`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hybridsearch.errors import UserError


@dataclass(frozen=True)
class Component:
    """A named row of the profile: `name` is a stable key, `label` is for humans, `short` for tables."""

    name: str
    label: str
    short: str = ""


@dataclass
class ComponentMap:
    """Components in display order; `owner[module_name] = (component, part)` for hooked modules.

    `glue` lists module names whose own time is wiring only: they may not hold
    parameters directly (a parameter landing there means the mapper does not know
    that module, so mapping fails loudly).
    """

    family: str
    components: list[Component]
    owner: dict[str, tuple[str, str]]
    glue: set[str] = field(default_factory=set)
    flops: Callable[[int, int], dict] | None = None  # (seq_len, batch) -> {component: Flops}
    vocab_size: int = 1000
    max_positions: int | None = None
    type_vocab_size: int = 2
    summary: dict = field(default_factory=dict)  # shape facts for the report
    uncounted: set[str] = field(default_factory=set)  # rows whose ops torch's FLOP counter cannot see

    def names(self) -> list[str]:
        return [c.name for c in self.components]

    def param_owner(self, param_name: str) -> str:
        """Component of parameter `param_name` (its nearest mapped ancestor module)."""
        parts = param_name.split(".")[:-1]
        for cut in range(len(parts), -1, -1):
            module_name = ".".join(parts[:cut])
            if module_name in self.owner:
                if module_name in self.glue:
                    raise UserError(
                        f"parameter {param_name!r} sits in an unmapped part of a {self.family} model; "
                        "this architecture is not supported by the profiler"
                    )
                return self.owner[module_name][0]
        raise UserError(f"parameter {param_name!r} has no component; this architecture is not supported")


MapperFn = Callable[[object], "ComponentMap | None"]
_MAPPERS: list[tuple[str, MapperFn]] = []


def register_mapper(name: str):
    """Decorator: add a mapper; it returns a ComponentMap, or None if the model is not its family."""

    def wrap(fn: MapperFn) -> MapperFn:
        _MAPPERS.append((name, fn))
        return fn

    return wrap


def list_mappers() -> list[str]:
    return [name for name, _ in _MAPPERS]


def map_components(model) -> ComponentMap:
    """The first registered mapper that recognises `model`; `UserError` if none does."""
    import hybridsearch.measure.student_components  # noqa: F401  (registers the student mapper)

    for _name, fn in _MAPPERS:
        cmap = fn(model)
        if cmap is not None:
            return cmap
    raise UserError(
        f"cannot profile a {type(model).__name__}: no component mapper knows it "
        f"(known families: {', '.join(list_mappers())}); use a BERT-family model"
    )


def param_breakdown(model, cmap: ComponentMap) -> dict[str, int]:
    """Parameters per component; the values sum to the model's parameter count exactly."""
    counts = {name: 0 for name in cmap.names()}
    for pname, param in model.named_parameters():  # shared (tied) parameters are listed once
        counts[cmap.param_owner(pname)] += param.numel()
    return counts


# --- BERT family (BERT, RoBERTa, ELECTRA, ... with encoder.layer[i].attention.self.query) ---

BERT_COMPONENTS = [
    Component("embeddings", "Embeddings", "embeddings"),
    Component("attn_qkv", "Attention input projections (Q, K, V)", "Q/K/V proj"),
    Component("attn_core", "Attention core (scores, softmax, context)", "attention core"),
    Component("attn_out", "Attention output projection", "attn out proj"),
    Component("ffn", "FFN (intermediate + activation + output)", "FFN"),
    Component("norm_residual", "LayerNorms + residual adds", "LayerNorm+resid"),
    Component("head", "Pooler + classifier", "pooler+classif"),
]


def _find_bert_base(model):
    """(prefix, base) of the inner encoder model holding `.embeddings` and `.encoder.layer`."""
    for prefix, module in model.named_modules():
        enc = getattr(module, "encoder", None)
        if hasattr(module, "embeddings") and hasattr(enc, "layer"):
            return prefix, module
    return None, None


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


@register_mapper("bert")
def bert_mapper(model) -> ComponentMap | None:
    """BERT-style encoders from transformers (eager attention expected for the core to be visible)."""
    prefix, base = _find_bert_base(model)
    if base is None:
        return None
    layers = base.encoder.layer
    if not len(layers) or not hasattr(getattr(layers[0], "attention", None), "self"):
        return None
    if not all(hasattr(layers[0].attention.self, n) for n in ("query", "key", "value")):
        return None
    owner: dict[str, tuple[str, str]] = {}
    glue: set[str] = set()

    def put(name: str, component: str, part: str, is_glue: bool = False) -> None:
        owner[name] = (component, part)
        if is_glue:
            glue.add(name)

    # Everything outside the encoder: the head (root, pooler, classifier, ...); its own
    # time is the classifier dropout, the Linear calls and output packaging.
    put("", "head", "model wrapper, dropout, output packaging")
    for name, _child in model.named_children():
        if _join(name) != prefix:
            put(name, "head", f"{name} module")
    base_name = prefix
    # The base model's own time builds the attention mask and runs the output decorators:
    # input preparation, booked with the embeddings (documented in docs/profile.md).
    put(base_name, "embeddings", "input & attention-mask preparation (base model's own time)", is_glue=True)
    for name, _child in base.named_children():
        full = _join(base_name, name)
        if name == "embeddings":
            put(full, "embeddings", "lookups, sum, LayerNorm, dropout")
        elif name == "encoder":
            put(full, "norm_residual", "encoder & layer wiring (loop, chunking call)", is_glue=True)
        elif name == "pooler":
            put(full, "head", "pooler (dense + tanh)")
        else:  # e.g. ELECTRA's embeddings_project
            put(full, "embeddings", f"{name} (embedding projection)")
    enc = _join(base_name, "encoder")
    put(_join(enc, "layer"), "norm_residual", "encoder & layer wiring (loop, chunking call)", is_glue=True)
    for i, layer in enumerate(layers):
        lp = _join(enc, "layer", str(i))
        if getattr(layer, "crossattention", None) is not None:
            raise UserError("cross-attention (decoder) BERT layers are not supported by the profiler")
        put(lp, "norm_residual", "encoder & layer wiring (loop, chunking call)", is_glue=True)
        put(f"{lp}.attention", "attn_core", "attention wrapper's own time", is_glue=True)
        put(f"{lp}.attention.self", "attn_core", "self-attention minus its Q/K/V Linears", is_glue=True)
        for proj in ("query", "key", "value"):
            put(f"{lp}.attention.self.{proj}", "attn_qkv", "Q/K/V Linear modules")
        put(f"{lp}.attention.output", "norm_residual", "residual add + dropout (attention output's own time)", is_glue=True)
        put(f"{lp}.attention.output.dense", "attn_out", "output dense Linear")
        put(f"{lp}.attention.output.LayerNorm", "norm_residual", "LayerNorm modules")
        put(f"{lp}.intermediate", "ffn", "activation (intermediate's own time)", is_glue=True)
        put(f"{lp}.intermediate.dense", "ffn", "intermediate dense Linear")
        put(f"{lp}.output", "norm_residual", "residual add + dropout (FFN output's own time)", is_glue=True)
        put(f"{lp}.output.dense", "ffn", "output dense Linear")
        put(f"{lp}.output.LayerNorm", "norm_residual", "LayerNorm modules")
    config = model.config
    from hybridsearch.measure.flops import bert_component_flops

    return ComponentMap(
        "bert", list(BERT_COMPONENTS), owner, glue,
        flops=lambda seq_len, batch: bert_component_flops(config, seq_len, batch),
        vocab_size=int(getattr(config, "vocab_size", 1000)),
        max_positions=_bert_max_positions(config),
        type_vocab_size=int(getattr(config, "type_vocab_size", 0) or 0),
        summary=_bert_summary(config),
    )


def _bert_max_positions(config) -> int | None:
    """Longest input the position table allows (RoBERTa-style offsets subtracted)."""
    limit = getattr(config, "max_position_embeddings", None)
    if limit is None:
        return None
    kind = str(getattr(config, "model_type", ""))
    if "roberta" in kind or "camembert" in kind:
        limit -= int(getattr(config, "pad_token_id", 1) or 1) + 1
    return int(limit)


def _bert_summary(config) -> dict:
    keys = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings", "type_vocab_size", "embedding_size", "hidden_act", "num_labels")
    return {k: getattr(config, k) for k in keys if getattr(config, k, None) is not None}
