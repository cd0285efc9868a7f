"""Promotion: which trials earn more distillation steps once their budget is spent.

A short budget per trial is what lets a search try many students; the price is that a
small student which would match the teacher after twice the steps looks worse than it
is. So, as in ASHA (Li et al., 2020: asynchronous successive halving), a trial that ranks
in the top 1/eta of the trials finished so far (itself included) trains longer: at most
about one trial in `eta` is promoted, and none before `eta` comparable trials exist. The
ranking follows the `--best` choice (`pareto.best_trial`), so the extra steps go where
they can change what the user gets:

- no budget (the choice: the fastest trial within 1 dev point of the teacher): trials
  within 1 point + `reach` of the teacher's dev score rank by latency, fastest first;
  a trial further from the teacher is not promoted;
- budgets (the choice: the highest dev score inside them): trials inside the budgets
  rank by dev score; a trial outside them is not promoted.

And only while training pays: a trial whose best checkpoint lies in the first half of
its steps (it kept its initial weights, or peaked early) is not promoted. Latencies
compared here are all prechecks (the untrained candidate, drift-free: one protocol for
every trial), so the decision is made before the trial is timed after training. A
promoted trial trains `factor` x its budget more, from its best weights (`distill(extend=)`).
Every backend asks the same rule through `search.trial.TrialProtocol`, which reads the
study's finished trials with `finished_for_promotion`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hybridsearch.search.pareto import ONE_POINT


@dataclass(frozen=True)
class Finished:
    """A finished trial as the rule sees it: dev score, precheck latency, whether it meets the budgets."""

    dev: float
    latency_ms: float
    meets_budgets: bool = True


def promotion_steps(*, dev: float | None, best_step: int | None, steps: int, latency_ms: float | None,
                    meets_budgets: bool, finished: list[Finished], teacher_dev: float | None,
                    has_budget: bool, reach: float = 0.02, factor: float = 1.0, eta: int = 4) -> int:
    """Extra steps for a trial at the end of its `steps` (0 = not promoted); see the module docstring."""
    if dev is None or best_step is None or latency_ms is None or steps <= 0 or factor <= 0 or eta < 1:
        return 0
    if not math.isfinite(dev) or best_step <= steps / 2:
        return 0
    if has_budget:
        if not meets_budgets:
            return 0
        mine, pool = dev, [f.dev for f in finished if f.meets_budgets]
    else:
        near = None if teacher_dev is None else teacher_dev - ONE_POINT - reach
        if near is None or dev < near:
            return 0
        mine, pool = -latency_ms, [-f.latency_ms for f in finished if f.dev >= near]
    top = (len(pool) + 1) // eta  # how many of the pool (itself included) may be promoted
    better = sum(1 for value in pool if value > mine)
    return max(1, int(round(factor * steps))) if better < top else 0


def finished_for_promotion(study, settings) -> list[Finished]:
    """The study's COMPLETE trials as the rule sees them (dev score, precheck latency, budgets met)."""
    from optuna.trial import TrialState

    from hybridsearch.search.objective import over_budget
    from hybridsearch.search.trial import read_outcome

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        o = read_outcome(t)
        metrics, pre = (o.metrics or {}) if o else {}, (o.precheck or {}) if o else {}
        if metrics.get("dev_score") is not None and pre.get("latency_ms") is not None:
            out.append(Finished(metrics["dev_score"], pre["latency_ms"], not over_budget(metrics, *settings.budgets)))
    return out
