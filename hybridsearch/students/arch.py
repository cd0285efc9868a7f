"""StudentArch: a plain, JSON-serialisable description of a hybrid student model.

Only the model is described here (the distillation recipe lives in `distill/`).
No torch at import time; `validate()` imports the block registry lazily.

Hidden sizes: `StudentArch.hidden` is the width of the embedding output (after the
E -> hidden projection when `embedding.size` differs). A layer's `hidden=None`
keeps its input width; a different value puts a learned projection on the
residual path of that layer. A `skip` layer passes its input through unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from hybridsearch.errors import UserError

WEIGHT_BITS = (32, 16, 8, 4, 3, 2)
ACT_BITS = (32, 8)
MAX_SPARSITY = 0.9
POOLINGS = ("cls", "mean", "max")


@dataclass
class EmbeddingSpec:
    """Token / position / segment embeddings.

    vocab_size: the teacher tokenizer's vocabulary size (ids the model accepts).
    kept_tokens: optional list of teacher token ids to keep (vocabulary reduction);
        row i of the student's word embedding is teacher id kept_tokens[i]; the model
        holds a remap table, ids outside the kept set map to `unk_id` (the teacher's
        [UNK] id, used only with kept_tokens). `pad_id` is informational.
    size: embedding size E; None means E = StudentArch.hidden (no factorization).
    """

    vocab_size: int = 30522
    size: int | None = None
    kept_tokens: list[int] | None = None
    unk_id: int = 100
    pad_id: int = 0
    max_positions: int = 512
    type_vocab: int = 2
    weight_bits: int = 32

    @property
    def rows(self) -> int:
        """Rows of the student's word-embedding matrix."""
        return len(self.kept_tokens) if self.kept_tokens is not None else self.vocab_size


@dataclass
class LayerSpec:
    """One encoder unit. Fields a block does not use are ignored (keep them None).

    Which fields a block reads is declared with its registration (`BlockInfo.fields` in
    students/blocks/<name>.py) and checked by `validate()`; today:
    transformer: heads, head_size (independent of hidden), ffn, attn_decomposition
        (sentence pairs: tokens attend within their own segment), local_window
        (each token attends within +-w positions; CLS stays global; None = global).
    cnn: kernel, dilation, separable (depthwise + pointwise), ffn (None = no FFN).
    bilstm: lstm_hidden (per direction), ffn (None = no FFN).
    skip: nothing; the unit is dropped.
    Compression: weight_bits in WEIGHT_BITS, act_bits in ACT_BITS, sparsity in [0, 0.9].
    teacher_layer: optional hint, the teacher layer this unit is initialised from /
        distilled against.
    """

    block: str
    hidden: int | None = None
    heads: int | None = None
    head_size: int | None = None
    ffn: int | None = None
    attn_decomposition: bool = False
    local_window: int | None = None
    kernel: int | None = None
    dilation: int = 1
    separable: bool = False
    lstm_hidden: int | None = None
    weight_bits: int = 32
    act_bits: int = 32
    sparsity: float = 0.0
    teacher_layer: int | None = None


@dataclass
class StudentArch:
    """A hybrid student: embeddings, a list of layers, sharing groups, a classifier head."""

    embedding: EmbeddingSpec
    hidden: int
    layers: list[LayerSpec]
    share_groups: list[list[int]] = field(default_factory=list)
    pooling: str = "cls"
    num_labels: int = 2
    id2label: dict[int, str] | None = None
    hidden_act: str = "gelu"
    dropout: float = 0.1
    attn_dropout: float = 0.1
    layer_norm_eps: float = 1e-12

    # ---- derived shapes -------------------------------------------------
    @property
    def embedding_size(self) -> int:
        """E: the embedding width before the (optional) projection to `hidden`."""
        return self.embedding.size if self.embedding.size is not None else self.hidden

    def layer_dims(self) -> list[tuple[int, int]]:
        """(in_hidden, out_hidden) of every layer; a skip layer keeps its input width."""
        dims, width = [], self.hidden
        for spec in self.layers:
            out = width if spec.block == "skip" or spec.hidden is None else spec.hidden
            dims.append((width, out))
            width = out
        return dims

    @property
    def out_hidden(self) -> int:
        """Width of the last layer's output (what the pooler and classifier see)."""
        dims = self.layer_dims()
        return dims[-1][1] if dims else self.hidden

    def share_map(self) -> list[int]:
        """For each layer, the index of the layer whose module it uses (itself unless shared)."""
        owner = list(range(len(self.layers)))
        for group in self.share_groups:
            first = min(group)
            for i in group:
                owner[i] = first
        return owner

    # ---- JSON -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentArch:
        if not isinstance(data, dict):
            raise UserError(f"student arch must be a JSON object, got {type(data).__name__}; fix the file")
        data = dict(data)
        _check_keys(data, cls, "arch")
        emb = data.get("embedding") or {}
        _check_keys(emb, EmbeddingSpec, "embedding")
        data["embedding"] = EmbeddingSpec(**emb)
        layers = []
        for i, layer in enumerate(data.get("layers") or []):
            if not isinstance(layer, dict) or "block" not in layer:
                from hybridsearch.students.blocks import list_blocks

                raise UserError(f"layer {i}: needs a 'block' field; add block: {'|'.join(list_blocks())}")
            _check_keys(layer, LayerSpec, f"layer {i}")
            layers.append(LayerSpec(**layer))
        data["layers"] = layers
        if data.get("id2label") is not None:
            data["id2label"] = {int(k): str(v) for k, v in data["id2label"].items()}
        data["share_groups"] = [list(g) for g in data.get("share_groups") or []]
        if "hidden" not in data:
            raise UserError("arch: missing 'hidden' (the embedding output width); add it")
        return cls(**data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> StudentArch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"student arch is not valid JSON ({e}); fix the file") from e
        return cls.from_dict(data)

    # ---- validation -----------------------------------------------------------
    def validate(self, is_pair: bool | None = None) -> StudentArch:
        """Raise UserError (one line naming the layer and field) if the arch cannot be built.

        is_pair: whether the task has sentence pairs; False rejects attention
        decomposition, None skips that check. Returns self.
        """
        _validate(self, is_pair)
        return self


def _check_keys(data: dict, cls, where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")


def _positive(value, where: str, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{where}: {name} must be a positive integer, got {value!r}; fix {name}")


def _validate(arch: StudentArch, is_pair: bool | None) -> None:
    from hybridsearch.students.blocks import get_block, list_blocks

    emb = arch.embedding
    for name in ("vocab_size", "max_positions", "type_vocab"):
        _positive(getattr(emb, name), "embedding", name)
    _positive(arch.hidden, "arch", "hidden")
    _positive(arch.num_labels, "arch", "num_labels")
    if emb.size is not None:
        _positive(emb.size, "embedding", "size")
    if emb.weight_bits not in WEIGHT_BITS:
        raise UserError(f"embedding: weight_bits {emb.weight_bits!r} not offered; use one of {list(WEIGHT_BITS)}")
    if emb.kept_tokens is not None:
        if not isinstance(emb.unk_id, int) or not 0 <= emb.unk_id < emb.vocab_size:
            raise UserError(f"embedding: unk_id {emb.unk_id!r} outside the vocabulary [0, {emb.vocab_size}); fix unk_id")
        kept = emb.kept_tokens
        if not kept or any(not isinstance(t, int) or not 0 <= t < emb.vocab_size for t in kept):
            raise UserError(f"embedding: kept_tokens must be non-empty ids in [0, {emb.vocab_size}); fix kept_tokens")
        if len(set(kept)) != len(kept):
            raise UserError("embedding: kept_tokens has duplicate ids; remove them")
        if emb.unk_id not in kept:
            raise UserError(f"embedding: kept_tokens must contain unk_id {emb.unk_id}; add it")
    if arch.pooling not in POOLINGS:
        raise UserError(f"arch: pooling {arch.pooling!r} unknown; use one of {list(POOLINGS)}")
    if arch.id2label is not None and sorted(arch.id2label) != list(range(arch.num_labels)):
        raise UserError(f"arch: id2label keys must be 0..{arch.num_labels - 1}; fix id2label or num_labels")
    for name in ("dropout", "attn_dropout"):
        if not 0.0 <= getattr(arch, name) < 1.0:
            raise UserError(f"arch: {name} must be in [0, 1); fix {name}")
    if arch.hidden_act not in ("gelu", "relu", "gelu_new", "tanh"):
        raise UserError(f"arch: hidden_act {arch.hidden_act!r} unknown; use gelu, gelu_new, relu or tanh")
    if not arch.layers or all(s.block == "skip" for s in arch.layers):
        raise UserError("arch: empty student (no layers, or every layer is skip); keep at least one layer")

    dims = arch.layer_dims()
    for i, spec in enumerate(arch.layers):
        where = f"layer {i} ({spec.block})"
        if spec.block not in list_blocks():
            raise UserError(f"layer {i}: unknown block type {spec.block!r}; use one of {list_blocks()}")
        if spec.hidden is not None:
            _positive(spec.hidden, where, "hidden")
            if spec.block == "skip" and spec.hidden != dims[i][0]:
                raise UserError(
                    f"{where}: hidden {spec.hidden} cannot be projected from input width {dims[i][0]} "
                    f"by a skip layer; set hidden to null or {dims[i][0]}"
                )
        if spec.weight_bits not in WEIGHT_BITS:
            raise UserError(f"{where}: weight_bits {spec.weight_bits!r} not offered; use one of {list(WEIGHT_BITS)}")
        if spec.act_bits not in ACT_BITS:
            raise UserError(f"{where}: act_bits {spec.act_bits!r} not offered; use one of {list(ACT_BITS)}")
        if isinstance(spec.sparsity, bool) or not isinstance(spec.sparsity, (int, float)) or not (
            0.0 <= spec.sparsity <= MAX_SPARSITY
        ):
            raise UserError(f"{where}: sparsity {spec.sparsity!r} outside [0, {MAX_SPARSITY}]; fix sparsity")
        get_block(spec.block).check_spec(spec, where)
        if spec.attn_decomposition and is_pair is False:
            raise UserError(
                f"{where}: attn_decomposition needs a sentence-pair task; set attn_decomposition to false"
            )
        if spec.teacher_layer is not None and (not isinstance(spec.teacher_layer, int) or spec.teacher_layer < 0):
            raise UserError(f"{where}: teacher_layer must be a non-negative integer; fix teacher_layer")

    seen: set[int] = set()
    for g, group in enumerate(arch.share_groups):
        if len(group) < 2:
            raise UserError(f"share_groups[{g}]: a group needs at least two layers; remove it")
        for i in group:
            if not isinstance(i, int) or not 0 <= i < len(arch.layers):
                raise UserError(f"share_groups[{g}]: layer index {i!r} out of range 0..{len(arch.layers) - 1}")
            if i in seen:
                raise UserError(f"share_groups[{g}]: layer {i} is in more than one group; keep it in one")
            seen.add(i)
        first = arch.layers[group[0]]
        for i in group[1:]:
            diff = _spec_diff(first, arch.layers[i]) or ("hidden" if dims[i] != dims[group[0]] else None)
            if diff:
                raise UserError(
                    f"share_groups[{g}]: layer {i} differs from layer {group[0]} in {diff}; shared layers must be identical"
                )


def _spec_diff(a: LayerSpec, b: LayerSpec) -> str | None:
    """Name of the first field where two layer specs differ (hidden and teacher_layer excepted)."""
    for f in dataclasses.fields(LayerSpec):
        if f.name not in ("hidden", "teacher_layer") and getattr(a, f.name) != getattr(b, f.name):
            return f.name
    return None
