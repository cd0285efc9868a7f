"""Component mapper and analytic FLOPs for the hybrid students (`hybridsearch.students`).

Rows: embeddings, projection (E -> hidden and residual width changes), the
transformer parts as for BERT (Q/K/V, attention core, output projection), the CNN
and BiLSTM token mixers, FFN, LayerNorms + residual adds, pooler + classifier.
Only rows the student has are shown (embeddings, LayerNorm+residual and head always).

Students run attention through `scaled_dot_product_attention` (what they deploy
with), so the attention core is one fused op; its time is still the attention
module's time minus its Linears. torch's FLOP counter does not see SDPA or LSTM
kernels on CPU, so those rows carry no counted cross-check (`uncounted`).
"""

from __future__ import annotations

from hybridsearch.errors import UserError
from hybridsearch.measure.components import Component, ComponentMap, _join, register_mapper
from hybridsearch.measure.flops import ACTIVATION_FLOPS, LAYERNORM_FLOPS, SOFTMAX_FLOPS, Flops

STUDENT_COMPONENTS = [
    Component("embeddings", "Embeddings", "embeddings"),
    Component("projection", "Width projections (embedding E->H, residual)", "projections"),
    Component("attn_qkv", "Attention input projections (Q, K, V)", "Q/K/V proj"),
    Component("attn_core", "Attention core (SDPA: scores, softmax, context)", "attention core"),
    Component("attn_out", "Attention output projection", "attn out proj"),
    Component("cnn", "CNN token mixer (conv + activation)", "CNN mixer"),
    Component("bilstm", "BiLSTM token mixer (2 LSTMs + projection)", "BiLSTM mixer"),
    Component("ffn", "FFN (up + activation + down)", "FFN"),
    Component("norm_residual", "LayerNorms + residual adds", "LayerNorm+resid"),
    Component("head", "Pooling + pooler + classifier", "pooler+classif"),
]
ALWAYS = {"embeddings", "norm_residual", "head"}


def _find_student(model):
    """(prefix, student) of the HybridStudent inside `model`; matched by class so that
    profiling a BERT never imports the students package."""
    for prefix, module in model.named_modules():
        cls = type(module)
        if cls.__name__ == "HybridStudent" and cls.__module__.startswith("hybridsearch.students"):
            return prefix, module
    return None, None


@register_mapper("hybrid-student")
def student_mapper(model) -> ComponentMap | None:
    """HybridStudent (bare, or inside transformers' HybridStudentForSequenceClassification)."""
    prefix, student = _find_student(model)
    if student is None:
        return None
    from hybridsearch.students.blocks.base import FFN, PostLNLayer
    from hybridsearch.students.blocks.bilstm import BiLSTMMixer
    from hybridsearch.students.blocks.cnn import ConvMixer
    from hybridsearch.students.blocks.skip import SkipBlock
    from hybridsearch.students.blocks.transformer import SelfAttention

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
    for key, block in student.layers.items():
        lp = _join(S, "layers", key)
        if isinstance(block, SkipBlock):
            put(lp, "norm_residual", "skip layers (pass-through)", is_glue=True)
            continue
        if not isinstance(block, PostLNLayer):
            raise UserError(f"student layer {key} is a {type(block).__name__}, which the profiler does not know")
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
        mixer, mp = block.mixer, f"{lp}.mixer"
        if isinstance(mixer, SelfAttention):
            put(mp, "attn_core", "self-attention minus its Linears (split, SDPA, merge)", is_glue=True)
            for proj in ("query", "key", "value"):
                put(f"{mp}.{proj}", "attn_qkv", "Q/K/V Linear modules")
            put(f"{mp}.out", "attn_out", "output Linear")
        elif isinstance(mixer, ConvMixer):
            put(mp, "cnn", "conv mixer's own time (mask, padding, taps, activation)", is_glue=True)
            for part in ("conv", "depthwise", "pointwise"):
                if hasattr(mixer, part):
                    put(f"{mp}.{part}", "cnn", f"{part} module")
        elif isinstance(mixer, BiLSTMMixer):
            put(mp, "bilstm", "BiLSTM mixer's own time (mask, reversal, concat)", is_glue=True)
            put(f"{mp}.fwd", "bilstm", "forward LSTM")
            put(f"{mp}.bwd", "bilstm", "backward LSTM")
            put(f"{mp}.proj", "bilstm", "projection Linear 2*lstm_hidden -> H")
        else:
            raise UserError(f"student layer {key} has an unknown mixer {type(mixer).__name__}")
    used = {c for c, _ in owner.values()} | ALWAYS
    arch = student.arch
    return ComponentMap(
        "hybrid-student", [c for c in STUDENT_COMPONENTS if c.name in used], owner, glue,
        flops=lambda seq_len, batch: student_component_flops(arch, seq_len, batch),
        vocab_size=int(arch.embedding.vocab_size),
        max_positions=int(arch.embedding.max_positions),
        type_vocab_size=int(arch.embedding.type_vocab),
        summary=_summary(arch),
        uncounted={"attn_core", "bilstm"},
    )


def _summary(arch) -> dict:
    blocks = [spec.block for spec in arch.layers]
    return {"model_type": "hybridsearch-student", "hidden_size": arch.hidden, "embedding_size": arch.embedding_size,
            "layers": blocks, "num_layers": len(blocks), "share_groups": arch.share_groups, "pooling": arch.pooling,
            "vocab_size": arch.embedding.vocab_size, "max_position_embeddings": arch.embedding.max_positions,
            "num_labels": arch.num_labels}


def student_component_flops(arch, seq_len: int, batch: int = 1) -> dict[str, Flops]:
    """Analytic FLOPs per student component (conventions of `measure.flops`); shared layers count each run."""
    B, T = int(batch), int(seq_len)
    N = B * T
    E, H0 = arch.embedding_size, arch.hidden
    f = {c.name: Flops() for c in STUDENT_COMPONENTS}
    tables = 3 if arch.embedding.type_vocab else 2
    f["embeddings"].other += N * E * (tables - 1) + N * E * LAYERNORM_FLOPS
    if E != H0:
        f["projection"].matmul += 2 * N * E * H0
        f["projection"].other += N * H0
    for (h_in, h), spec in zip(arch.layer_dims(), arch.layers):
        if spec.block == "skip":
            continue
        if h_in != h:
            f["projection"].matmul += 2 * N * h_in * h
            f["projection"].other += N * h
        if spec.block == "transformer":
            inner = spec.heads * spec.head_size
            f["attn_qkv"].matmul += 3 * 2 * N * h_in * inner
            f["attn_qkv"].other += 3 * N * inner
            f["attn_core"].matmul += 2 * 2 * B * spec.heads * T * T * spec.head_size
            f["attn_core"].other += B * spec.heads * T * T * (1 + SOFTMAX_FLOPS)
            f["attn_out"].matmul += 2 * N * inner * h
            f["attn_out"].other += N * h
        elif spec.block == "cnn":
            k = spec.kernel
            c = f["cnn"]
            c.other += N * h_in + N * h * ACTIVATION_FLOPS  # padding mask, activation
            if spec.separable:
                c.matmul += 2 * N * h_in * k + 2 * N * h_in * h  # depthwise conv, pointwise Linear
                c.other += N * h_in + N * h  # their biases
            else:
                c.matmul += 2 * N * k * h_in * h
                c.other += N * h
        elif spec.block == "bilstm":
            hl = spec.lstm_hidden
            c = f["bilstm"]
            # per direction and token: input and recurrent matmuls, 2 biases, 5 gate activations, cell update
            c.matmul += 2 * N * (2 * h_in * 4 * hl + 2 * hl * 4 * hl)
            c.other += 2 * N * (2 * 4 * hl + 5 * hl * ACTIVATION_FLOPS + 4 * hl)
            c.matmul += 2 * N * 2 * hl * h  # projection
            c.other += N * h_in + N * h
        f["norm_residual"].other += N * h * (1 + LAYERNORM_FLOPS)
        if spec.ffn:
            f["ffn"].matmul += 2 * 2 * N * h * spec.ffn
            f["ffn"].other += N * spec.ffn + N * h + N * spec.ffn * ACTIVATION_FLOPS
            f["norm_residual"].other += N * h * (1 + LAYERNORM_FLOPS)
    H, C = arch.out_hidden, arch.num_labels
    pool = 0 if arch.pooling == "cls" else 2 * N * H + B * H
    f["head"].matmul += 2 * B * H * H + 2 * B * H * C
    f["head"].other += pool + B * H + B * H * ACTIVATION_FLOPS + B * C
    return f
