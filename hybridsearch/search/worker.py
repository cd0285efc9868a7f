"""Run objective calls in a worker process, so a crash or an OOM kill fails one trial only.

`TrialRunner(objective, isolation="process")` keeps one spawned worker process alive
across trials (the objective's `setup()` runs once per process); when the process
dies mid-call, the call returns status "error" with the exit reason and the next
call starts a fresh process. `isolation="inline"` runs in this process (tests,
debugging, a Ray trial). The objective's `evaluate(sample, hooks)` gets a
`distill.TrialHooks`: intermediate scores travel over a pipe, the parent answering each
`hooks.report(step, value)` with continue / prune and `hooks.extend(step, best_dev, best_step)`
(an objective asking for more steps at the end of its budget) with a step count. With a
`lock` (`search.locks.NodeLock`), precheck and reference calls hold `lock.measuring()`,
evaluate holds `lock.training()` (yielding at each report) and measures inside
`hooks.measuring`.
"""

from __future__ import annotations

import signal
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from hybridsearch.errors import UserError

INTERRUPTED = "interrupted: the search's --timeout was reached (re-run to resume)"


@dataclass
class CallResult:
    status: str  # "done" | "pruned" | "error"
    value: Any = None
    reason: str | None = None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "out of memory (MemoryError)"
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in str(exc).lower():
        return f"out of memory ({text})"
    return " ".join(text.split())[:500]


def _call(objective, kind: str, sample: dict, report, extend, lock=None) -> CallResult:
    """One objective call with its hooks; every exception becomes a `CallResult` (a prune: "pruned")."""
    from hybridsearch.distill import TrialHooks, TrialPruned
    from hybridsearch.search.objective import metrics_dict

    measuring = lock.measuring if lock is not None else nullcontext
    try:
        if kind == "precheck":
            with measuring():
                return CallResult("done", objective.precheck(sample))
        if kind == "reference":
            with measuring():
                return CallResult("done", objective.reference() if hasattr(objective, "reference") else None)

        def locked_report(step, value):
            if lock is not None:
                lock.yield_point()
            report(step, value)

        hooks = TrialHooks(report=locked_report, extend=extend, measuring=measuring)
        with lock.training() if lock is not None else nullcontext():
            return CallResult("done", metrics_dict(objective.evaluate(sample, hooks)))
    except TrialPruned as exc:
        return CallResult("pruned", reason=str(exc) or "pruned on an intermediate dev score")
    except UserError as exc:
        return CallResult("error", reason=f"invalid candidate: {exc}")
    except Exception as exc:  # noqa: BLE001 - any failure fails this trial only, with its reason
        tb = traceback.format_exc(limit=3)
        return CallResult("error", reason=_reason(exc), value={"traceback": tb[-2000:]})


def _watch_parent(parent_pid: int) -> None:
    """Exit when the search process is gone (killed), so no orphan keeps training."""
    import os
    import threading

    def loop():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(3)

    threading.Thread(target=loop, daemon=True).start()


def _child_main(conn, objective, lock=None) -> None:
    import os

    from hybridsearch.distill import TrialPruned

    _watch_parent(os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the search's to handle: it stops this worker

    try:
        objective.setup()
    except Exception as exc:  # noqa: BLE001
        conn.send(("setup_error", isinstance(exc, UserError), _reason(exc) if not isinstance(exc, UserError) else str(exc)))
        return
    conn.send(("ready",))
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            return
        kind, sample = msg[1], msg[2]

        def report(step, value):
            conn.send(("report", int(step), float(value)))
            if conn.recv() == "prune":
                raise TrialPruned(f"pruned at step {step} (dev score {value:.4f})")

        def extend(step, best_dev, best_step):
            conn.send(("extend", int(step), None if best_dev is None else float(best_dev),
                       None if best_step is None else int(best_step)))
            return int(conn.recv())

        result = _call(objective, kind, sample, report, extend, lock)
        conn.send(("result", result.status, result.value, result.reason))


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker process stopped answering"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.Signals._value2member_map_ else str(-exitcode)
        hint = " (likely out of memory)" if -exitcode == signal.SIGKILL else ""
        return f"worker process killed by {name}{hint}"
    return f"worker process exited with code {exitcode}"


class TrialRunner:
    """Runs `precheck` / `evaluate` calls of one objective, isolated per `isolation`."""

    def __init__(self, objective, isolation: str = "process", call_timeout: float | None = None, lock=None,
                 set_up: bool = False):
        """set_up: the objective's `setup()` already ran in this process (inline isolation only)."""
        if isolation not in ("process", "inline"):
            raise UserError(f"unknown isolation {isolation!r}; use process or inline")
        self.objective, self.isolation, self.call_timeout, self.lock = objective, isolation, call_timeout, lock
        self.deadline: float | None = None  # time.monotonic() after which a running call is stopped
        self._proc = self._conn = None
        self._inline_ready = set_up

    # -- process management ---------------------------------------------------
    def _start(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child_main, args=(child, self.objective, self.lock), daemon=True)
        proc.start()
        child.close()
        while not parent.poll(0.2):
            if not proc.is_alive():
                raise RuntimeError(f"search worker failed to start: {_death_reason(proc.exitcode)}")
        msg = parent.recv()
        if msg[0] == "setup_error":
            proc.join(5)
            if msg[1]:
                raise UserError(msg[2])
            raise RuntimeError(f"search worker setup failed: {msg[2]}")
        self._proc, self._conn = proc, parent

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send(("stop",))
            except (OSError, BrokenPipeError):
                pass
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
        self._proc = self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- calls ---------------------------------------------------------------------
    def run(self, kind: str, sample: dict, on_report: Callable[[int, float], bool] | None = None,
            on_extend: Callable[..., int] | None = None) -> CallResult:
        """kind "precheck" | "evaluate". `on_report(step, value) -> True` prunes the trial;
        `on_extend(step, best_dev, best_step) -> int` answers an objective's request for more steps."""
        if self.isolation == "inline":
            return self._run_inline(kind, sample, on_report, on_extend)
        if self._proc is None or not self._proc.is_alive():
            self.close()
            self._start()
        conn, proc = self._conn, self._proc
        conn.send(("call", kind, sample))
        start = time.monotonic()
        while True:
            if conn.poll(0.2):
                try:
                    msg = conn.recv()
                except EOFError:
                    msg = None
                if msg is None:
                    proc.join(2)
                    return self._died()
                if msg[0] == "report":
                    prune = bool(on_report(msg[1], msg[2])) if on_report else False
                    conn.send("prune" if prune else "continue")
                    continue
                if msg[0] == "extend":
                    conn.send(int(on_extend(*msg[1:]) or 0) if on_extend else 0)
                    continue
                return CallResult(msg[1], msg[2], msg[3])
            if not proc.is_alive():
                return self._died()
            if self.deadline is not None and time.monotonic() > self.deadline:
                proc.kill()
                proc.join(5)
                self._proc = self._conn = None
                return CallResult("error", reason=INTERRUPTED)
            if self.call_timeout and time.monotonic() - start > self.call_timeout:
                proc.kill()
                proc.join(5)
                self._proc = self._conn = None
                return CallResult("error", reason=f"trial exceeded its time limit of {self.call_timeout:g} s")

    def _died(self) -> CallResult:
        code = self._proc.exitcode if self._proc is not None else None
        self._proc = self._conn = None
        return CallResult("error", reason=_death_reason(code))

    def _run_inline(self, kind, sample, on_report, on_extend=None) -> CallResult:
        from hybridsearch.distill import TrialPruned

        if not self._inline_ready:
            self.objective.setup()
            self._inline_ready = True

        def report(step, value):
            if on_report and on_report(int(step), float(value)):
                raise TrialPruned(f"pruned at step {step} (dev score {value:.4f})")

        def extend(*args):
            return int(on_extend(*args) or 0) if on_extend else 0

        return _call(self.objective, kind, sample, report, extend, self.lock)
