"""Resolved space values -> `StudentArch` + `DistillRecipe`.

`FreezeBase` carries what a sample does not choose but the arch needs: the
teacher's vocabulary and the task's labels (`base_from_context` fills it from an
evaluation context). `emb.vocab: task` keeps only `base.task_tokens` (the ids seen in
the task's training data plus the special tokens); without them the full vocabulary
is kept. A sampled `kd_am` loss is dropped for a student with no transformer layer
(attention maps need one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOSS_NAMES = ("kd_ol", "kd_eo", "kd_am", "emb")


@dataclass
class FreezeBase:
    vocab_size: int = 30522
    num_labels: int = 2
    id2label: dict | None = None
    max_positions: int = 512
    type_vocab: int = 2
    unk_id: int = 100
    pad_id: int = 0
    task_tokens: list[int] | None = field(default=None, repr=False)


def to_arch(spec: dict, base: FreezeBase | None = None):
    """spec from `SearchSpace.resolve` -> StudentArch (not yet validated)."""
    from hybridsearch.students.arch import EmbeddingSpec, LayerSpec, StudentArch

    base = base or FreezeBase()
    arch, emb = spec["arch"], spec["emb"]
    kept = None
    if emb.get("vocab", "full") == "task" and base.task_tokens:
        kept = sorted({base.pad_id, base.unk_id, *base.task_tokens})
    embedding = EmbeddingSpec(
        vocab_size=base.vocab_size, size=emb.get("size"), kept_tokens=kept, unk_id=base.unk_id,
        pad_id=base.pad_id, max_positions=base.max_positions, type_vocab=base.type_vocab,
        weight_bits=int(emb.get("weight_bits", 32)),
    )
    act_bits = int(arch.get("act_bits", 32))
    layers = []
    for values in spec["layers"]:
        block = values["block"]
        layer = LayerSpec(block=block)
        if block != "skip":
            layer.hidden = values.get("hidden")
            layer.weight_bits = int(values.get("weight_bits", 32))
            layer.act_bits = int(values.get("act_bits", act_bits))
            layer.sparsity = float(values.get("sparsity", 0.0))
            layer.ffn = values.get("ffn")
        if block == "transformer":
            layer.heads, layer.head_size = values.get("heads"), values.get("head_size")
        elif block == "cnn":
            layer.kernel = values.get("kernel")
            layer.dilation = int(values.get("dilation", 1))
            layer.separable = bool(values.get("separable", False))
        elif block == "bilstm":
            layer.lstm_hidden = values.get("lstm")
        layers.append(layer)
    share = [list(range(len(layers)))] if arch.get("sharing") == "all" and len(layers) > 1 else []
    return StudentArch(
        embedding=embedding, hidden=int(arch.get("hidden", 384)), layers=layers, share_groups=share,
        pooling=arch.get("pooling", "cls"), num_labels=base.num_labels,
        id2label=dict(base.id2label) if base.id2label else None,
    )


def to_recipe(spec: dict):
    """spec from `SearchSpace.resolve` -> DistillRecipe (not yet validated)."""
    from hybridsearch.distill.recipe import DistillRecipe

    values = dict(spec["recipe"])
    if "losses" in values:
        values["losses"] = [x for x in str(values["losses"]).split("+") if x]
        if not any(layer["block"] == "transformer" for layer in spec["layers"]):
            values["losses"] = [x for x in values["losses"] if x != "kd_am"] or ["kd_ol"]
    weights = {name: float(values.pop(f"weight_{name}")) for name in LOSS_NAMES if f"weight_{name}" in values}
    if weights:
        values["weights"] = weights
    return DistillRecipe.from_dict(values)
