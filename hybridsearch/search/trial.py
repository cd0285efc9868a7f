"""The trial protocol, once for every backend: sample -> precheck -> evaluate -> `TrialOutcome` -> study.

    protocol = TrialProtocol(settings, runner, reference=study.user_attrs.get(TEACHER_KEY),
                             finished=lambda: finished_for_promotion(study, settings))
    outcome = protocol.run(sample, on_report=...)      # never raises for a candidate's fault
    record(study, trial, outcome, backend={"ray.node_id": ...})

Steps of `TrialProtocol.run`:
1. precheck (with budgets, or when promotion needs a latency to rank by): the untrained
   candidate's cost from the objective (`latency_ms`, `size_mb`, and `speedup` when it was
   timed against the teacher, or `latency_source: predicted` from a latency model);
2. a candidate over a budget ends PRUNED, `rejected`, before any training;
3. evaluate, with `on_report(step, dev) -> prune?` and the promotion hook as `extend`;
4. `latency_ms` is made drift-free: the teacher reference's latency / the trial's same-run
   speed-up (its own median is kept as `latency_ms_raw`); so `latency_ms` means the same in
   every backend, and on a Ray cluster the reference is that of the node that ran the trial;
5. constraints (<= 0 feasible) and the objective values, or FAIL with the reason.

A trial's record in the study is one JSON user attribute, `OUTCOME_KEY`, holding
`TrialOutcome.to_dict()`; where it came from is in `SEEDED_KEY` / `SEED_NAME_KEY` /
`RETRY_OF_KEY` (set when it is enqueued), and backend-specific facts under `backend.*`
(`BACKEND_KEY` = the backend's name). `read_outcome` also reads trials written before this
record existed (flat `metrics`, `reason`, `precheck`, ... attributes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from hybridsearch.search.objective import constraint_values, objective_values, over_budget
from hybridsearch.search.worker import INTERRUPTED

# trial user attributes
OUTCOME_KEY = "outcome"  # the TrialOutcome, as a dict
SEEDED_KEY = "seeded"  # a seed point of the space (bool)
SEED_NAME_KEY = "seed_name"
RETRY_OF_KEY = "retry_of"  # the number of the unfinished trial this one runs again
BACKEND_KEY = "backend"  # "optuna" | "ray" | "nni"
BACKEND_PREFIX = "backend."  # backend-specific facts: backend.ray.node_id, backend.nni.params, ...
# study user attributes
TEACHER_KEY = "teacher"  # the teacher reference's metrics (the first one measured)
REFERENCE_PREFIX = "reference."  # reference.<node id>: the teacher reference measured on that node
STALE_PREFIX = "stale."  # stale.<trial number>: why an unfinished trial was failed

COMPLETE, PRUNED, FAIL = "COMPLETE", "PRUNED", "FAIL"
LATENCY_SOURCES = ("measured", "predicted")
_LEGACY_KEYS = ("reason", "metrics", "precheck", "constraints", "rejected", "interrupted", "promoted")


@dataclass
class TrialOutcome:
    """How one trial ended. `state`: COMPLETE | PRUNED | FAIL (Optuna's state names)."""

    state: str
    values: list[float] | None = None  # the objective values, COMPLETE only
    reason: str | None = None  # why it was pruned / failed
    metrics: dict | None = None  # `objective.metrics_dict` of the evaluation (drift-free latency_ms)
    precheck: dict | None = None  # the untrained candidate's cost (drift-free latency_ms)
    constraints: list[float] | None = None  # latency and size over their budgets (<= 0 feasible)
    rejected: bool = False  # over a budget at the precheck: never trained
    interrupted: bool = False  # stopped by --timeout / SIGINT: not the candidate's fault, runs again
    promoted: dict | None = None  # {"at_step", "dev", "extra_steps"} when promotion granted more steps
    steps: int | None = None  # distillation steps done (promotion included)
    latency_source: str | None = None  # "measured" | "predicted" (the latency model) | None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrialOutcome:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def counts(self) -> bool:
        """Whether it counts towards --trials (an interrupted trial runs again and does not)."""
        return not self.interrupted


def read_outcome(trial) -> TrialOutcome | None:
    """The outcome of a (frozen) trial: its `OUTCOME_KEY`, or one rebuilt from the flat attributes older
    runs wrote; None for a trial that has not finished."""
    attrs = trial.user_attrs
    if OUTCOME_KEY in attrs:
        return TrialOutcome.from_dict(attrs[OUTCOME_KEY])
    if not trial.state.is_finished():
        return None
    old = {k: attrs.get(k) for k in _LEGACY_KEYS}
    metrics = old["metrics"]
    values = list(trial.values) if trial.values is not None else None
    return TrialOutcome(state=trial.state.name, values=values, reason=old["reason"], metrics=metrics,
                        precheck=old["precheck"], constraints=old["constraints"], rejected=bool(old["rejected"]),
                        interrupted=bool(old["interrupted"]), promoted=old["promoted"],
                        steps=(metrics or {}).get("steps"), latency_source=(old["precheck"] or {}).get("latency_source"))


def drift_free(cost: dict, reference: dict | None) -> dict:
    """latency_ms := the reference's latency / this measurement's same-run speed-up (raw kept).

    A shared machine drifts between trials; the speed-up (candidate and teacher timed
    interleaved in one run) does not. Without a speed-up (a predicted cost, a toy) it is unchanged.
    """
    ref = (reference or {}).get("latency_ms")
    if ref and cost.get("speedup") and cost.get("latency_ms") is not None:
        return dict(cost, latency_ms_raw=cost["latency_ms"], latency_ms=ref / cost["speedup"])
    return dict(cost)


class TrialProtocol:
    """Runs one sample through a `TrialRunner` by the module's steps; see the module docstring.

    reference: the teacher's metrics for this trial's node (None: no teacher, latency as measured).
    finished: () -> [promotion.Finished] of the study's trials so far (read when promotion asks).
    """

    def __init__(self, settings, runner, reference: dict | None = None,
                 finished: Callable[[], list] | None = None):
        self.settings, self.runner, self.reference = settings, runner, reference
        self.finished = finished or list

    def precheck(self, sample: dict) -> tuple[dict | None, str | None]:
        """(drift-free cost or None, failure reason or None)."""
        res = self.runner.run("precheck", sample)
        if res.status != "done":
            return None, f"precheck failed: {res.reason}"
        if not res.value:
            return None, None
        return drift_free(res.value, self.reference), None

    def run(self, sample: dict, on_report: Callable[[int, float], bool] | None = None) -> TrialOutcome:
        s = self.settings
        budgets = (s.max_latency_ms, s.max_size_mb)
        cost = None
        if s.has_budget or s.promote:
            cost, failed = self.precheck(sample)
            if failed and s.has_budget:
                return TrialOutcome(FAIL, reason=failed)
        source = _source(cost)
        if s.has_budget:
            reason = over_budget(cost or {}, *budgets)
            if reason:
                return TrialOutcome(PRUNED, reason=reason, precheck=cost, rejected=True, latency_source=source,
                                    constraints=constraint_values(cost or {}, *budgets))
        granted: dict = {}

        def on_extend(step: int, best_dev: float | None, best_step: int | None) -> int:
            extra = self._promotion(cost, step, best_dev, best_step)
            if extra:
                granted.update(at_step=step, dev=best_dev, extra_steps=extra)
            return extra

        res = self.runner.run("evaluate", sample, on_report, on_extend if s.promote else None)
        promoted = dict(granted) or None
        if res.status == "pruned":
            return TrialOutcome(PRUNED, reason=res.reason, precheck=cost, latency_source=source, promoted=promoted)
        if res.status == "error":
            return TrialOutcome(FAIL, reason=res.reason, precheck=cost, interrupted=res.reason == INTERRUPTED,
                                latency_source=source)
        metrics = drift_free(res.value or {}, self.reference)
        out = TrialOutcome(FAIL, metrics=metrics, precheck=cost, promoted=promoted, steps=metrics.get("steps"),
                           constraints=constraint_values(metrics, *budgets),
                           latency_source="measured" if metrics.get("speedup") else source)
        if metrics.get("failure"):
            out.reason = str(metrics["failure"])
            return out
        try:
            out.values = objective_values(metrics, s.objective)
        except ValueError as exc:
            out.reason = f"no usable result: {exc}"
            return out
        out.state = COMPLETE
        return out

    def _promotion(self, cost: dict | None, step: int, best_dev, best_step) -> int:
        from hybridsearch.search.promotion import promotion_steps

        s = self.settings
        if not cost or cost.get("latency_ms") is None:
            return 0
        return promotion_steps(dev=best_dev, best_step=best_step, steps=step, latency_ms=cost["latency_ms"],
                               meets_budgets=not over_budget(cost, s.max_latency_ms, s.max_size_mb),
                               finished=self.finished(), teacher_dev=(self.reference or {}).get("dev_score"),
                               has_budget=s.has_budget, reach=s.promote_reach, factor=s.promote_factor,
                               eta=s.promote_eta)


def _source(cost: dict | None) -> str | None:
    if not cost:
        return None
    return cost.get("latency_source") or "measured"


def interrupted_outcome(why: str = INTERRUPTED) -> TrialOutcome:
    return TrialOutcome(FAIL, reason=why, interrupted=True)


def record(study, trial, outcome: TrialOutcome, backend: dict | None = None) -> None:
    """Write `outcome` (and `backend.*` facts) on `trial` (an `optuna.Trial` of `study`), then tell the study.

    An interrupted trial's point is enqueued again, marked `retry_of` (`study.requeue`)."""
    from optuna.trial import TrialState

    from hybridsearch.search.study import requeue

    trial.set_user_attr(OUTCOME_KEY, outcome.to_dict())
    for key, value in (backend or {}).items():
        trial.set_user_attr(BACKEND_PREFIX + key, value)
    values = outcome.values if outcome.state == COMPLETE else None
    if values is not None and len(values) == 1:
        values = values[0]
    study.tell(trial, values, state=TrialState[outcome.state], skip_if_finished=True)
    if outcome.interrupted:
        requeue(study, trial.number, outcome.reason or INTERRUPTED, always=True)


__all__ = ["OUTCOME_KEY", "TrialOutcome", "TrialProtocol", "drift_free", "read_outcome", "record"]
