"""Build a student from a teacher: the teacher's own shape, and weight initialisation.

`arch_from_teacher_config(config)` -> StudentArch of the teacher's shape (all transformer).
`init_from_teacher(arch, teacher, batch=None)` -> HybridStudent whose weights come from a
BERT-architecture teacher (`BertForSequenceClassification` or `BertModel`):

- embeddings: copied (reduced vocabularies keep their rows). When E differs from the
  teacher width, the word / position / segment tables are the teacher's projected on
  the top-E right singular vectors of the teacher word-embedding matrix (truncated SVD);
  the E -> hidden projection maps back along those vectors, scaled by the teacher's
  embedding LayerNorm (an approximation that distillation refines).
- transformer layers: copied from teacher layer `spec.teacher_layer`, or by uniform
  mapping (student layer i of L -> teacher layer round((i+1) * L_t / L) - 1), when the
  layer's in / out widths equal the teacher's hidden size, its head size equals the
  teacher's, and heads / ffn do not exceed the teacher's. The kept heads and FFN neurons
  (in teacher order) are the most important ones:
    * without a batch: weight magnitude, a head's importance is the L1 norm of its
      columns of the attention output projection plus its rows of query/key/value; a
      neuron's is the L1 norm of its row of the FFN up projection plus its column of down;
    * with a batch (dict of input_ids, attention_mask, [token_type_ids], [labels]): first-
      order Taylor importance, sum |w * dL/dw| over the same weights, L the cross-entropy
      on the labels (the teacher's own predictions when labels are absent).
  Other transformer layers, and all cnn / bilstm layers, start fresh (BERT init).
- pooler / classifier: copied when the last width equals the teacher's (classifier also
  needs the same number of labels).
"""

from __future__ import annotations

import torch

from hybridsearch.errors import UserError
from hybridsearch.students.arch import EmbeddingSpec, LayerSpec, StudentArch


def arch_from_teacher_config(config, tokenizer=None) -> StudentArch:
    """The teacher's own shape as a StudentArch (transformer layers, cls pooling)."""
    H, nh = config.hidden_size, config.num_attention_heads
    unk = getattr(tokenizer, "unk_token_id", None)
    emb = EmbeddingSpec(
        vocab_size=config.vocab_size, size=None, unk_id=100 if unk is None else unk,
        pad_id=config.pad_token_id or 0, max_positions=config.max_position_embeddings,
        type_vocab=config.type_vocab_size,
    )
    layers = [
        LayerSpec(block="transformer", heads=nh, head_size=H // nh, ffn=config.intermediate_size, teacher_layer=i)
        for i in range(config.num_hidden_layers)
    ]
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()} or None
    if id2label is not None and len(id2label) != config.num_labels:
        id2label = None
    return StudentArch(
        embedding=emb, hidden=H, layers=layers, pooling="cls", num_labels=config.num_labels, id2label=id2label,
        hidden_act=config.hidden_act if isinstance(config.hidden_act, str) else "gelu",
        dropout=config.hidden_dropout_prob, attn_dropout=config.attention_probs_dropout_prob,
        layer_norm_eps=config.layer_norm_eps,
    )


def _bert(teacher):
    model_type = getattr(teacher.config, "model_type", "?")
    if model_type != "bert":
        raise UserError(f"init_from_teacher supports BERT-architecture teachers; got model_type {model_type!r}")
    return teacher.bert if hasattr(teacher, "bert") else teacher


def _copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    assert dst.shape == src.shape, (tuple(dst.shape), tuple(src.shape))
    with torch.no_grad():
        dst.copy_(src)


def _copy_linear(dst, src, rows=None, cols=None) -> None:
    """dst.weight = src.weight[rows][:, cols]; dst.bias = src.bias[rows]."""
    w, b = src.weight, src.bias
    if rows is not None:
        w, b = w[rows], b[rows]
    if cols is not None:
        w = w[:, cols]
    _copy(dst.weight, w)
    _copy(dst.bias, b)


def _taylor_grads(teacher, batch) -> dict:
    """Gradients of the cross-entropy on `batch` w.r.t. every teacher parameter (teacher unchanged)."""
    import torch.nn.functional as F

    if not hasattr(teacher, "classifier"):
        raise UserError("Taylor importance needs a teacher with a classifier head; pass batch=None")
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    was_training = teacher.training
    teacher.eval()
    teacher.zero_grad(set_to_none=True)
    with torch.enable_grad():
        logits = teacher(**inputs).logits  # (B, C)
        labels = batch.get("labels")
        labels = logits.argmax(-1).detach() if labels is None else labels
        F.cross_entropy(logits, labels).backward()
    grads = {n: p.grad.detach().clone() for n, p in teacher.named_parameters() if p.grad is not None}
    teacher.zero_grad(set_to_none=True)
    teacher.train(was_training)
    return grads


def _importance(layer, prefix: str, heads: int, hs: int, grads: dict | None):
    """(head scores (heads,), neuron scores (ffn,)) of one teacher BertLayer."""
    att, ffn_up, ffn_down = layer.attention, layer.intermediate.dense, layer.output.dense

    def score(mod, name):  # elementwise score matrix of a Linear weight
        w = mod.weight.detach()
        if grads is None:
            return w.abs()
        g = grads.get(f"{prefix}.{name}.weight")
        return (w * g).abs() if g is not None else torch.zeros_like(w)

    qkv = sum(score(getattr(att.self, n), f"attention.self.{n}").sum(1) for n in ("query", "key", "value"))
    out = score(att.output.dense, "attention.output.dense").sum(0)  # (heads*hs,)
    head = (qkv + out).view(heads, hs).sum(1)  # (heads,)
    neuron = score(ffn_up, "intermediate.dense").sum(1) + score(ffn_down, "output.dense").sum(0)  # (ffn,)
    return head, neuron


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k largest scores, in ascending index order (ties: lower index first)."""
    order = torch.argsort(-scores, stable=True)[:k]
    return order.sort().values


def teacher_layer_for(i: int, n_student: int, n_teacher: int, hint: int | None) -> int:
    """Teacher layer a student layer maps to: the hint, else uniform."""
    if hint is not None:
        return hint
    return max(0, round((i + 1) * n_teacher / n_student) - 1)


def init_from_teacher(arch: StudentArch, teacher, batch: dict | None = None):
    """A HybridStudent (on CPU) for `arch` with weights taken from `teacher` (see the module docstring).
    A teacher left on a GPU (by a latency measurement) is moved back to CPU first, in place."""
    from hybridsearch.students.model import HybridStudent

    teacher.to("cpu")
    bert = _bert(teacher)
    cfg = teacher.config
    Ht, nh_t = cfg.hidden_size, cfg.num_attention_heads
    hs_t = Ht // nh_t
    if arch.embedding.vocab_size != cfg.vocab_size:
        raise UserError(f"arch vocab_size {arch.embedding.vocab_size} != teacher's {cfg.vocab_size}; "
                        "use the teacher's tokenizer vocabulary size")
    student = HybridStudent(arch)
    grads = _taylor_grads(teacher, batch) if batch is not None else None
    base = "bert." if bert is not teacher else ""
    with torch.no_grad():
        _init_embeddings(student, arch, bert.embeddings, Ht)
        n_t, n_s = cfg.num_hidden_layers, len(arch.layers)
        for i, ((h_in, h_out), spec) in enumerate(zip(arch.layer_dims(), arch.layers)):
            if student.share_map[i] != i or spec.block != "transformer":
                continue
            t = teacher_layer_for(i, n_s, n_t, spec.teacher_layer)
            if t >= n_t:
                raise UserError(f"layer {i} ({spec.block}): teacher_layer {t} but the teacher has {n_t} layers; "
                                f"use 0..{n_t - 1} or null")
            if not (h_in == h_out == Ht and spec.head_size == hs_t and spec.heads <= nh_t
                    and spec.ffn <= cfg.intermediate_size):
                continue
            src = bert.encoder.layer[t]
            head_s, neuron_s = _importance(src, f"{base}encoder.layer.{t}", nh_t, hs_t, grads)
            heads = _top(head_s, spec.heads)  # (heads,)
            cols = (heads[:, None] * hs_t + torch.arange(hs_t)).reshape(-1)  # (heads*hs,)
            neurons = _top(neuron_s, spec.ffn)  # (ffn,)
            _load_layer(student.block(i), src, cols, neurons)
        if hasattr(bert, "pooler") and bert.pooler is not None and arch.out_hidden == Ht:
            _copy_linear(student.pooler, bert.pooler.dense)
            if hasattr(teacher, "classifier") and teacher.classifier.out_features == arch.num_labels:
                _copy_linear(student.classifier, teacher.classifier)
    return student


def _load_layer(dst, src, cols: torch.Tensor, neurons: torch.Tensor) -> None:
    """Teacher BertLayer -> student TransformerBlock, keeping attention columns `cols` and FFN `neurons`."""
    att = src.attention
    for n in ("query", "key", "value"):
        _copy_linear(getattr(dst.mixer, n), getattr(att.self, n), rows=cols)
    _copy_linear(dst.mixer.out, att.output.dense, cols=cols)
    _copy(dst.norm1.weight, att.output.LayerNorm.weight)
    _copy(dst.norm1.bias, att.output.LayerNorm.bias)
    _copy_linear(dst.ffn.up, src.intermediate.dense, rows=neurons)
    _copy_linear(dst.ffn.down, src.output.dense, cols=neurons)
    _copy(dst.norm2.weight, src.output.LayerNorm.weight)
    _copy(dst.norm2.bias, src.output.LayerNorm.bias)


def _init_embeddings(student, arch: StudentArch, temb, Ht: int) -> None:
    """Copy (or SVD-factorize) the teacher's embeddings into student.embeddings."""
    emb, E = student.embeddings, arch.embedding_size
    kept = arch.embedding.kept_tokens
    W = temb.word_embeddings.weight  # (V, Ht)
    P = temb.position_embeddings.weight[: arch.embedding.max_positions]  # (P, Ht)
    S = temb.token_type_embeddings.weight[: arch.embedding.type_vocab]  # (types, Ht)
    if P.shape[0] < arch.embedding.max_positions or S.shape[0] < arch.embedding.type_vocab:
        raise UserError("arch max_positions / type_vocab exceed the teacher's; lower them")
    rows = torch.tensor(kept) if kept is not None else slice(None)
    if E == Ht:
        basis = None
        _copy(emb.norm.weight, temb.LayerNorm.weight)
        _copy(emb.norm.bias, temb.LayerNorm.bias)
    else:
        _, _, Vh = torch.linalg.svd(W.float(), full_matrices=False)  # Vh (Ht, Ht)
        basis = Vh[:E].T.to(W.dtype)  # (Ht, E) top right singular vectors
        W, P, S = W @ basis, P @ basis, S @ basis  # (V, E), (P, E), (types, E)
    _copy(emb.word.weight, W[rows])
    _copy(emb.position.weight, P)
    _copy(emb.token_type.weight, S)
    if basis is not None and emb.project is not None and arch.hidden == Ht:
        gamma = temb.LayerNorm.weight  # (Ht,)
        _copy(emb.project.weight, gamma[:, None] * basis * (Ht / E) ** 0.5)  # (Ht, E)
        _copy(emb.project.bias, temb.LayerNorm.bias)
