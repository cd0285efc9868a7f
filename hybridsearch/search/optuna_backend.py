"""The Optuna search loop: one trial = sample -> (budget precheck) -> evaluate, in a worker process.

Contracts:
- multi-objective (`objective="multi"`): maximize dev score, minimize latency_ms, minimize size_mb;
  `objective="score"`: maximize dev score, pruned on intermediate dev scores. When the
  objective has a `reference()` (the teacher), a trial's latency_ms is the teacher's
  reference latency / the trial's same-run speed-up (drift-free; raw median kept).
- budgets are constraints (`constraints_func` on user attr `constraints`, <= 0 feasible) and, before training,
  a precheck on the untrained candidate (drift-free like the trial's latency when it reports a
  speed-up): over-budget trials end PRUNED with user attr `reason` ("over budget: ...") and
  `rejected=True`.
- a failed trial ends FAIL with user attr `reason`; trials left RUNNING by a killed
  process are failed by Optuna's heartbeat (`fail_stale_trials`) and re-enqueued once
  (the study's user attr `stale.<n>` says why). Only trials with a stale heartbeat
  are touched, so a live process's trials never are. (Optuna limit: a process killed
  in the milliseconds between creating a trial and its first heartbeat leaves that
  trial RUNNING; it does not count towards `trials`.)
- promotion (`settings.promote`, `search.promotion`): every trial is prechecked; at the end of its
  budget the objective may ask for more steps (`report.extend`), granted ASHA-style to a trial
  in the top 1/eta towards the `--best` choice; a granted trial has user attr `promoted`.
- `settings.trials` counts finished trials (COMPLETE, PRUNED, FAIL with a reason)
  over all runs of the study: a resumed search runs only the rest. `timeout` bounds the
  whole search: a trial still running at the deadline is stopped (FAIL, `interrupted`,
  not counted) and enqueued again for the next run (process isolation only).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

from hybridsearch.errors import UserError
from hybridsearch.search.objective import (
    DIRECTIONS,
    MODES,
    constraint_values,
    objective_values,
    over_budget,
)
from hybridsearch.search.rundir import STUDY_NAME
from hybridsearch.search.worker import INTERRUPTED

SAMPLERS = ("nsga2", "tpe", "random")


class TrialFailed(Exception):
    """A trial failed for a reason stored on it; the search goes on."""


@dataclass
class SearchSettings:
    trials: int = 12
    timeout: float | None = None
    objective: str = "multi"
    sampler: str = "nsga2"
    seed: int = 0
    max_latency_ms: float | None = None
    max_size_mb: float | None = None
    isolation: str = "process"
    heartbeat_interval: int = 10
    grace_period: int | None = None  # default: 3 x heartbeat_interval
    enqueue_seeds: bool = True
    trial_timeout: float | None = None
    promote: bool = True  # more steps for a trial ranked towards the --best choice (`search.promotion`)
    promote_reach: float = 0.02  # no budget: ranked if within 1 point + this (a fraction) of the teacher's dev
    promote_factor: float = 1.0  # a promoted trial trains this many times its budget again
    promote_eta: int = 4  # ASHA's reduction factor: about one trial in promote_eta is promoted

    def check(self) -> SearchSettings:
        if self.objective not in MODES:
            raise UserError(f"unknown --objective {self.objective!r}; use one of {', '.join(MODES)}")
        if self.sampler not in SAMPLERS:
            raise UserError(f"unknown --sampler {self.sampler!r}; use one of {', '.join(SAMPLERS)}")
        if not isinstance(self.trials, int) or self.trials < 1:
            raise UserError(f"--trials must be a positive integer, got {self.trials!r}")
        for name in ("max_latency_ms", "max_size_mb", "timeout"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise UserError(f"--{name.replace('_', '-')} must be positive, got {v}")
        return self

    @property
    def has_budget(self) -> bool:
        return self.max_latency_ms is not None or self.max_size_mb is not None


# -- storage ------------------------------------------------------------------------
def _on_stale(study, trial) -> None:
    """failed_trial_callback: record why, and run the trial's point again once."""
    reason = "process running the trial stopped (heartbeat lost); re-enqueued"
    study.set_user_attr(f"stale.{trial.number}", reason)
    if trial.user_attrs.get("retry_of") is None and trial.params:
        attrs = {"retry_of": trial.number, "seeded": bool(trial.user_attrs.get("seeded"))}
        if trial.user_attrs.get("seed_name"):
            attrs["seed_name"] = trial.user_attrs["seed_name"]
        study.enqueue_trial(trial.params, user_attrs=attrs)


def make_storage(url: str, heartbeat_interval: int = 10, grace_period: int | None = None):
    """An RDBStorage with heartbeat; `UserError` when the URL cannot be opened."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat_interval, grace_period=grace_period or 3 * heartbeat_interval,
            heartbeat_stale_trial_callback=_on_stale, engine_kwargs=_engine_kwargs(url),
        )
    except ModuleNotFoundError as exc:
        raise UserError(f"storage {url}: database driver missing ({exc.name}); "
                        f"pip install 'hybridsearch[postgres]' for PostgreSQL") from None
    except Exception as exc:  # noqa: BLE001 - sqlalchemy errors vary by backend
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot open study storage {url} ({first}); check the URL and that the server is up") from None


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True}


def make_sampler(settings: SearchSettings):
    """With budgets, NSGA-II / TPE get `constraints_func` reading the trial's user attr `constraints`
    (<= 0 feasible; every backend writes that attr). Independent TPE: conditional spaces.
    "nsga2" is `search.sampler.GroupedNSGAIISampler` (seeds are parents; crossover by label group)."""
    import optuna

    cf = _constraints if settings.has_budget else None
    warnings.filterwarnings("ignore", message=".*constraints_func.*", category=FutureWarning)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=settings.seed)
    if settings.sampler == "tpe":
        startup = min(10, max(3, settings.trials // 4))
        return optuna.samplers.TPESampler(seed=settings.seed, n_startup_trials=startup, multivariate=False,
                                          constraints_func=cf)
    from hybridsearch.search.sampler import GroupedNSGAIISampler

    pop = min(50, max(3, settings.trials // 4))  # 12 trials: 4 generations of 3 (seeds in the first)
    return GroupedNSGAIISampler(seed=settings.seed, population_size=pop, constraints_func=cf)


def _constraints(trial) -> list[float]:
    return list(trial.user_attrs.get("constraints", [0.0, 0.0]))


def _set_constraints(trial, values: list[float], settings: SearchSettings) -> None:
    trial.set_user_attr("constraints", values)


def make_pruner(settings: SearchSettings):
    import optuna

    if settings.objective != "score":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def open_study(storage_url: str | None, settings: SearchSettings, study_name: str = STUDY_NAME,
               metadata: dict | None = None):
    """Create or load the study; refuse a study made with another objective or identity."""
    import optuna

    if storage_url is None:  # in memory: no heartbeat, no resume (tests, quick experiments)
        storage = optuna.storages.InMemoryStorage()
    else:
        storage = make_storage(storage_url, settings.heartbeat_interval, settings.grace_period)
    directions = DIRECTIONS[settings.objective]
    names = [s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)]
    if study_name in names:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=make_sampler(settings),
                                  pruner=make_pruner(settings))
        have = [d.name.lower() for d in study.directions]
        if have != directions:
            was = "multi" if len(have) > 1 else "score"
            raise UserError(f"this run's study was made with --objective {was}; pass --objective {was} "
                            f"or another --out")
        for key, value in (metadata or {}).items():
            old = study.user_attrs.get(key)
            if key in ("task", "teacher_fingerprint", "space_hash") and old is not None and old != value:
                raise UserError(f"the study in {storage_url} was made for {key.replace('_', ' ')} {old!r}, "
                                f"not {value!r}; resume with the same settings or pass another --out")
        return study
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, directions=directions,
                                    sampler=make_sampler(settings), pruner=make_pruner(settings))
    except optuna.exceptions.DuplicatedStudyError:  # another worker created it a moment ago: load and check it
        return open_study(storage_url, settings, study_name, metadata)
    for key, value in (metadata or {}).items():
        study.set_user_attr(key, value)
    study.set_user_attr("settings", {k: v for k, v in asdict(settings).items()})
    return study


def finished_count(study) -> int:
    """Finished trials that count towards --trials (stale-failed trials without a reason do not)."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            n += 1
        elif t.state == TrialState.FAIL and t.user_attrs.get("reason") and not t.user_attrs.get("interrupted"):
            n += 1
    return n


def enqueue_seeds(study, space) -> int:
    """Enqueue the space's known-good points once per study (user attrs seeded=True, seed_name)."""
    if study.user_attrs.get("seeds_enqueued"):
        return 0
    for seed in space.seeds:
        study.enqueue_trial(seed["sample"], user_attrs={"seeded": True, "seed_name": seed["name"]},
                            skip_if_exists=True)
    study.set_user_attr("seeds_enqueued", [s["name"] for s in space.seeds])
    return len(space.seeds)


def check_budgets_reachable(space, runner, settings: SearchSettings, teacher: dict | None = None) -> dict | None:
    """Precheck the space's cheapest candidate; `UserError` before any training if it breaks a budget."""
    if not settings.has_budget:
        return None
    sample = space.cheapest_sample()
    res = runner.run("precheck", sample)
    if res.status != "done":
        raise UserError(f"cannot measure the cheapest candidate of {space.path} ({res.reason}); fix the space")
    cost = _drift_free(res.value or {}, teacher)
    reason = over_budget(cost, settings.max_latency_ms, settings.max_size_mb)
    if reason:
        raise UserError(f"no candidate of {space.path} can meet the budget: its cheapest one is {reason}; "
                        f"raise the budget or use a smaller space")
    return cost


def run_search(space, objective, storage_url: str | None, settings: SearchSettings, *, study_name: str = STUDY_NAME,
               metadata: dict | None = None, callbacks: tuple = (), on_trial: Callable | None = None):
    """Run (or resume) the study until `settings.trials` trials are finished or the timeout; returns the study."""
    import optuna

    from hybridsearch.search.objective import as_objective
    from hybridsearch.search.worker import TrialRunner

    settings.check()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = open_study(storage_url, settings, study_name, metadata)
    if settings.enqueue_seeds:
        enqueue_seeds(study, space)
    optuna.storages.fail_stale_trials(study)
    remaining = settings.trials - finished_count(study)
    if remaining <= 0:
        return study
    runner = TrialRunner(as_objective(objective), settings.isolation, settings.trial_timeout)
    if settings.timeout:
        runner.deadline = time.monotonic() + settings.timeout
    try:
        if hasattr(objective, "reference") and "teacher" not in study.user_attrs:
            res = runner.run("reference", {})
            if res.status != "done":  # nothing trained yet; the study and its seeds are stored
                if settings.timeout and "timeout" in str(res.reason):
                    raise UserError(f"--timeout {settings.timeout:g}s ran out while the worker loaded the task and "
                                    "teacher and timed the teacher, before any trial; give a longer --timeout")
                raise UserError(f"measuring the teacher in the trial worker failed ({res.reason}); "
                                "check the teacher and --device, then re-run the same command")
            study.set_user_attr("teacher", res.value)
        check_budgets_reachable(space, runner, settings, study.user_attrs.get("teacher"))
        fn = _trial_function(space, runner, settings)

        def stop_when_done(study, trial):
            if on_trial:
                on_trial(study, trial)
            if finished_count(study) >= settings.trials:
                study.stop()

        study.optimize(fn, n_trials=remaining, timeout=settings.timeout, catch=(TrialFailed,),
                       callbacks=[stop_when_done, *callbacks], gc_after_trial=False)
    finally:
        runner.close()
    return study


def _drift_free(metrics: dict, teacher: dict | None) -> dict:
    """latency_ms := the teacher's reference latency / this trial's same-run speed-up.

    A shared machine drifts between trials; the speed-up (student and teacher timed
    interleaved in one run) does not. The trial's own median stays as `latency_ms_raw`.
    """
    ref = (teacher or {}).get("latency_ms")
    if ref and metrics.get("speedup") and metrics.get("latency_ms") is not None:
        metrics = dict(metrics, latency_ms_raw=metrics["latency_ms"], latency_ms=ref / metrics["speedup"])
    return metrics


def _fail(trial, reason: str):
    trial.set_user_attr("reason", reason)
    logging.getLogger("hybridsearch.search").info("trial %d failed: %s", trial.number, reason)
    raise TrialFailed(reason)


def _trial_function(space, runner, settings: SearchSettings):
    import optuna

    budgets = (settings.max_latency_ms, settings.max_size_mb)

    def fn(trial):
        sample = space.sample(trial)
        trial.set_user_attr("seeded", bool(trial.user_attrs.get("seeded", False)))
        cost = None
        if settings.has_budget or settings.promote:
            res = runner.run("precheck", sample)
            if res.status != "done" and settings.has_budget:
                _fail(trial, f"precheck failed: {res.reason}")
            cost = (res.value or None) if res.status == "done" else None
            if cost:  # a same-run speed-up -> the teacher's reference latency / speed-up, like the trial's own
                cost = _drift_free(cost, trial.study.user_attrs.get("teacher"))
                trial.set_user_attr("precheck", cost)
        if settings.has_budget:
            reason = over_budget(cost or {}, *budgets)
            if reason:
                trial.set_user_attr("reason", reason)
                trial.set_user_attr("rejected", True)
                _set_constraints(trial, constraint_values(cost or {}, *budgets), settings)
                raise optuna.TrialPruned(reason)

        def on_extend(step: int, best_dev: float | None, best_step: int | None) -> int:
            extra = _promotion(trial, cost, step, best_dev, best_step, settings)
            if extra:
                trial.set_user_attr("promoted", {"at_step": step, "dev": best_dev, "extra_steps": extra})
            return extra

        def on_report(step: int, value: float) -> bool:
            if settings.objective != "score":
                return False
            trial.report(value, step)
            return trial.should_prune()

        res = runner.run("evaluate", sample, on_report, on_extend if settings.promote else None)
        if res.status == "pruned":
            trial.set_user_attr("reason", res.reason)
            raise optuna.TrialPruned(res.reason)
        if res.status == "error":
            if res.reason == INTERRUPTED:  # not the candidate's fault: does not count, runs again on resume
                trial.set_user_attr("interrupted", True)
                trial.study.enqueue_trial(trial.params, user_attrs={"seeded": trial.user_attrs.get("seeded", False)})
            _fail(trial, res.reason)
        metrics = _drift_free(res.value or {}, trial.study.user_attrs.get("teacher"))
        trial.set_user_attr("metrics", metrics)
        _set_constraints(trial, constraint_values(metrics, *budgets), settings)
        if metrics.get("failure"):
            _fail(trial, str(metrics["failure"]))
        try:
            values = objective_values(metrics, settings.objective)
        except ValueError as exc:
            _fail(trial, f"no usable result: {exc}")
        return values if len(values) > 1 else values[0]

    return fn


def _promotion(trial, cost: dict | None, step: int, best_dev, best_step, settings: SearchSettings) -> int:
    """Extra steps for `trial` at the end of its budget (`search.promotion`); 0 without a precheck or teacher."""
    import optuna

    from hybridsearch.search.promotion import Finished, promotion_steps

    teacher = trial.study.user_attrs.get("teacher") or {}
    if not cost or cost.get("latency_ms") is None:
        return 0
    budgets = (settings.max_latency_ms, settings.max_size_mb)
    finished = []
    for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        metrics, pre = t.user_attrs.get("metrics") or {}, t.user_attrs.get("precheck") or {}
        if metrics.get("dev_score") is not None and pre.get("latency_ms") is not None:
            finished.append(Finished(metrics["dev_score"], pre["latency_ms"], not over_budget(metrics, *budgets)))
    return promotion_steps(dev=best_dev, best_step=best_step, steps=step, latency_ms=cost["latency_ms"],
                           meets_budgets=not over_budget(cost, *budgets), finished=finished,
                           teacher_dev=teacher.get("dev_score"), has_budget=settings.has_budget,
                           reach=settings.promote_reach, factor=settings.promote_factor, eta=settings.promote_eta)
