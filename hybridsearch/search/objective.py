"""What a search backend calls for each sample, independent of the backend.

An objective is a picklable object with

    setup()                        -> None   # once per worker process (load teacher, data, ...)
    precheck(sample)               -> {"latency_ms": float | None, "size_mb": float | None} | None
                                              # cheap, before training: the untrained candidate
    evaluate(sample, hooks)        -> Metrics-like   # hooks: `distill.TrialHooks`; `hooks.report(step, dev)`
                                              # may raise TrialPruned, `hooks.extend` asks for more steps
    reference()                    -> Metrics-like   # optional: the teacher, timed by the same protocol

Metrics-like: any object or dict with `dev_score` (or `score`), `latency_ms`,
`size_bytes` (or `size_mb`) and optionally `failure` (a reason string: the trial failed).
`metrics_dict` turns it into a plain dict with `dev_score`, `latency_ms`, `size_mb` always set.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

MODES = ("multi", "score")
DIRECTIONS = {"multi": ["maximize", "minimize", "minimize"], "score": ["maximize"]}
OBJECTIVE_NAMES = {"multi": ["dev_score", "latency_ms", "size_mb"], "score": ["dev_score"]}
METRIC_NAMES = {"multi": ["dev score", "latency ms", "size MB"], "score": ["dev score"]}  # as Optuna tools show them


def metrics_dict(metrics: Any) -> dict:
    """Metrics-like -> plain JSON-able dict with dev_score, latency_ms, size_mb (and what else it had)."""
    if dataclasses.is_dataclass(metrics):
        d = dataclasses.asdict(metrics)
    elif isinstance(metrics, dict):
        d = dict(metrics)
    else:
        d = {k: v for k, v in vars(metrics).items() if not k.startswith("_")}
    if d.get("dev_score") is None:
        d["dev_score"] = d.get("score")
    if d.get("size_mb") is None and d.get("size_bytes") is not None:
        d["size_mb"] = d["size_bytes"] / 1e6
    return {k: _plain(v) for k, v in d.items()}


def _plain(v):
    if hasattr(v, "item") and not isinstance(v, (list, dict)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def objective_values(m: dict, mode: str) -> list[float]:
    """The values Optuna optimizes, in DIRECTIONS[mode] order; ValueError if any is missing / not finite."""
    vals = [m.get(name) for name in OBJECTIVE_NAMES[mode]]
    for name, v in zip(OBJECTIVE_NAMES[mode], vals):
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"objective value {name} is {v!r}")
    return [float(v) for v in vals]


def over_budget(cost: dict | None, max_latency_ms: float | None, max_size_mb: float | None) -> str | None:
    """A one-line reason when `cost` breaks a budget, else None."""
    if not cost:
        return None
    lat, size = cost.get("latency_ms"), cost.get("size_mb")
    if max_latency_ms is not None and lat is not None and lat > max_latency_ms:
        return f"over budget: latency {lat:.2f} ms > --max-latency-ms {max_latency_ms:g}"
    if max_size_mb is not None and size is not None and size > max_size_mb:
        return f"over budget: size {size:.2f} MB > --max-size-mb {max_size_mb:g}"
    return None


def constraint_values(m: dict, max_latency_ms: float | None, max_size_mb: float | None) -> list[float]:
    """Optuna constraints (<= 0 is feasible): latency and size over their budgets."""
    lat = m.get("latency_ms") or 0.0
    size = m.get("size_mb") or 0.0
    return [
        float(lat - max_latency_ms) if max_latency_ms is not None else -1.0,
        float(size - max_size_mb) if max_size_mb is not None else -1.0,
    ]


class Objective:
    """Base class: override `evaluate` (and `precheck`, `setup` when useful)."""

    def setup(self) -> None:
        pass

    def precheck(self, sample: dict) -> dict | None:
        return None

    def evaluate(self, sample: dict, hooks):
        raise NotImplementedError


class FunctionObjective(Objective):
    """Wrap a plain `fn(sample) -> Metrics-like` or `fn(sample, hooks)` (and an optional `precheck_fn`).
    Both must be picklable (module-level functions) for process isolation."""

    def __init__(self, fn: Callable, precheck_fn: Callable | None = None):
        self.fn, self.precheck_fn = fn, precheck_fn

    def precheck(self, sample):
        return self.precheck_fn(sample) if self.precheck_fn else None

    def evaluate(self, sample, hooks):
        import inspect

        try:
            takes_hooks = len(inspect.signature(self.fn).parameters) >= 2
        except (TypeError, ValueError):
            takes_hooks = False
        return self.fn(sample, hooks) if takes_hooks else self.fn(sample)


def as_objective(obj) -> Objective:
    return obj if isinstance(obj, Objective) else FunctionObjective(obj)
