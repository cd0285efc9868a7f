"""Distillation: the recipe, the KD losses, transfer data, the budgeted trainer, `evaluate`.

Importing this package stays light (no torch); import the submodules for the work:

    from hybridsearch.distill.recipe import DistillRecipe
    from hybridsearch.distill.evaluate import EvalContext, Metrics, evaluate
    from hybridsearch.distill.context import TaskSource, TeacherSource, LatencyProtocol, build_context

`TrialPruned` is the signal a `hooks.report(step, dev_score)` callback raises to stop a
trial early. Search backends may also raise optuna's own `TrialPruned`: the
trainer never catches either, so both reach the caller unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass


class TrialPruned(Exception):  # noqa: N818 - named after optuna.TrialPruned on purpose
    """Raised by a `report` callback to stop the current trial (early stopping by the search)."""


def _no_report(step: int, dev: float) -> None:
    return None


@dataclass(frozen=True)
class TrialHooks:
    """What a caller of `evaluate` plugs into one evaluation (all optional).

    report(step, dev_score): after each dev scoring; may raise a prune signal.
    extend(step, best_dev, best_step) -> int: asked once at the end of the budget; extra steps (0 = none).
    measuring() -> context manager: held around every latency measurement (a node lock, `search.locks`).
    """

    report: Callable[[int, float], None] = _no_report
    extend: Callable[[int, float | None, int | None], int] | None = None
    measuring: Callable[[], AbstractContextManager] = nullcontext


NO_HOOKS = TrialHooks()

__all__ = ["NO_HOOKS", "TrialHooks", "TrialPruned"]
