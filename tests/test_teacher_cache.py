"""Teacher-output (logit) cache: hit, invalidation, corruption; and the `teacher` CLI end to end."""

from __future__ import annotations

import numpy as np
import pytest

from hybridsearch.data import register_task, unregister_task
from hybridsearch.errors import UserError
from hybridsearch.teacher import cache as cache_mod
from hybridsearch.teacher import load_teacher, logits_path, teacher_logits
from tests.data_helpers import make_pair_task, make_tiny_teacher, run_cli


@pytest.fixture
def pair_task():
    task = make_pair_task()
    register_task("tiny-pair", lambda cache, **_: make_pair_task(), "synthetic pairs", overwrite=True)
    yield task
    unregister_task("tiny-pair")


@pytest.fixture
def teacher(tmp_path):
    return load_teacher(make_tiny_teacher(tmp_path))


def no_compute(monkeypatch):
    import hybridsearch.teacher.load as load_mod

    monkeypatch.setattr(load_mod, "predict_logits", lambda *a, **k: pytest.fail("should load from the cache"))


def test_logits_computed_then_loaded(teacher, pair_task, monkeypatch):
    first = teacher_logits(teacher, pair_task, max_length=16)
    assert {k: v.shape for k, v in first.items()} == {"train": (40, 2), "dev": (10, 2), "test": (10, 2)}
    assert all(v.dtype == np.float32 for v in first.values())
    path = logits_path(teacher.fingerprint, pair_task.fingerprint, 16)
    assert path.is_file()
    no_compute(monkeypatch)
    second = teacher_logits(teacher, pair_task, max_length=16)
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])


def test_logits_match_an_unbatched_forward(teacher, pair_task):
    import torch

    from hybridsearch.teacher import encode

    logits = teacher_logits(teacher, pair_task, max_length=16, batch_size=7)["dev"]
    texts, pairs = pair_task.texts("dev")
    with torch.no_grad():
        ref = teacher.model(**encode(teacher.tokenizer, texts, pairs, 16)).logits.numpy()  # (N, C), full padding
    np.testing.assert_allclose(logits, ref, atol=1e-5)


def test_cache_keys_change_with_max_length_task_and_teacher(tmp_path, teacher, pair_task):
    teacher_logits(teacher, pair_task, max_length=16)
    teacher_logits(teacher, pair_task, max_length=12)
    teacher_logits(teacher, make_pair_task(seed=3), max_length=16)
    other = load_teacher(make_tiny_teacher(tmp_path, seed=5, name="other"))
    teacher_logits(other, pair_task, max_length=16)
    assert len(list(logits_path("x" * 16, "y" * 16, 1).parent.glob("*.safetensors"))) == 4


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "stale"])
def test_corrupt_cache_is_rebuilt_with_warning(teacher, pair_task, capsys, damage):
    good = teacher_logits(teacher, pair_task, max_length=16)
    path = logits_path(teacher.fingerprint, pair_task.fingerprint, 16)
    blob = bytearray(path.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip":
        blob[-3] ^= 0xFF  # a logit's byte: parses fine, checksum fails
    elif damage == "garbage":
        blob = bytearray(b"not a safetensors file")
    else:  # a valid file for other inputs under this name
        from safetensors.numpy import save

        arrays = {k: np.zeros_like(v) for k, v in good.items()}
        blob = bytearray(save(arrays, metadata={"format": cache_mod.FORMAT, "teacher": "other"}))
    path.write_bytes(bytes(blob))
    capsys.readouterr()
    rebuilt = teacher_logits(teacher, pair_task, max_length=16)
    err = capsys.readouterr().err
    assert "warning:" in err and "corrupt" in err and "rebuilding" in err
    for k in good:
        np.testing.assert_allclose(rebuilt[k], good[k], atol=1e-6)
    assert cache_mod._read(path, {"teacher": teacher.fingerprint}, {k: len(v) for k, v in good.items()}, 2)


def test_label_count_mismatch_is_a_user_error(tmp_path, pair_task):
    three = load_teacher(make_tiny_teacher(tmp_path, num_labels=3))
    with pytest.raises(UserError, match="3 labels"):
        teacher_logits(three, pair_task)


def test_cli_finetune_then_reuse_on_pair_task(tmp_path, pair_task, capsys):
    backbone = make_tiny_teacher(tmp_path)
    argv = ["teacher", "finetune", "--task", "tiny-pair", "--backbone", backbone, "--epochs", "1",
            "--lr", "1e-3", "--batch-size", "16", "--max-length", "16"]
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "tiny-pair dev" in out and "tiny-pair test" in out and "±" in out
    assert "saved fine-tuned teacher" in err and "teacher outputs computed" in err
    code, out2, err2 = run_cli(argv, capsys)
    assert code == 0 and "reusing fine-tuned teacher" in err2 and "loaded from cache" in err2
    assert out2.splitlines()[:2] == out.splitlines()[:2]


def test_cli_logits_with_ready_teacher_and_corrupt_cache(tmp_path, pair_task, capsys):
    teacher_dir = make_tiny_teacher(tmp_path)
    argv = ["teacher", "logits", "--task", "tiny-pair", "--teacher", teacher_dir, "--max-length", "16"]
    code, out, _ = run_cli(argv, capsys)
    assert code == 0 and "train" in out and "(40x2)" in out
    (path,) = logits_path("a" * 16, "b" * 16, 1).parent.glob("*.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    code, out2, err = run_cli(argv, capsys)
    assert code == 0 and "corrupt" in err and out2.splitlines()[:3] == out.splitlines()[:3]
