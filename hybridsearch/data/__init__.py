"""Tasks: the registry (mr, GLUE), local files, splits, metrics.

    from hybridsearch.data import load_task, load_transfer_texts
    task = load_task("mr")            # or "sst2", or "path/to/file.csv" with column options
    task.spec, task.splits, task.fingerprint

See docs/architecture.md (data/) for the contract. Importing this package is light:
`datasets`, `pandas` and numpy load when a task is loaded.
"""

from hybridsearch.data.registry import (
    list_tasks,
    load_task,
    load_transfer_texts,
    register_task,
    unregister_task,
)
from hybridsearch.data.task import SPLITS, Task, TaskSpec, make_task, stratified_split

__all__ = [
    "SPLITS",
    "Task",
    "TaskSpec",
    "list_tasks",
    "load_task",
    "load_transfer_texts",
    "make_task",
    "register_task",
    "stratified_split",
    "unregister_task",
]
