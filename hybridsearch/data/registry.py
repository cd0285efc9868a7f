"""The task registry: names -> builders, plus local files by path.

A builder is `builder(cache_dir: Path, **options) -> Task`. Register your own (tests
register a tiny synthetic sentence-pair task) with `register_task(name, builder)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from hybridsearch.data.task import Task
from hybridsearch.errors import UserError

Builder = Callable[..., Task]
_REGISTRY: dict[str, tuple[Builder, str]] = {}


def register_task(name: str, builder: Builder, description: str = "", *, overwrite: bool = False) -> None:
    """Register `builder` under `name` (lower case). Re-registering needs overwrite=True."""
    key = name.lower()
    if key in _REGISTRY and not overwrite:
        raise ValueError(f"task {name!r} is already registered")
    _REGISTRY[key] = (builder, description)


def unregister_task(name: str) -> None:
    _REGISTRY.pop(name.lower(), None)


def list_tasks() -> dict[str, str]:
    """{name: description} of every registered task."""
    return {k: d for k, (_, d) in sorted(_REGISTRY.items())}


def _register_builtins() -> None:
    from hybridsearch.data import glue, mr

    register_task("mr", lambda cache, **_: mr.load_mr(cache),
                  "Pang & Lee movie-review sentence polarity v1.0 (offline default; 2,800/600/600)")
    for name, (_, pair, names, metric, _) in glue.GLUE_TASKS.items():
        kind = "pair" if pair else "single sentence"
        register_task(name, functools.partial(_glue, name), f"GLUE {name} ({kind}, {len(names)} labels, {metric}; network)")
    register_task("stsb", functools.partial(_glue, "stsb"), "GLUE STS-B (regression: not supported)")


def _glue(name, cache, **_):
    from hybridsearch.data import glue

    return glue.load_glue(name, cache)


def load_task(name: str, cache_dir=None, text_column=None, text_pair_column=None, label_column=None,
              dev_file=None, test_file=None, num_labels=None, metric=None) -> Task:
    """A registered task by name, or a local CSV / TSV / JSONL / Parquet file by path.

    Column and split-file options apply to local files only. UserError for an unknown
    name, a missing file, bad columns or labels.
    """
    from hybridsearch import paths
    from hybridsearch.data.local import load_local, looks_like_path

    cache = paths.cache_dir(cache_dir)
    key = str(name).lower()
    if key in _REGISTRY and not Path(str(name)).is_file():
        file_opts = [f for f, v in (("--text-column", text_column), ("--text-pair-column", text_pair_column),
                                    ("--label-column", label_column), ("--dev-file", dev_file),
                                    ("--test-file", test_file)) if v is not None]
        if file_opts:
            raise UserError(f"{', '.join(file_opts)} only apply to local files, not to the registered task {name}; "
                            "drop them or pass a file path")
        task = _REGISTRY[key][0](cache)
        if num_labels is not None and task.spec.num_labels != num_labels:
            raise UserError(f"task {name} has {task.spec.num_labels} labels, not num_labels={num_labels}")
        return task
    if Path(str(name)).is_file() or looks_like_path(str(name)):
        return load_local(str(name), text_column, text_pair_column, label_column, dev_file, test_file,
                          num_labels=num_labels, metric=metric or "accuracy")
    raise UserError(f"unknown task {name!r}; use one of {', '.join(list_tasks())} or a path to a "
                    ".csv/.tsv/.jsonl/.parquet file")


def load_transfer_texts(task: Task, cache_dir=None) -> list[str]:
    """Unlabeled in-domain sentences for distillation (mr: the Pang & Lee reviews, deduped
    against every mr split); an empty list for tasks without a transfer source."""
    from hybridsearch import paths

    if task.transfer is None:
        return []
    return task.transfer(paths.cache_dir(cache_dir))


_register_builtins()
