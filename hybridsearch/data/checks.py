"""Data checks every task goes through: `make_task` runs `drop_missing_rows` then `check_rows`, so
every source (mr, GLUE, local files, registered builders) is checked; local files also run
`drop_missing` and the label checks on their raw values first (so messages name the files).

Contracts (every refusal is a one-line `UserError("problem; fix")`, every warning one line on stderr):
- `is_missing(v)`: None, NaN, pandas NA and the strings NaN / NA / N/A / None / null / "" (any case,
  stripped) are missing values.
- `drop_missing(cols)` -> (cols without the rows that have a missing value in any column, rows dropped).
- `check_classes(train_labels, where)`: refuses a train split with fewer than 2 distinct labels.
- `check_known_labels(train_labels, labels, where, train_where)`: refuses dev/test labels absent from train.
- `drop_leaks(splits)` -> (splits, n): train rows whose text (and text_pair) also occur in dev or test are
  removed; dev and test keep theirs.
- `drop_missing_rows(name, splits, origins)`: `drop_missing` on every split, one warning line, UserError
  for a split left empty; `make_task` runs it first.
- `check_rows(name, splits, origins, id2label)`: `drop_leaks` (one warning line), then `check_classes` and
  `check_known_labels` on int label ids; `make_task` runs it on the cleaned, int-labelled splits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hybridsearch.data.fileio import warn
from hybridsearch.errors import UserError

MISSING_STRINGS = frozenset({"nan", "na", "n/a", "none", "null", ""})
MISSING_HELP = "NaN, NA, N/A, None, null or empty"
EVAL_SPLITS = ("dev", "test")


def is_missing(value) -> bool:
    """True for None, NaN (float or numpy), pandas NA and the MISSING_STRINGS (case-insensitive, stripped)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().casefold() in MISSING_STRINGS
    try:
        return bool(value != value)  # NaN is the only value unequal to itself
    except TypeError:
        return True  # pandas.NA: its truth value is ambiguous
    except ValueError:
        return False  # array-like values are not missing scalars


def drop_missing(cols: dict[str, list]) -> tuple[dict[str, list], int]:
    """(columns without the rows that have a missing value in any column, number of rows dropped)."""
    n = len(next(iter(cols.values()), []))
    keep = [i for i in range(n) if not any(is_missing(values[i]) for values in cols.values())]
    if len(keep) == n:
        return cols, 0
    return {key: [values[i] for i in keep] for key, values in cols.items()}, n - len(keep)


def warn_missing(counts: dict[str, int], columns: Iterable[str]) -> None:
    """One warning line for the rows `drop_missing` removed ({where: rows}); silent when none."""
    total = sum(counts.values())
    if total:
        where = ", ".join(f"{w} {n}" for w, n in counts.items() if n)
        warn(f"dropped {total} row(s) with a missing value ({MISSING_HELP}) in the {'/'.join(columns)} "
             f"column(s) ({where}); fill them to use those rows")


def _names(labels: Iterable, name: Callable) -> list[str]:
    return [name(x) for x in sorted(set(labels), key=lambda x: (str(type(x)), x))]


def check_classes(train_labels: Iterable, where: str, name: Callable = str) -> None:
    """UserError unless the train labels hold at least 2 distinct classes."""
    classes = _names(train_labels, name)
    if len(classes) < 2:
        raise UserError(f"{where} has a single label class {classes}; a classifier needs >= 2 classes: "
                        "check the label column, or add rows of another class")


def check_known_labels(train_labels: Iterable, labels: Iterable, where: str, train_where: str,
                       name: Callable = str) -> None:
    """UserError naming the labels of `labels` (a dev/test split at `where`) that train lacks."""
    known = set(train_labels)
    unknown = _names(set(labels) - known, name)
    if unknown:
        raise UserError(f"labels {unknown[:5]} of {where} do not occur in train ({train_where}), so no model "
                        f"can learn them; known labels: {', '.join(_names(known, name))}; add train rows "
                        f"with these labels, or remove those rows from {where}")


def _row_keys(cols: dict[str, list]) -> list[tuple]:
    keys = [k for k in ("text", "text_pair") if k in cols]
    return list(zip(*(cols[k] for k in keys)))


def drop_leaks(splits: dict[str, dict[str, list]]) -> tuple[dict[str, dict[str, list]], int]:
    """(splits with the train rows whose text [and text_pair] also occur in dev or test removed, rows removed)."""
    taken = {key for split in EVAL_SPLITS for key in _row_keys(splits[split])}
    train = splits["train"]
    keep = [i for i, key in enumerate(_row_keys(train)) if key not in taken]
    removed = len(train["label"]) - len(keep)
    if removed:
        splits = {**splits, "train": {k: [v[i] for i in keep] for k, v in train.items()}}
    return splits, removed


def drop_missing_rows(name: str, splits: dict[str, dict[str, list]],
                      origins: dict[str, str]) -> dict[str, dict[str, list]]:
    """Every split without its rows that have a missing value (one warning line for all); UserError if
    that leaves a split empty."""
    counts = {}
    out = {}
    for split, cols in splits.items():
        out[split], counts[origins[split]] = drop_missing(cols)
        if not out[split]["label"]:
            dropped = counts[origins[split]]
            why = f" after dropping {dropped} row(s) with a missing value ({MISSING_HELP})" if dropped else ""
            raise UserError(f"task {name}: split {split} ({origins[split]}) is empty{why}; "
                            "give rows with text and label in every split")
    warn_missing(counts, [k for k in ("text", "text_pair", "label") if k in splits["train"]])
    return out


def check_rows(name: str, splits: dict[str, dict[str, list]], origins: dict[str, str],
               id2label: dict[int, str]) -> dict[str, dict[str, list]]:
    """Leaks removed from train (one warning line), then the class checks on the int label ids."""
    splits, leaked = drop_leaks(splits)
    if leaked:
        warn(f"task {name}: removed {leaked} train row(s) whose text also occurs in dev or test "
             "(dev and test keep theirs)")
    if not splits["train"]["label"]:
        raise UserError(f"task {name}: every train row ({origins['train']}) also occurs in dev or test; "
                        "give train rows that are not in the evaluation splits")
    train = origins["train"] + (f", less {leaked} row(s) also in dev or test" if leaked else "")
    check_classes(splits["train"]["label"], f"task {name}: train ({train})", id2label.get)
    for split in EVAL_SPLITS:
        check_known_labels(splits["train"]["label"], splits[split]["label"], f"{split} ({origins[split]})",
                           train, id2label.get)
    return splits
