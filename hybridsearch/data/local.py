"""Local files as tasks: CSV, TSV, JSON lines or Parquet, with named columns.

- Columns: `text_column` (default: first of text / sentence / sentence1 present),
  `text_pair_column` (default: text_pair or sentence2 when present, else single sentence),
  `label_column` (default: label or labels).
- Labels: integers 0..K-1 (names "0".."K-1") or strings (ids in sorted order, names kept).
- Splits: one file -> stratified 70/15/15 with the fixed seed; `dev_file` and
  `test_file` give explicit splits instead (then the main file is all train).
"""

from __future__ import annotations

import os
from pathlib import Path

from hybridsearch.data.task import Task, TaskSpec, make_task, stratified_split
from hybridsearch.errors import UserError

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet",
            ".pq": "parquet"}
TEXT_DEFAULTS = ("text", "sentence", "sentence1")
PAIR_DEFAULTS = ("text_pair", "sentence2")
LABEL_DEFAULTS = ("label", "labels")


def looks_like_path(name: str) -> bool:
    return Path(name).suffix.lower() in SUFFIXES or os.sep in name or name.startswith(".")


def read_table(path: str | os.PathLike):
    """A pandas DataFrame from a CSV / TSV / JSONL / Parquet file; UserError if unreadable."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file {path} does not exist; check the path (or use a registered task name)")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv, .jsonl or .parquet")
    try:
        if kind == "csv":
            return pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False, na_values=[""])
        if kind == "tsv":
            return pd.read_csv(path, sep="\t", quoting=3, encoding="utf-8-sig", keep_default_na=False,
                               na_values=[""])
        if kind == "jsonl":
            return pd.read_json(path, lines=True)
        return pd.read_parquet(path)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"could not read {path} as {kind} ({msg}); check the file's format") from None


def _pick(df, given, defaults, flag, path, required=True):
    cols = [str(c) for c in df.columns]
    if given is not None:
        if given not in cols:
            raise UserError(f"{path}: no column {given!r} ({flag}); available columns: {', '.join(cols)}")
        return given
    for cand in defaults:
        if cand in cols:
            return cand
    if required:
        raise UserError(f"{path}: no {flag.removeprefix('--').replace('-', ' ')} found (tried "
                        f"{', '.join(defaults)}); pass {flag} NAME; available columns: {', '.join(cols)}")
    return None


def _columns(df, path, text_col, pair_col, label_col) -> dict[str, list]:
    out = {}
    for key, col in (("text", text_col), ("text_pair", pair_col), ("label", label_col)):
        if col is None:
            continue
        values = df[col].tolist()
        empty = sum(1 for v in values if v is None or (isinstance(v, float) and v != v) or v == "")
        if empty:
            raise UserError(f"{path}: {empty} row(s) have an empty {col!r} column; remove or fill them")
        out[key] = values
    return out


def _label_names(raw: list, path) -> tuple[dict[int, str], dict]:
    """(id2label, raw value -> id) for integer or string labels."""
    if all(isinstance(v, bool) for v in raw):
        raise UserError(f"{path}: boolean labels; use 0/1 integers or label names")
    if all(isinstance(v, (int,)) or (hasattr(v, "is_integer") and float(v).is_integer()) for v in raw):
        ints = sorted({int(v) for v in raw})
        if ints[0] < 0:
            raise UserError(f"{path}: integer labels must be 0..K-1, found {ints[0]}; map them to 0..K-1 "
                            "or use label names (strings)")
        k = max(ints[-1] + 1, 2)
        return {i: str(i) for i in range(k)}, {v: int(v) for v in set(raw)}
    if any(isinstance(v, float) for v in raw):
        raise UserError(f"{path}: the label column holds non-integer numbers (regression is not supported); "
                        "use class labels")
    names = sorted({str(v) for v in raw})
    if len(names) < 2:
        raise UserError(f"{path}: the label column has a single value {names}; a task needs >= 2 classes")
    ids = {n: i for i, n in enumerate(names)}
    return dict(enumerate(names)), {v: ids[str(v)] for v in set(raw)}


def load_local(path: str, text_column=None, text_pair_column=None, label_column=None,
               dev_file=None, test_file=None, num_labels: int | None = None, metric: str = "accuracy") -> Task:
    """A task from local file(s); see the module docstring for defaults and splitting."""
    df = read_table(path)
    text_col = _pick(df, text_column, TEXT_DEFAULTS, "--text-column", path)
    if text_pair_column is None and text_column is not None and text_column not in TEXT_DEFAULTS:
        pair_col = None  # an explicit non-standard text column: pair only when asked
    else:
        pair_col = _pick(df, text_pair_column, PAIR_DEFAULTS, "--text-pair-column", path, required=False)
    label_col = _pick(df, label_column, LABEL_DEFAULTS, "--label-column", path)
    files = {"train": (path, df)}
    if (dev_file is None) != (test_file is None):
        raise UserError("give both --dev-file and --test-file, or neither (then the file is split 70/15/15)")
    if dev_file is not None:
        files["dev"] = (dev_file, read_table(dev_file))
        files["test"] = (test_file, read_table(test_file))
    cols = {}
    for split, (p, frame) in files.items():
        for col, flag in ((text_col, "--text-column"), (pair_col, "--text-pair-column"), (label_col, "--label-column")):
            if col is not None:
                _pick(frame, col, (), flag, p)
        cols[split] = _columns(frame, p, text_col, pair_col, label_col)
    id2label, to_id = _label_names([v for c in cols.values() for v in c["label"]], path)
    if not all(n == str(i) for i, n in id2label.items()):  # string labels: dev/test must reuse train's
        known = {str(v) for v in cols["train"]["label"]}
        for split, (p, _) in files.items():
            unknown = sorted({str(v) for v in cols[split]["label"]} - known)
            if unknown:
                raise UserError(f"{p}: labels {unknown[:5]} do not occur in the training file {path}; "
                                f"known labels: {', '.join(sorted(known))}")
    for c in cols.values():
        c["label"] = [to_id[v] for v in c["label"]]
    if num_labels is not None:
        if len(id2label) > num_labels:
            raise UserError(f"{path}: {len(id2label)} label values do not fit num_labels={num_labels}; "
                            "fix the labels or raise num_labels")
        if all(n == str(i) for i, n in id2label.items()):
            id2label = {i: str(i) for i in range(num_labels)}
    if dev_file is None:
        train, dev, test = stratified_split(cols["train"]["label"])
        whole = cols["train"]
        if not dev or not test:
            raise UserError(f"{path} has too few rows ({len(whole['label'])}) for a 70/15/15 split; "
                            "add rows or give --dev-file and --test-file")
        cols = {name: {k: [v[i] for i in idx] for k, v in whole.items()}
                for name, idx in (("train", train), ("dev", dev), ("test", test))}
    spec = TaskSpec(name=str(path), is_pair=pair_col is not None, id2label=id2label, metric=metric)
    return make_task(spec, cols, source=f"local file {path}" + (f" (+ {dev_file}, {test_file})" if dev_file else ""))
