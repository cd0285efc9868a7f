"""`--backend ray`: the same objective and study, run as Ray Tune trials.

Contracts:
- the study is the one `optuna_backend.open_study` makes (same storage, directions, identity
  checks, seeds); Ray's `OptunaSearch` (subclassed: `StudySearch`) asks and tells it, so
  `study show` / optuna-dashboard read a Ray search like any other. Trials carry user attrs
  `backend="ray"`, `ray_trial_id`, `ray_run` and, like the Optuna loop, `metrics`,
  `constraints`, `precheck`, `reason`, `rejected`.
- ASHA stops trials on the intermediate dev score (`dev_score`, every `report`), in both
  objective modes; with `--objective multi` the latency / size budgets act as constraints of
  the sampler and as the precheck that rejects a candidate before training. A trial ASHA stops
  ends PRUNED with the reason.
- per-trial resources `cpus_per_trial` / `gpus_per_trial` (fractions allowed), `concurrency`
  trials at once; `node_type` names a custom Ray resource so that trials, and so their latency,
  run on the node type the user targets; `address` joins a running cluster, otherwise a local Ray (no dashboard,
  small object store, CPUs = concurrency x cpus_per_trial) is started and stopped here.
- Ray's results live in RUN_DIR/ray/exp-NNN. A re-run of an interrupted (or killed) search
  restores the last experiment (`Tuner.restore`): unfinished trials run again unless the
  study already holds their result, trials asked but never recorded by Ray are failed and
  their point re-enqueued; no finished trial is lost or repeated. Searcher state is JSON.
- a crashed trial process fails that trial only (FAIL, with a reason).
- latency inside a trial is measured under the node lock (`locks`), training holds it shared.
- on a cluster every node must have hybridsearch installed and see the same `--cache-dir`
  (teacher and teacher-output caches) and study storage URL (use PostgreSQL).
"""

from __future__ import annotations

import functools
import json
import math
import os
import socket
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from hybridsearch.errors import UserError
from hybridsearch.search.objective import (
    DIRECTIONS,
    OBJECTIVE_NAMES,
    constraint_values,
    objective_values,
    over_budget,
)
from hybridsearch.search.rundir import STUDY_NAME

RAY_DIR = "ray"
_ON_TRIAL: dict = {}  # run tag -> on_trial(study, frozen_trial), kept out of the pickled searcher
STATE_FILE = "hybridsearch.json"  # per experiment: {"num_samples": n}
ASHA_HELP = ("ASHA stops trials on the intermediate dev score; with --objective multi the latency / size "
             "budgets are constraints (and the precheck rejects over-budget candidates before training)")


@dataclass
class RaySettings:
    concurrency: int = 1
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: str | None = None
    node_type: str | None = None  # a custom Ray resource: trials (training and latency) run on nodes offering it
    object_store_mb: int = 100
    grace_period: int = 1  # ASHA: reports before a trial may be stopped
    reduction_factor: int = 2
    verbose: int = 1

    def check(self) -> RaySettings:
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise UserError(f"--concurrency must be a positive integer, got {self.concurrency!r}")
        if not self.cpus_per_trial > 0:
            raise UserError(f"--cpus-per-trial must be positive, got {self.cpus_per_trial}")
        if self.gpus_per_trial < 0:
            raise UserError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial}")
        if self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            raise UserError(f"--gpus-per-trial {self.gpus_per_trial}: above 1 it must be a whole number")
        return self


# -- the searcher: Ray's OptunaSearch on our study, pickle-free ------------------------------------
def _sample_space(space, trial):
    return space.sample(trial)


def _make_search_class():
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from hybridsearch.search.optuna_backend import make_sampler, make_storage

    class StudySearch(OptunaSearch):
        """OptunaSearch asking / telling the hybridsearch study; see the module docstring."""

        def __init__(self, space, settings, storage_url: str, study_name: str, run_tag: str):
            self._hs = {"settings": settings, "storage_url": storage_url, "run_tag": run_tag}
            self._ids: dict[str, list] = {}  # tune trial id -> [optuna number, storage trial id]
            multi = settings.objective == "multi"
            mode = ["max" if d == "maximize" else "min" for d in DIRECTIONS[settings.objective]]
            super().__init__(space=functools.partial(_sample_space, space),
                             metric=OBJECTIVE_NAMES[settings.objective] if multi else "dev_score",
                             mode=mode if multi else "max", sampler=make_sampler(settings),
                             study_name=study_name, storage=self._new_storage())

        def _new_storage(self):
            s = self._hs["settings"]
            return make_storage(self._hs["storage_url"], s.heartbeat_interval, s.grace_period)

        # pickling (Tuner state) drops the live study; it is rebuilt on first use
        def __getstate__(self):
            state = self.__dict__.copy()
            state.update(_ot_study=None, _ot_trials={}, _storage=None, _sampler=None)
            return state

        def _ensure(self):
            if self._ot_study is None:
                self._storage, self._sampler = self._new_storage(), make_sampler(self._hs["settings"])
                self._setup_study(self._mode)
            return self._ot_study

        def suggest(self, trial_id):
            from ray.tune.search import Searcher

            from hybridsearch.search.optuna_backend import finished_count

            study = self._ensure()
            live = [sid for tid, (_, sid) in self._ids.items() if tid not in self._completed_trials
                    and not study._storage.get_trial(sid).state.is_finished()]
            if finished_count(study) + len(live) >= self._hs["settings"].trials:
                return Searcher.FINISHED  # the study has (or will have) enough finished trials
            ot_trial = study.ask()
            params = self._suggest_from_define_by_run_func(self._space, ot_trial)
            self._ids[trial_id] = [ot_trial.number, ot_trial._trial_id]
            seeded = bool(ot_trial.user_attrs.get("seeded", False))
            for key, value in (("backend", "ray"), ("ray_trial_id", trial_id), ("ray_run", self._hs["run_tag"]),
                               ("seeded", seeded)):
                ot_trial.set_user_attr(key, value)
            return {**params, "_hs_trial": ot_trial.number}

        def on_trial_result(self, trial_id, result):
            if self._hs["settings"].objective != "score" or trial_id not in self._ids or result.get("hs_final"):
                return
            value = result.get("dev_score")
            if isinstance(value, (int, float)) and math.isfinite(value) and result.get("step") is not None:
                try:
                    self._ensure()._storage.set_trial_intermediate_value(self._ids[trial_id][1], int(result["step"]),
                                                                         float(value))
                except Exception:  # noqa: BLE001 - a finished trial or a repeated step: the record stays
                    pass

        def on_trial_complete(self, trial_id, result=None, error=False):
            study = self._ensure()
            if trial_id not in self._ids or trial_id in self._completed_trials:
                return
            number, sid = self._ids[trial_id]
            self._completed_trials.add(trial_id)
            if study._storage.get_trial(sid).state.is_finished():
                return  # told before an interruption; the re-run trial replayed it
            attrs, state, values = outcome(result, error, self._hs["settings"])
            for key, value in attrs.items():
                study._storage.set_trial_user_attr(sid, key, value)
            study.tell(number, values, state=state, skip_if_finished=True)
            callback = _ON_TRIAL.get(self._hs["run_tag"])
            if callback:
                callback(study, study._storage.get_trial(sid))

        def save(self, checkpoint_path: str):
            with open(checkpoint_path, "w") as f:
                json.dump({"ids": self._ids, "completed": sorted(self._completed_trials)}, f)

        def restore(self, checkpoint_path: str):
            with open(checkpoint_path) as f:
                state = json.load(f)
            self._ids, self._completed_trials = state["ids"], set(state["completed"])
            fail_orphans(self._ensure(), self._hs["run_tag"], {n for n, _ in self._ids.values()})

    return StudySearch, optuna


def fail_orphans(study, run_tag: str, known: set[int]) -> list[int]:
    """RUNNING trials of this run that Ray never recorded: FAIL them (reason on the study) and re-enqueue."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("ray_run") != run_tag or t.number in known:
            continue
        study.set_user_attr(f"stale.{t.number}", "Ray driver stopped before recording the trial; its point is re-enqueued")
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        if t.params and t.user_attrs.get("retry_of") is None:
            attrs = {"retry_of": t.number, "seeded": bool(t.user_attrs.get("seeded"))}
            study.enqueue_trial(t.params, user_attrs=attrs)
        out.append(t.number)
    return out


def outcome(result: dict | None, error: bool, settings):
    """A Ray trial's last result -> (user attrs, optuna TrialState, values or None)."""
    from optuna.trial import TrialState

    budgets = (settings.max_latency_ms, settings.max_size_mb)
    if error or not result:
        reason = ("Ray trial failed: its worker process died or raised (see error.txt under RUN_DIR/ray)"
                  if error else "stopped by Ray before any result")
        return {"reason": reason}, TrialState.FAIL if error else TrialState.PRUNED, None
    if result.get("hs_rejected"):
        cost = json.loads(result["hs_precheck"])
        return ({"reason": result["hs_reason"], "rejected": True, "precheck": cost,
                 "constraints": constraint_values(cost, *budgets)}, TrialState.PRUNED, None)
    if result.get("hs_error"):
        return {"reason": result["hs_error"]}, TrialState.FAIL, None
    if result.get("hs_final"):
        metrics = json.loads(result["hs_metrics"])
        attrs = {"metrics": metrics, "constraints": constraint_values(metrics, *budgets)}
        if metrics.get("failure"):
            return {**attrs, "reason": str(metrics["failure"])}, TrialState.FAIL, None
        try:
            values = objective_values(metrics, settings.objective)
        except ValueError as exc:
            return {**attrs, "reason": f"no usable result: {exc}"}, TrialState.FAIL, None
        return attrs, TrialState.COMPLETE, values if len(values) > 1 else values[0]
    step, value = result.get("step"), result.get("dev_score")
    return ({"reason": f"stopped by the ASHA scheduler at step {step} (dev score {value:.4f})"},
            TrialState.PRUNED, None)


# -- the trainable (runs in a Ray worker) -------------------------------------------------------------
_READY: dict = {}


def _finished_in_study(ctx: dict, number: int) -> bool:
    from hybridsearch.search.optuna_backend import make_storage

    storage = make_storage(ctx["storage_url"], 60)
    try:
        study_id = storage.get_study_id_from_name(ctx["study_name"])
        sid = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        return storage.get_trial(sid).state.is_finished()
    except KeyError:
        return False
    finally:
        storage.remove_session()
        storage.engine.dispose()


def trainable(config: dict, objective=None, ctx: dict | None = None) -> None:
    """One Ray trial: (replay check) -> precheck under the node lock -> evaluate, reporting dev scores."""
    from ray import tune

    from hybridsearch.search import locks
    from hybridsearch.search.objective import metrics_dict
    from hybridsearch.search.worker import _reason

    nan = float("nan")

    def send(result: dict) -> None:  # every result carries all metrics Tune checks for
        tune.report({"dev_score": nan, "latency_ms": nan, "size_mb": nan, **result})

    number = config.get("_hs_trial")
    sample = {k: v for k, v in config.items() if not k.startswith("_hs")}
    if number is not None and _finished_in_study(ctx, number):
        send({"hs_replayed": 1})
        return
    if ctx.get("cwd") and os.path.isdir(ctx["cwd"]):
        os.chdir(ctx["cwd"])  # Tune starts trials in their own directory; relative paths are the driver's
    if ctx.get("lock_path"):
        os.environ[locks.LOCK_ENV] = ctx["lock_path"]
    locks.install_latency_lock()
    obj = _READY.get(ctx["key"])
    if obj is None:
        obj = objective
        obj.setup()
        _READY.clear()
        _READY[ctx["key"]] = obj
    if ctx["has_budget"]:
        try:
            with locks.measuring():
                cost = obj.precheck(sample) or {}
        except Exception as exc:  # noqa: BLE001 - fails this trial only
            send({"hs_error": f"precheck failed: {_reason(exc)}"})
            return
        reason = over_budget(cost, ctx["max_latency_ms"], ctx["max_size_mb"])
        if reason:
            send({"hs_rejected": 1, "hs_reason": reason,
                         "hs_precheck": json.dumps(metrics_dict(cost))})
            return

    def report(step: int, value: float) -> None:
        locks.yield_point()
        send({"dev_score": float(value), "step": int(step)})

    try:
        with locks.training():
            metrics = metrics_dict(obj.evaluate(sample, report))
    except UserError as exc:
        send({"hs_error": f"invalid candidate: {exc}"})
        return
    except Exception as exc:  # noqa: BLE001 - fails this trial only, with its reason
        send({"hs_error": _reason(exc)})
        return
    final = {k: float(metrics[k]) for k in ("dev_score", "latency_ms", "size_mb")
             if isinstance(metrics.get(k), (int, float)) and math.isfinite(metrics[k])}
    send({**final, "hs_final": 1, "hs_metrics": json.dumps(metrics)})


# -- Ray session ---------------------------------------------------------------------------------------
def check_address(address: str, timeout: float = 3.0) -> None:
    """`UserError` unless host:port of a Ray address accepts a TCP connection ("auto" is left to Ray)."""
    if address in ("auto", "local"):
        return
    url = urlparse(address if "://" in address else f"ray://{address}")
    host, port = url.hostname, url.port
    if not host or not port:
        raise UserError(f"bad --address {address!r}; give HOST:PORT of the Ray head (e.g. 10.0.0.5:6379) or 'auto'")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise UserError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it with "
                        f"`ray start --head` or drop --address to run locally") from None


@contextmanager
def ray_session(rs: RaySettings):
    """Join `rs.address`, or start a local Ray and stop it on exit; reuse one already started."""
    import ray

    if ray.is_initialized():
        yield False
        return
    try:
        if rs.address:
            check_address(rs.address)
            ray.init(address=rs.address, log_to_driver=rs.verbose > 1)
        else:
            ray.init(num_cpus=max(1, math.ceil(rs.concurrency * rs.cpus_per_trial)), include_dashboard=False,
                     object_store_memory=max(rs.object_store_mb, 80) * 1024 * 1024, log_to_driver=rs.verbose > 1)
    except UserError:
        raise
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot start or join Ray ({first}); check --address or drop it") from None
    try:
        yield True
    finally:
        ray.shutdown()


def check_resources(rs: RaySettings) -> None:
    import ray

    have = ray.cluster_resources()
    if rs.gpus_per_trial > 0 and have.get("GPU", 0) < rs.gpus_per_trial:
        raise UserError(f"--gpus-per-trial {rs.gpus_per_trial:g} asked, but the Ray cluster has "
                        f"{have.get('GPU', 0):g} GPU(s); drop --gpus-per-trial or join a cluster with GPUs")
    if rs.node_type and have.get(rs.node_type, 0) <= 0:
        raise UserError(f"no Ray node offers resource '{rs.node_type}'; start the target nodes with "
                        f"ray start --resources='{{\"{rs.node_type}\": 1}}' or drop --node-type")
    if have.get("CPU", 0) < rs.cpus_per_trial:
        raise UserError(f"--cpus-per-trial {rs.cpus_per_trial:g} exceeds the cluster's {have.get('CPU', 0):g} CPUs; "
                        f"lower it")


# -- the search --------------------------------------------------------------------------------------------
def _experiments(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("exp-*") if p.is_dir())


def _experiment_done(exp: Path, results, enough: bool) -> bool:
    """All of the experiment's trials ended, and it sampled all it meant to (or the study has enough)."""
    want = json.loads((exp / STATE_FILE).read_text()).get("num_samples", 0) if (exp / STATE_FILE).is_file() else 0
    trials = results._experiment_analysis.trials if results is not None else []
    return all(t.status in ("TERMINATED", "ERROR") for t in trials) and (enough or len(trials) >= want)


def _new_tuner(fn, exp: Path, space, settings, storage_url: str, study_name: str, run_tag: str, rs: RaySettings,
               num_samples: int):
    """A Tuner for a new experiment directory `exp`: our OptunaSearch, ASHA on dev_score, `rs` limits."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter

    exp.mkdir()
    (exp / STATE_FILE).write_text(json.dumps({"num_samples": num_samples, "ray": asdict(rs)}))
    search_cls, _ = _make_search_class()
    searcher = ConcurrencyLimiter(search_cls(space, settings, storage_url, study_name, run_tag=run_tag),
                                  max_concurrent=rs.concurrency)
    scheduler = ASHAScheduler(time_attr="training_iteration", metric="dev_score", mode="max",
                              grace_period=rs.grace_period, reduction_factor=rs.reduction_factor, max_t=100_000)
    return tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=num_samples,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=exp.name, storage_path=str(exp.parent), verbose=rs.verbose,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def run_ray_search(space, objective, storage_url: str | None, settings, run_dir, ray_settings: RaySettings | None = None,
                   *, study_name: str = STUDY_NAME, metadata: dict | None = None, lock_path: str | None = None,
                   on_trial=None):
    """Run, restore or extend the Ray search of `run_dir` until `settings.trials` trials are finished; the study.
    `on_trial(study, frozen_trial)` is called in this process after each trial is recorded."""
    import uuid
    import warnings

    import optuna

    from hybridsearch.search.objective import as_objective
    from hybridsearch.search.optuna_backend import (
        check_budgets_reachable,
        enqueue_seeds,
        finished_count,
        open_study,
    )
    from hybridsearch.search.worker import TrialRunner

    settings.check()
    rs = (ray_settings or RaySettings()).check()
    if storage_url is None:
        raise UserError("--backend ray needs a study storage (SQLite file or PostgreSQL URL); pass --storage or --out")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage")  # Ray trials are asked, not optimized
    study = open_study(storage_url, settings, study_name, metadata)
    if settings.enqueue_seeds:
        enqueue_seeds(study, space)
    optuna.storages.fail_stale_trials(study)
    root = (Path(run_dir) / RAY_DIR).resolve()
    root.mkdir(parents=True, exist_ok=True)
    objective = as_objective(objective)
    exps = _experiments(root)
    last = exps[-1] if exps else None
    if settings.trials - finished_count(study) <= 0 and (last is None or (last / ".done").exists()):
        return study
    if settings.has_budget:
        with TrialRunner(objective, settings.isolation, settings.trial_timeout) as runner:
            check_budgets_reachable(space, runner, settings)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "3")  # fresher state to restore from
    from ray import tune

    ctx = {"storage_url": storage_url, "study_name": study_name, "key": uuid.uuid4().hex,
           "has_budget": settings.has_budget, "max_latency_ms": settings.max_latency_ms,
           "max_size_mb": settings.max_size_mb, "lock_path": lock_path, "cwd": os.getcwd()}
    run_tag = str(Path(run_dir).resolve())
    _ON_TRIAL[run_tag] = on_trial
    try:
        with ray_session(rs):
            check_resources(rs)
            resources = {"cpu": rs.cpus_per_trial, "gpu": rs.gpus_per_trial}
            if rs.node_type:
                resources[rs.node_type] = 0.001  # a token share: any number of trials fit on such a node
            fn = tune.with_resources(tune.with_parameters(trainable, objective=objective, ctx=ctx), resources)
            for _ in range(2):  # restore the last unfinished experiment, then start one for what is left
                if last is not None and not (last / ".done").exists() and tune.Tuner.can_restore(str(last)):
                    tuner = tune.Tuner.restore(str(last), trainable=fn, resume_unfinished=True, resume_errored=False,
                                               restart_errored=False)
                else:
                    remaining = settings.trials - finished_count(study)
                    if remaining <= 0:
                        break
                    last = root / f"exp-{len(_experiments(root)) + 1:03d}"
                    tuner = _new_tuner(fn, last, space, settings, storage_url, study_name, run_tag, rs, remaining)
                results = tuner.fit()
                if not _experiment_done(last, results, finished_count(study) >= settings.trials):
                    raise KeyboardInterrupt("Ray search interrupted")
                (last / ".done").write_text("")
    finally:
        _ON_TRIAL.pop(run_tag, None)
    return study
