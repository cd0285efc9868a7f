"""Distillation: the recipe, the KD losses, transfer data, the budgeted trainer, `evaluate`.

Importing this package stays light (no torch); import the submodules for the work:

    from hybridsearch.distill.recipe import DistillRecipe
    from hybridsearch.distill.evaluate import EvalContext, Metrics, evaluate

`TrialPruned` is the signal a `report(step, dev_score)` callback raises to stop a
trial early. Search backends may also raise optuna's own `TrialPruned`: the
trainer never catches either, so both reach the caller unchanged.
"""

from __future__ import annotations


class TrialPruned(Exception):  # noqa: N818 - named after optuna.TrialPruned on purpose
    """Raised by a `report` callback to stop the current trial (early stopping by the search)."""


__all__ = ["TrialPruned"]
