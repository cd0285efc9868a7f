"""Resolved space values -> `StudentArch` + `DistillRecipe`.

`FreezeBase` carries what a sample does not choose but the arch needs: the
teacher's vocabulary and the task's labels (`base_from_context` fills it from an
evaluation context). `emb.vocab: task` keeps only `base.task_tokens` (the ids seen in
the task's training data plus the special tokens); without them the full vocabulary
is kept. A sampled loss that needs attention maps (`kd_am`) is dropped for a student with no
block that returns them (`BlockInfo.attention`). Which space keys fill which `LayerSpec`
fields is each block's declaration (`BlockInfo.fields`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
    teacher_layers: int | None = None  # the teacher's depth (None: the student's own)
    teacher_flops: int | None = None  # one teacher forward at (1, 64) (for `steps_scale`; None: no scaling)


def as_base(base) -> FreezeBase:
    """A FreezeBase from a FreezeBase, a dict of its fields, or None (the defaults)."""
    if isinstance(base, dict):
        return FreezeBase(**base)
    return base or FreezeBase()


def to_layer(values: dict, arch: dict):
    """Resolved `layer:` values of one layer -> LayerSpec; block fields as its descriptor declares them."""
    from hybridsearch.students.arch import LayerSpec
    from hybridsearch.students.blocks import block_info

    block = values["block"]
    layer = LayerSpec(block=block)
    if block != "skip":
        layer.hidden = values.get("hidden")
        layer.weight_bits = int(values.get("weight_bits", arch.get("weight_bits", 32)))
        layer.act_bits = int(values.get("act_bits", arch.get("act_bits", 32)))
        layer.sparsity = float(values.get("sparsity", arch.get("sparsity", 0.0)))
    for f in block_info(block).fields:
        if f.space_key:
            setattr(layer, f.name, f.from_space(values.get(f.space_key)))
    return layer


def to_arch(spec: dict, base: FreezeBase | None = None):
    """spec from `SearchSpace.resolve` -> StudentArch (not yet validated)."""
    from hybridsearch.students.arch import EmbeddingSpec, StudentArch

    base = as_base(base)
    arch, emb = spec["arch"], spec["emb"]
    kept = None
    if emb.get("vocab", "full") == "task" and base.task_tokens:
        kept = sorted({base.pad_id, base.unk_id, *base.task_tokens})
    embedding = EmbeddingSpec(
        vocab_size=base.vocab_size, size=emb.get("size"), kept_tokens=kept, unk_id=base.unk_id,
        pad_id=base.pad_id, max_positions=base.max_positions, type_vocab=base.type_vocab,
        weight_bits=int(emb.get("weight_bits", 32)),
    )
    layers = [to_layer(values, arch) for values in spec["layers"]]
    share = [list(range(len(layers)))] if arch.get("sharing") == "all" and len(layers) > 1 else []
    return StudentArch(
        embedding=embedding, hidden=int(arch.get("hidden", 384)), layers=layers, share_groups=share,
        pooling=arch.get("pooling", "cls"), num_labels=base.num_labels,
        id2label=dict(base.id2label) if base.id2label else None,
        **({"dropout": float(arch["dropout"]), "attn_dropout": float(arch["dropout"])} if "dropout" in arch else {}),
    )


def skip_aware_layer_map(blocks: list[str], teacher_layers: int) -> list[int]:
    """KD-EO / KD-AM layer map of a student with `skip` layers: each other layer i (0-based) of L
    is paired with teacher layer round((i + 1) * L_t / L) (1-based, the layer its weights start
    from: `students.init.teacher_layer_for`), a skip layer with none (-1). A skip layer repeats
    its input, so pairing it would pull the layer below towards the wrong teacher layer."""
    from hybridsearch.students.init import teacher_layer_for

    n = len(blocks)
    return [-1 if b == "skip" else teacher_layer_for(i, n, teacher_layers, None) + 1 for i, b in enumerate(blocks)]


def to_recipe(spec: dict, base: FreezeBase | None = None):
    """spec from `SearchSpace.resolve` -> DistillRecipe (not yet validated)."""
    from hybridsearch.distill.losses import list_losses, loss_info
    from hybridsearch.distill.recipe import DistillRecipe
    from hybridsearch.students.blocks import block_info

    values = dict(spec["recipe"])
    blocks = [layer["block"] for layer in spec["layers"]]
    if "skip" in blocks and values.get("layer_map", "uniform") == "uniform":
        values["layer_map"] = skip_aware_layer_map(blocks, (base and base.teacher_layers) or len(blocks))
    if "losses" in values:
        values["losses"] = [x for x in str(values["losses"]).split("+") if x]
        if not any(block_info(b).attention for b in blocks):
            values["losses"] = [x for x in values["losses"] if not loss_info(x).attention] or ["kd_ol"]
    values.pop("steps_scale", None)  # applied by `scale_steps`, not recipe fields
    values.pop("steps_power", None)
    weights = {name: float(values.pop(f"weight_{name}")) for name in list_losses() if f"weight_{name}" in values}
    if weights:
        values["weights"] = weights
    return DistillRecipe.from_dict(values)


def scale_steps(recipe, arch, base: FreezeBase | None, max_scale: float, power: float = 1.0):
    """Per-trial budgets by cost: a student whose forward pass costs 1/k of the teacher's (analytic
    FLOPs at (1, 64)) trains min(k ** power, max_scale) times the recipe's steps (>= 1x), with its
    dev evaluations at the same fractions of the run. power 1 = equal training compute per trial;
    power 2 also gives a student further from the teacher the longer recovery it needs (measured
    on mr: a student that keeps every teacher layer is done in ~0 steps, one with half of them
    needs ~800). The recipe is changed in place and returned; without `base.teacher_flops` or with
    max_scale <= 1 it is unchanged."""
    if max_scale <= 1 or base is None or not base.teacher_flops:
        return recipe
    from hybridsearch.measure.flops import model_flops

    try:
        student = model_flops(arch, 64, 1)
    except Exception:  # noqa: BLE001 - an arch FLOPs cannot count keeps its budget (evaluate reports why)
        return recipe
    factor = min(float(max_scale), max(1.0, base.teacher_flops / max(student, 1)) ** float(power))
    recipe.eval_every = max(1, round(recipe.eval_every * factor))
    recipe.steps = max(1, round(recipe.steps * factor))
    return recipe
