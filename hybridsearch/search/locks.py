"""A per-node reader/writer file lock, so latency is measured while no trial on the node trains.

Contract:
- `measuring()`: exclusive. Latency measurements (a trial's precheck, `measure_latency`) run
  inside it; while it is held, no process on this node holds `training()`.
- `training()`: shared. Training holds it; `yield_point()` (called at each intermediate
  report) lets a waiting measurer in between steps.
- Writers have priority: a measurer first takes a turnstile file that new trainers must pass,
  so a stream of overlapping trainings cannot starve it.
- Re-entrant per process: `measuring()` inside `training()` in the same process drops this
  process's shared hold first (fcntl locks conflict between a process's own file handles).
The lock file is `$HYBRIDSEARCH_NODE_LOCK` or `/tmp/hybridsearch-node.lock` (one per machine;
on a cluster every node has its own /tmp). `NodeLock(path)` bundles the three for one file; it is
passed in (a `TrialRunner`'s `lock`, then `distill.TrialHooks.measuring`), never patched in.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

LOCK_ENV = "HYBRIDSEARCH_NODE_LOCK"
DEFAULT_LOCK = "/tmp/hybridsearch-node.lock"

_state = {"shared_fd": None, "shared_depth": 0, "measure_depth": 0, "path": None, "pid": os.getpid()}


def _own_state() -> dict:
    """This process's lock state; a forked child starts clean (its inherited handle is the parent's hold)."""
    if _state["pid"] != os.getpid():
        _state.update(shared_fd=None, shared_depth=0, measure_depth=0, path=None, pid=os.getpid())
    return _state


def lock_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get(LOCK_ENV) or DEFAULT_LOCK)


def _open(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        os.chmod(path, 0o666)  # shared by every user's trials on the node
    except OSError:
        pass
    return fd


def _turn(path: Path) -> Path:
    return path.with_name(path.name + ".turn")


def _acquire_shared(path: Path) -> int:
    turn = _open(_turn(path))
    try:
        fcntl.flock(turn, fcntl.LOCK_EX)  # wait here while a measurer is queued
        fd = _open(path)
        fcntl.flock(fd, fcntl.LOCK_SH)
    finally:
        fcntl.flock(turn, fcntl.LOCK_UN)
        os.close(turn)
    return fd


def _release(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@contextmanager
def training(path: str | os.PathLike | None = None):
    """Shared hold for the duration of a training (re-entrant)."""
    _own_state()
    p = lock_path(path)
    if _state["shared_depth"] == 0:
        _state["shared_fd"], _state["path"] = _acquire_shared(p), p
    _state["shared_depth"] += 1
    try:
        yield
    finally:
        _state["shared_depth"] -= 1
        if _state["shared_depth"] == 0 and _state["shared_fd"] is not None:
            _release(_state["shared_fd"])
            _state["shared_fd"] = None


def yield_point() -> None:
    """Inside `training()`: let a queued measurer run, then take the shared hold again."""
    _own_state()
    if _state["shared_fd"] is None or _state["measure_depth"]:
        return
    _release(_state["shared_fd"])
    _state["shared_fd"] = _acquire_shared(_state["path"])


@contextmanager
def measuring(path: str | os.PathLike | None = None):
    """Exclusive hold for a latency measurement (re-entrant; drops this process's shared hold)."""
    _own_state()
    if _state["measure_depth"]:
        _state["measure_depth"] += 1
        try:
            yield
        finally:
            _state["measure_depth"] -= 1
        return
    p = _state["path"] if _state["shared_fd"] is not None else lock_path(path)
    had_shared = _state["shared_fd"] is not None
    if had_shared:
        _release(_state["shared_fd"])
        _state["shared_fd"] = None
    turn = _open(_turn(p))
    fcntl.flock(turn, fcntl.LOCK_EX)
    fd = _open(p)
    _state["measure_depth"] = 1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        _state["measure_depth"] = 0
        _release(fd)
        _release(turn)
        if had_shared:
            _state["shared_fd"] = _acquire_shared(p)


class NodeLock:
    """The node lock at one path (None: `$HYBRIDSEARCH_NODE_LOCK` or the default), as methods; picklable."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = str(lock_path(path))

    def measuring(self):
        return measuring(self.path)

    def training(self):
        return training(self.path)

    def yield_point(self) -> None:
        yield_point()
