"""Component mapper and analytic FLOPs for the hybrid students (`hybridsearch.students`).

Rows: embeddings, projection (E -> hidden and residual width changes), each registered
block's mixer rows (from its descriptor, `BlockInfo.profile`: the transformer parts as for
BERT (Q/K/V, attention core, output projection), the CNN and BiLSTM token mixers, ...), FFN,
LayerNorms + residual adds, pooler + classifier. Only rows the student has are shown
(embeddings, LayerNorm+residual and head always). The `PostLNLayer` wrapper (residual
projection, LayerNorms, FFN) is mapped and counted here; a block's own mixer by its hooks.

Students run attention through `scaled_dot_product_attention` (what they deploy
with), so the attention core is one fused op; its time is still the attention
module's time minus its Linears. torch's FLOP counter does not see SDPA or LSTM
kernels on CPU, so those rows carry no counted cross-check (`BlockProfile.uncounted`).
"""

from __future__ import annotations

from hybridsearch.errors import UserError
from hybridsearch.measure.components import Component, ComponentMap, _join, register_mapper
from hybridsearch.measure.flops import ACTIVATION_FLOPS, EW, LAYERNORM_FLOPS, Flops

HEAD_COMPONENTS = [
    Component("embeddings", "Embeddings", "embeddings"),
    Component("projection", "Width projections (embedding E->H, residual)", "projections"),
]
TAIL_COMPONENTS = [
    Component("ffn", "FFN (up + activation + down)", "FFN"),
    Component("norm_residual", "LayerNorms + residual adds", "LayerNorm+resid"),
    Component("head", "Pooling + pooler + classifier", "pooler+classif"),
]
ALWAYS = {"embeddings", "norm_residual", "head"}


def student_components() -> list[Component]:
    """Every row a student can have, in display order: blocks' rows in registration order."""
    from hybridsearch.students.blocks import block_infos

    rows, seen = list(HEAD_COMPONENTS), {c.name for c in HEAD_COMPONENTS + TAIL_COMPONENTS}
    for info in block_infos().values():
        for name, label, short in info.profile.components if info.profile else ():
            if name not in seen:
                seen.add(name)
                rows.append(Component(name, label, short))
    return rows + TAIL_COMPONENTS


def _find_student(model):
    """(prefix, student) of the HybridStudent inside `model`; matched by class so that
    profiling a BERT never imports the students package."""
    for prefix, module in model.named_modules():
        cls = type(module)
        if cls.__name__ == "HybridStudent" and cls.__module__.startswith("hybridsearch.students"):
            return prefix, module
    return None, None


def _map_unit(block, lp: str, key: str, put) -> None:
    """Rows of a PostLNLayer's wrapper: residual adds, LayerNorms, residual projection, FFN."""
    from hybridsearch.students.blocks.base import FFN

    put(lp, "norm_residual", "residual adds + dropout (layer's own time)", is_glue=True)
    put(f"{lp}.norm1", "norm_residual", "LayerNorm modules")
    if block.norm2 is not None:
        put(f"{lp}.norm2", "norm_residual", "LayerNorm modules")
    if block.residual is not None:
        put(f"{lp}.residual", "projection", "residual width projection")
    if isinstance(block.ffn, FFN):
        put(f"{lp}.ffn", "ffn", "activation (FFN's own time)", is_glue=True)
        put(f"{lp}.ffn.up", "ffn", "up Linear")
        put(f"{lp}.ffn.down", "ffn", "down Linear")
    elif block.ffn is not None:
        raise UserError(f"student layer {key} has an unknown FFN {type(block.ffn).__name__}")


def _map_layer(block, lp: str, key: str, put) -> None:
    """Rows of one student layer, through its block's descriptor."""
    from hybridsearch.students.blocks.base import PostLNLayer

    info = block.info
    if info.free:
        put(lp, "norm_residual", f"{block.block_name} layers (pass-through)", is_glue=True)
        return
    if info.profile is None:
        raise UserError(f"student layer {key} is a {block.block_name!r} block, whose descriptor has no profile; "
                        "the profiler does not know it")
    if isinstance(block, PostLNLayer):
        _map_unit(block, lp, key, put)
        info.profile.map_parts(block.mixer, f"{lp}.mixer", put)
    else:
        info.profile.map_parts(block, lp, put)


@register_mapper("hybrid-student")
def student_mapper(model) -> ComponentMap | None:
    """HybridStudent (bare, or inside transformers' HybridStudentForSequenceClassification)."""
    prefix, student = _find_student(model)
    if student is None:
        return None
    owner: dict[str, tuple[str, str]] = {}
    glue: set[str] = set()

    def put(name: str, component: str, part: str, is_glue: bool = False) -> None:
        owner[name] = (component, part)
        if is_glue:
            glue.add(name)

    S = prefix
    put("", "head", "model wrapper")
    put(S, "head", "student's own time: mask/context, layer loop, pooling, tanh, dropout", is_glue=True)
    put(_join(S, "embeddings"), "embeddings", "lookups, sum, LayerNorm, dropout")
    if student.embeddings.project is not None:
        put(_join(S, "embeddings", "project"), "projection", "embedding projection E -> H")
    put(_join(S, "pooler"), "head", "pooler Linear")
    put(_join(S, "classifier"), "head", "classifier Linear")
    put(_join(S, "layers"), "norm_residual", "layer wiring", is_glue=True)
    uncounted: set[str] = set()
    for key, block in student.layers.items():
        _map_layer(block, _join(S, "layers", key), key, put)
        if block.info.profile is not None:
            uncounted |= block.info.profile.uncounted
    used = {c for c, _ in owner.values()} | ALWAYS
    arch = student.arch
    return ComponentMap(
        "hybrid-student", [c for c in student_components() if c.name in used], owner, glue,
        flops=lambda seq_len, batch: student_component_flops(arch, seq_len, batch),
        vocab_size=int(arch.embedding.vocab_size),
        max_positions=int(arch.embedding.max_positions),
        type_vocab_size=int(arch.embedding.type_vocab),
        summary=_summary(arch),
        uncounted=uncounted,
    )


def _summary(arch) -> dict:
    blocks = [spec.block for spec in arch.layers]
    return {"model_type": "hybridsearch-student", "hidden_size": arch.hidden, "embedding_size": arch.embedding_size,
            "layers": blocks, "num_layers": len(blocks), "share_groups": arch.share_groups, "pooling": arch.pooling,
            "vocab_size": arch.embedding.vocab_size, "max_position_embeddings": arch.embedding.max_positions,
            "num_labels": arch.num_labels}


def _unit_flops(f: dict, spec, h_in: int, h: int, N: int, has_ffn: bool) -> None:
    """FLOPs of a PostLNLayer's wrapper: residual projection, residual adds + LayerNorms, FFN."""
    if h_in != h:
        f["projection"].matmul += 2 * N * h_in * h
        f["projection"].other += N * h
    f["norm_residual"].other += N * h * (1 + LAYERNORM_FLOPS)
    if has_ffn and spec.ffn:
        f["ffn"].matmul += 2 * 2 * N * h * spec.ffn
        f["ffn"].other += N * spec.ffn + N * h + N * spec.ffn * ACTIVATION_FLOPS
        f["norm_residual"].other += N * h * (1 + LAYERNORM_FLOPS)


def _layer_flops(f: dict, spec, h_in: int, h: int, B: int, T: int) -> None:
    """Add one layer's FLOPs to `f`: its mixer through the descriptor, the PostLN wrapper here."""
    from hybridsearch.students.blocks import block_info, get_block
    from hybridsearch.students.blocks.base import PostLNLayer

    info = block_info(spec.block)
    if info.free:
        return
    if info.profile is None:
        raise UserError(f"block {spec.block!r} declares no FLOPs (BlockInfo.profile); add one to its descriptor")
    if issubclass(get_block(spec.block), PostLNLayer):
        _unit_flops(f, spec, h_in, h, B * T, info.field("ffn") is not None)
    for name, (matmul, other) in info.profile.flops(spec, h_in, h, B, T, EW).items():
        f[name].matmul += matmul
        f[name].other += other


def student_component_flops(arch, seq_len: int, batch: int = 1) -> dict[str, Flops]:
    """Analytic FLOPs per student component (conventions of `measure.flops`); shared layers count each run."""
    B, T = int(batch), int(seq_len)
    N = B * T
    E, H0 = arch.embedding_size, arch.hidden
    f = {c.name: Flops() for c in student_components()}
    tables = 3 if arch.embedding.type_vocab else 2
    f["embeddings"].other += N * E * (tables - 1) + N * E * LAYERNORM_FLOPS
    if E != H0:
        f["projection"].matmul += 2 * N * E * H0
        f["projection"].other += N * H0
    for (h_in, h), spec in zip(arch.layer_dims(), arch.layers):
        _layer_flops(f, spec, h_in, h, B, T)
    H, C = arch.out_hidden, arch.num_labels
    pool = 0 if arch.pooling == "cls" else 2 * N * H + B * H
    f["head"].matmul += 2 * B * H * H + 2 * B * H * C
    f["head"].other += pool + B * H + B * H * ACTIVATION_FLOPS + B * C
    return f
