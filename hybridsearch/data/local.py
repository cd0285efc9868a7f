"""Local files as tasks: CSV, TSV, JSON lines or Parquet, with named columns.

- Columns: `text_column` (default: first of text / sentence / sentence1 present),
  `text_pair_column` (default: text_pair or sentence2 when present, else single sentence),
  `label_column` (default: label or labels).
- Labels: integers from 0 (ids 0..max, names "0".."max"), other non-negative integers
  (e.g. stars 1..5: ids in sorted order, names "1".."5"), or strings (ids in sorted order,
  names kept). A single label value is refused.
- Splits: one file -> stratified 70/15/15 with the fixed seed; `dev_file` and
  `test_file` give explicit splits instead (then the main file is all train).
- Checks (`hybridsearch.data.checks`): rows with a missing text/label value (NaN, NA, N/A,
  None, null, empty; any case) are dropped with one warning; dev/test labels absent from
  train are refused naming the file; `make_task` then removes train rows duplicating dev/test.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hybridsearch.data import checks
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


def _columns(df, text_col, pair_col, label_col) -> dict[str, list]:
    return {key: df[col].tolist() for key, col in (("text", text_col), ("text_pair", pair_col),
                                                  ("label", label_col)) if col is not None}


def _read_files(files: dict, columns: tuple) -> dict[str, dict[str, list]]:
    """{split: columns} of every file, rows with a missing value dropped (one warning line for all)."""
    text_col, pair_col, label_col = columns
    cols, counts = {}, {}
    for split, (p, frame) in files.items():
        for col, flag in ((text_col, "--text-column"), (pair_col, "--text-pair-column"), (label_col, "--label-column")):
            if col is not None:
                _pick(frame, col, (), flag, p)
        cols[split], counts[str(p)] = checks.drop_missing(_columns(frame, text_col, pair_col, label_col))
        if not cols[split]["label"]:
            raise UserError(f"{p}: no row has both text and label (missing values: {checks.MISSING_HELP}); "
                            "fill the text and label columns")
    checks.warn_missing(counts, [c for c in columns if c is not None])
    return cols


def _as_ints(raw: list) -> list:
    """Labels that are all whole numbers as ints: a column pandas read as float (NaN cells) or as text
    ("NA" cells) reads like one without those cells. Anything else unchanged."""
    def whole(v):
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str) and re.fullmatch(r"\d+", v.strip()):
            return int(v)
        return None

    ints = [whole(v) for v in raw]
    return ints if raw and None not in ints else raw


def _label_names(raw: list, path, column: str) -> tuple[dict[int, str], dict]:
    """(id2label, raw value -> id) for integer or string labels; UserError for < 2 classes."""
    if all(isinstance(v, bool) for v in raw):
        raise UserError(f"{path}: boolean labels; use 0/1 integers or label names")
    if all(isinstance(v, (int,)) or (hasattr(v, "is_integer") and float(v).is_integer()) for v in raw):
        ints = sorted({int(v) for v in raw})
        if ints[0] < 0:
            raise UserError(f"{path}: integer labels must be 0..K-1, found {ints[0]}; map them to 0..K-1 "
                            "or use label names (strings)")
        _one_class(ints, path, column)
        if ints[0] == 0:  # ids: 0..max, named by their value
            return {i: str(i) for i in range(ints[-1] + 1)}, {v: int(v) for v in set(raw)}
        ids = {v: i for i, v in enumerate(ints)}  # e.g. stars 1..5: ids 0..4 in order, named "1".."5"
        return {i: str(v) for v, i in ids.items()}, {v: ids[int(v)] for v in set(raw)}
    if any(isinstance(v, float) for v in raw):
        raise UserError(f"{path}: the label column holds non-integer numbers (regression is not supported); "
                        "use class labels")
    names = sorted({str(v) for v in raw})
    _one_class(names, path, column)
    ids = {n: i for i, n in enumerate(names)}
    return dict(enumerate(names)), {v: ids[str(v)] for v in set(raw)}


def _one_class(values: list, path, column: str) -> None:
    if len(values) < 2:
        raise UserError(f"{path}: the label column {column!r} has a single value {[str(v) for v in values]}; "
                        "a classifier needs >= 2 classes: check --label-column, or add rows of another class")


def load_local(path: str, text_column=None, text_pair_column=None, label_column=None,
               dev_file=None, test_file=None, num_labels: int | None = None, metric: str = "accuracy") -> Task:
    """A task from local file(s); see the module docstring for defaults, splitting and checks."""
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
    cols = _read_files(files, (text_col, pair_col, label_col))
    for c in cols.values():
        c["label"] = _as_ints(c["label"])
    id2label, to_id = _label_names([v for c in cols.values() for v in c["label"]], path, label_col)
    raw = {split: [str(v) for v in c["label"]] for split, c in cols.items()}
    checks.check_classes(raw["train"], f"{path} (label column {label_col!r})")
    for split in files:
        if split != "train":
            checks.check_known_labels(raw["train"], raw[split], str(files[split][0]), str(path))
    for c in cols.values():
        c["label"] = [to_id[v] for v in c["label"]]
    if num_labels is not None:
        if len(id2label) > num_labels:
            raise UserError(f"{path}: {len(id2label)} label values do not fit num_labels={num_labels}; "
                            "fix the labels or raise num_labels")
        if all(n == str(i) for i, n in id2label.items()):
            id2label = {i: str(i) for i in range(num_labels)}
    origins = {split: str(p) for split, (p, _) in files.items()}
    if dev_file is None:
        cols, origins = _split_one_file(cols["train"], path)
    spec = TaskSpec(name=str(path), is_pair=pair_col is not None, id2label=id2label, metric=metric)
    return make_task(spec, cols, origins=origins,
                     source=f"local file {path}" + (f" (+ {dev_file}, {test_file})" if dev_file else ""))


def _split_one_file(whole: dict[str, list], path) -> tuple[dict, dict[str, str]]:
    """(stratified 70/15/15 splits of one file's columns, {split: description} for messages)."""
    train, dev, test = stratified_split(whole["label"])
    if not dev or not test:
        raise UserError(f"{path} has too few rows ({len(whole['label'])}) for a 70/15/15 split; "
                        "add rows or give --dev-file and --test-file")
    cols = {name: {k: [v[i] for i in idx] for k, v in whole.items()}
            for name, idx in (("train", train), ("dev", dev), ("test", test))}
    return cols, {name: f"{path}, {name} part of its 70/15/15 split" for name in cols}
