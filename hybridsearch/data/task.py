"""Task objects: a `TaskSpec`, three labelled splits and a content fingerprint.

Contract:
- `make_task(spec, splits)` builds a `Task` from plain python lists
  (`{"train": {"text": [...], "text_pair": [...]?, "label": [...]}, "dev": ..., "test": ...}`),
  checking that every label fits `spec.num_labels` (else `UserError`) and running
  `hybridsearch.data.checks` on the rows: rows with missing values dropped, train rows that
  duplicate a dev/test text dropped, >= 2 train classes and no dev/test label unknown to train.
- `task.splits[name]` is a `datasets.Dataset` with columns "text", ["text_pair"], "label" (int).
- `task.fingerprint` hashes the spec's content (not its name) and every split's rows, so a
  renamed file keeps its caches and any change to the data invalidates them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridsearch.errors import UserError

SPLITS = ("train", "dev", "test")
METRICS = ("accuracy", "f1", "mcc")
SPLIT_SEED = 20240601  # the fixed seed of every split this package makes


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: name, single sentence or pair, label names and its metric."""

    name: str
    is_pair: bool
    id2label: dict[int, str]
    metric: str = "accuracy"

    def __post_init__(self):
        if self.metric not in METRICS:
            raise UserError(f"unknown metric {self.metric!r} for task {self.name}; use one of {', '.join(METRICS)}")
        if sorted(self.id2label) != list(range(len(self.id2label))) or len(self.id2label) < 2:
            raise UserError(f"task {self.name}: label ids must be 0..K-1 with K >= 2, got {sorted(self.id2label)}")

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def label2id(self) -> dict[str, int]:
        return {v: k for k, v in self.id2label.items()}

    def content(self) -> dict[str, Any]:
        """The spec's content without its name (what the fingerprint hashes)."""
        return {"is_pair": self.is_pair, "id2label": {str(k): v for k, v in self.id2label.items()},
                "metric": self.metric}


@dataclass
class Task:
    """A loaded task. `transfer` (optional) returns unlabeled in-domain sentences."""

    spec: TaskSpec
    splits: dict[str, Any]  # split name -> datasets.Dataset
    fingerprint: str
    transfer: Callable[[Path], list[str]] | None = field(default=None, repr=False)
    source: str = ""  # where the data came from, for `data show`

    def texts(self, split: str) -> tuple[list[str], list[str] | None]:
        """(texts, text_pairs or None) of one split."""
        ds = self.splits[split]
        return list(ds["text"]), (list(ds["text_pair"]) if self.spec.is_pair else None)

    def labels(self, split: str):
        """Labels of one split as an int64 numpy array (N,)."""
        import numpy as np

        return np.asarray(self.splits[split]["label"], dtype=np.int64)


def fingerprint_of(spec: TaskSpec, splits: dict[str, dict[str, list]]) -> str:
    """sha256 over the spec's content and every split's rows (order matters)."""
    h = hashlib.sha256()
    h.update(json.dumps(spec.content(), sort_keys=True).encode())
    for name in SPLITS:
        cols = splits[name]
        h.update(f"\0split:{name}:{len(cols['label'])}".encode())
        for key in ("text", "text_pair", "label"):
            if key in cols:
                h.update(f"\0col:{key}".encode())
                h.update(json.dumps(list(cols[key]), ensure_ascii=False).encode())
    return h.hexdigest()


def make_task(spec: TaskSpec, splits: dict[str, dict[str, Sequence]], *, transfer=None, source: str = "",
              origins: dict[str, str] | None = None) -> Task:
    """Validate and clean plain-list splits and wrap them as a `Task` (see module docstring).

    `origins` ({split: file or description}) only serve messages; default: the split names.
    """
    from datasets import Dataset

    from hybridsearch.data import checks

    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise UserError(f"task {spec.name}: missing split(s) {', '.join(missing)}; give train, dev and test")
    origins = {name: (origins or {}).get(name, f"split {name}") for name in SPLITS}
    keys = ["text", "text_pair", "label"] if spec.is_pair else ["text", "label"]
    clean = checks.drop_missing_rows(spec.name, {name: _columns(spec, name, splits[name], keys)
                                                 for name in SPLITS}, origins)
    for name in SPLITS:
        clean[name] = _typed(spec, name, clean[name])
    clean = checks.check_rows(spec.name, clean, origins, spec.id2label)
    datasets = {name: Dataset.from_dict(clean[name]) for name in SPLITS}
    return Task(spec=spec, splits=datasets, fingerprint=fingerprint_of(spec, clean), transfer=transfer, source=source)


def _columns(spec: TaskSpec, name: str, cols: dict[str, Sequence], keys: list[str]) -> dict[str, list]:
    """The split's `keys` columns as lists; UserError if one is absent or lengths differ."""
    for key in keys:
        if key not in cols:
            raise UserError(f"task {spec.name}: split {name} has no {key!r} column; available: {', '.join(cols)}")
    out = {key: list(cols[key]) for key in keys}
    if len({len(v) for v in out.values()}) > 1:
        raise UserError(f"task {spec.name}: split {name} has columns of different lengths")
    return out


def _typed(spec: TaskSpec, name: str, cols: dict[str, list]) -> dict[str, list]:
    """Labels as ints in 0..num_labels-1 (else UserError), texts as str."""
    labels = [int(x) for x in cols["label"]]
    bad = sorted({x for x in labels if not 0 <= x < spec.num_labels})
    if bad:
        raise UserError(
            f"task {spec.name}: split {name} has label ids {bad[:5]} outside 0..{spec.num_labels - 1} "
            f"(num_labels={spec.num_labels}); fix the labels or the task's label set"
        )
    out = {key: [str(t) for t in values] for key, values in cols.items() if key != "label"}
    out["label"] = labels
    return out


def _allocate(counts: list[int], fraction: float) -> list[int]:
    """Per-class share of round(total * fraction), by largest remainder (sums exactly)."""
    target = int(round(sum(counts) * fraction))
    ideal = [c * fraction for c in counts]
    out = [int(x) for x in ideal]
    by_remainder = sorted(range(len(counts)), key=lambda i: (-(ideal[i] - out[i]), i))
    for i in by_remainder[: max(0, target - sum(out))]:
        out[i] += 1
    return out


def stratified_split(labels: Sequence[int], fractions=(0.70, 0.15, 0.15), seed: int = SPLIT_SEED):
    """Deterministic stratified split: (train_idx, dev_idx, test_idx), each sorted.

    Dev and test get round(N * fraction) rows, shared among labels in proportion (largest
    remainder); per label the indices are shuffled with `seed`. So 2,000 + 2,000 rows
    give 1,400 + 300 + 300 per label, and 100 rows give 70 / 15 / 15.
    """
    import numpy as np

    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels.tolist()))
    members = [np.flatnonzero(labels == lab) for lab in classes]
    n_dev = _allocate([len(m) for m in members], fractions[1])
    n_test = _allocate([len(m) for m in members], fractions[2])
    parts: tuple[list, list, list] = ([], [], [])
    for idx, d, t in zip(members, n_dev, n_test):
        idx = idx[rng.permutation(len(idx))]
        parts[1].extend(idx[:d].tolist())
        parts[2].extend(idx[d:d + t].tolist())
        parts[0].extend(idx[d + t:].tolist())
    return tuple(sorted(p) for p in parts)
