"""`--backend ray`: the same study and trial protocol, trials run as Ray Tune trials (local or a cluster).

Contracts:
- `StudySearcher` (a plain `ray.tune.search.Searcher`) asks the run's study for each sample (its
  sampler, seeds and queue) and tells it each outcome through `search.trial.record`, so `study
  show` / optuna-dashboard read a Ray search like any other. Trials carry `backend="ray"`,
  `backend.ray.trial_id`, `backend.ray.run` and `backend.ray.node_id` (the node that ran it).
- each trial runs `search.trial.TrialProtocol` in its Ray worker: precheck, budgets, evaluate,
  promotion (reading the study), drift-free latency against the teacher reference *of the node
  that ran it*. The reference is measured once per node by a Ray task with the trials' resources
  and node type (study attrs `teacher` and `reference.<node id>`); a node without one measures it
  in its first trial. Latency threads are the objective's `--threads`, not `--cpus-per-trial`.
- `--scheduler fifo` (default) runs every trial to its budget, like the other backends;
  `--scheduler asha` lets Ray's ASHA stop trials on the intermediate dev score (PRUNED with the reason).
- per-trial resources `cpus_per_trial` / `gpus_per_trial` (fractions allowed), `concurrency`
  trials at once; `node_type` names a custom Ray resource so that trials, and so their latency,
  run on the node type the user targets; `address` joins a running cluster, otherwise a local Ray
  (no dashboard, small object store, CPUs = concurrency x cpus_per_trial) is started and stopped here.
- Ray's results live in RUN_DIR/ray/exp-NNN. A re-run of a killed search restores the last
  experiment (`Tuner.restore`): unfinished trials run again unless the study already holds their
  result; trials the study holds RUNNING that Ray never recorded are failed and their point
  re-enqueued once (`retry_of`). Searcher state is JSON; no finished trial is lost or repeated.
  `--timeout` (Tune's time budget) and Ctrl-C stop the experiment: the trials it stopped are FAIL
  `interrupted` and re-enqueued, the experiment is closed, and a re-run starts the next one.
- latency inside a trial is measured under the node lock (`search.locks.NodeLock`, passed to the
  trial's `TrialRunner`); training holds it shared and yields at each report.
- on a cluster every node must have hybridsearch installed and see the same `--cache-dir`
  (teacher and teacher-output caches) and study storage URL (use PostgreSQL).
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from hybridsearch.errors import UserError
from hybridsearch.search.backends import Backend, SearchJob, register_backend

RAY_DIR = "ray"
STATE_FILE = "hybridsearch.json"  # per experiment: {"num_samples": n, "ray": settings}
SCHEDULERS = ("fifo", "asha")
TRIAL_KEY = "_hs_trial"  # the study's trial number, in the Tune config
_ON_TRIAL: dict = {}  # run tag -> on_trial(study, frozen_trial), kept out of the pickled searcher


@dataclass
class RaySettings:
    concurrency: int = 1
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    address: str | None = None
    node_type: str | None = None  # a custom Ray resource: trials (training and latency) run on nodes offering it
    scheduler: str = "fifo"
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
        if self.scheduler not in SCHEDULERS:
            raise UserError(f"unknown --scheduler {self.scheduler!r}; use one of {', '.join(SCHEDULERS)}")
        return self

    @property
    def resources(self) -> dict:
        out = {"cpu": self.cpus_per_trial, "gpu": self.gpus_per_trial}
        if self.node_type:
            out[self.node_type] = 0.001  # a token share: any number of trials fit on such a node
        return out


# -- the searcher (driver side) -------------------------------------------------------------------------
def _searcher_class():
    from ray.tune.search import Searcher

    class StudySearcher(Searcher):
        """Asks / tells the run's study; see the module docstring. Pickled by Tune without the live study."""

        def __init__(self, space, settings, storage_url: str, study_name: str, run_tag: str,
                     deadline: float | None = None, asha: bool = False):
            super().__init__(metric="dev_score", mode="max")
            self.space, self.settings, self.storage_url, self.study_name = space, settings, storage_url, study_name
            self.run_tag, self.deadline, self.asha = run_tag, deadline, asha
            self.ids: dict[str, int] = {}  # tune trial id -> study trial number
            self.done: set[str] = set()
            self._study = None

        def __getstate__(self):
            return dict(self.__dict__, _study=None)

        def study(self):
            if self._study is None:
                from hybridsearch.search.study import open_study

                self._study = open_study(self.storage_url, self.settings, self.study_name)
            return self._study

        def suggest(self, trial_id):
            from hybridsearch.search.study import finished_count
            from hybridsearch.search.trial import BACKEND_KEY, BACKEND_PREFIX

            study = self.study()
            live = [n for tid, n in self.ids.items() if tid not in self.done
                    and not study.get_trials(deepcopy=False)[n].state.is_finished()]
            if finished_count(study) + len(live) >= self.settings.trials:
                return Searcher.FINISHED  # the study has (or will have) enough finished trials
            trial = study.ask()
            sample = self.space.sample(trial)
            self.ids[trial_id] = trial.number
            trial.set_user_attr(BACKEND_KEY, "ray")
            trial.set_user_attr(BACKEND_PREFIX + "ray.trial_id", trial_id)
            trial.set_user_attr(BACKEND_PREFIX + "ray.run", self.run_tag)
            return {**sample, TRIAL_KEY: trial.number}

        def on_trial_complete(self, trial_id, result=None, error=False):
            from hybridsearch.search.study import trial_by_number
            from hybridsearch.search.trial import record

            if trial_id not in self.ids or trial_id in self.done:
                return
            self.done.add(trial_id)
            study, number = self.study(), self.ids[trial_id]
            if study.get_trials(deepcopy=False)[number].state.is_finished():
                return  # told before an interruption; the re-run trial replayed it
            stopped_by_deadline = self.deadline is not None and time.time() >= self.deadline
            outcome, node = outcome_of(result, error, stopped_by_deadline, self.asha)
            record(study, trial_by_number(study, number), outcome, {"ray.node_id": node} if node else None)
            callback = _ON_TRIAL.get(self.run_tag)
            if callback:
                callback(study, study.get_trials(deepcopy=False)[number])

        def save(self, checkpoint_path: str):
            with open(checkpoint_path, "w") as f:
                json.dump({"ids": self.ids, "done": sorted(self.done)}, f)

        def restore(self, checkpoint_path: str):
            with open(checkpoint_path) as f:
                state = json.load(f)
            self.ids = {k: (v[0] if isinstance(v, list) else v) for k, v in state["ids"].items()}
            self.done = set(state.get("done", state.get("completed", [])))
            fail_orphans(self.study(), self.run_tag, set(self.ids.values()))

    return StudySearcher


def fail_orphans(study, run_tag: str, known: set[int]) -> list[int]:
    """RUNNING trials of this run that Ray never recorded: FAIL them (reason on the study), re-enqueue once."""
    from optuna.trial import TrialState

    from hybridsearch.search.study import requeue
    from hybridsearch.search.trial import BACKEND_PREFIX

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get(BACKEND_PREFIX + "ray.run") != run_tag or t.number in known:
            continue
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        requeue(study, t.number, "Ray driver stopped before recording the trial; its point is re-enqueued")
        out.append(t.number)
    return out


def interrupt_unfinished(study, run_tag: str, why: str) -> list[int]:
    """After `Tuner.fit` returned: this run's trials the study still holds RUNNING were stopped with the
    experiment (time budget, Ctrl-C) without Tune telling the searcher; FAIL them `interrupted`, re-enqueued."""
    from optuna.trial import TrialState

    from hybridsearch.search.study import trial_by_number
    from hybridsearch.search.trial import BACKEND_PREFIX, interrupted_outcome, record

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get(BACKEND_PREFIX + "ray.run") == run_tag:
            record(study, trial_by_number(study, t.number), interrupted_outcome(why))
            out.append(t.number)
    return out


def outcome_of(result: dict | None, error: bool, stopped_by_deadline: bool = False, asha: bool = False):
    """A Ray trial's last result -> (TrialOutcome, node id or None). A trial that ended with no outcome of
    its own was stopped from outside: by ASHA (`asha` and it reported a dev score), else by the time budget,
    Ctrl-C or Ray itself: FAIL `interrupted` (it runs again)."""
    from hybridsearch.search.trial import FAIL, PRUNED, TrialOutcome, interrupted_outcome
    from hybridsearch.search.worker import INTERRUPTED

    result = result or {}
    if result.get("hs_outcome"):
        return TrialOutcome.from_dict(json.loads(result["hs_outcome"])), result.get("hs_node")
    if error:
        return TrialOutcome(FAIL, reason="Ray trial failed: its worker process died or raised "
                                         "(see error.txt under RUN_DIR/ray)"), result.get("hs_node")
    if stopped_by_deadline:
        return interrupted_outcome(INTERRUPTED), result.get("hs_node")
    if asha and result.get("step") is not None and isinstance(result.get("dev_score"), (int, float)):
        return TrialOutcome(PRUNED, reason=f"stopped by the ASHA scheduler at step {result['step']} "
                                           f"(dev score {result['dev_score']:.4f})"), result.get("hs_node")
    return interrupted_outcome("stopped by Ray before it finished (Ctrl-C or a stopped experiment); "
                               "re-run the same command to resume"), result.get("hs_node")


# -- the trainable (runs in a Ray worker) -------------------------------------------------------------------
_READY: dict = {}  # run key -> the objective set up in this worker


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _worker_objective(objective, key: str):
    obj = _READY.get(key)
    if obj is None:
        objective.setup()
        _READY.clear()
        _READY[key] = obj = objective
    return obj


def _runner(objective, ctx: dict):
    from hybridsearch.search.locks import NodeLock
    from hybridsearch.search.worker import TrialRunner

    return TrialRunner(objective, "inline", lock=NodeLock(ctx["lock_path"]), set_up=True)  # `_worker_objective`


def measure_reference_task(objective, ctx: dict):
    """A Ray task on a trial-like worker: (node id, the teacher reference or None, failure reason or None)."""
    runner = _runner(_worker_objective(objective, ctx["key"]), ctx)
    res = runner.run("reference", {})
    return _node_id(), res.value if res.status == "done" else None, None if res.status == "done" else res.reason


def _node_reference(study, ctx: dict, runner, node: str) -> dict | None:
    from hybridsearch.search.trial import REFERENCE_PREFIX, TEACHER_KEY

    if not ctx["has_reference"]:
        return None
    key = REFERENCE_PREFIX + node
    ref = study.user_attrs.get(key)
    if ref is None:
        res = runner.run("reference", {})
        if res.status != "done":
            raise RuntimeError(f"measuring the teacher on node {node} failed: {res.reason}")
        ref = res.value
        study.set_user_attr(key, ref)
        if TEACHER_KEY not in study.user_attrs:
            study.set_user_attr(TEACHER_KEY, ref)
    return ref


def trainable(config: dict, objective=None, ctx: dict | None = None) -> None:
    """One Ray trial: replay check -> the trial protocol (precheck, evaluate) -> its outcome, as Tune results."""
    from ray import tune

    from hybridsearch.search.promotion import finished_for_promotion
    from hybridsearch.search.study import open_study
    from hybridsearch.search.trial import FAIL, TrialOutcome, TrialProtocol

    nan = float("nan")

    def send(result: dict) -> None:  # every result carries all metrics Tune checks for
        tune.report({"dev_score": nan, "latency_ms": nan, "size_mb": nan, **result})

    number = config.get(TRIAL_KEY)
    sample = {k: v for k, v in config.items() if k != TRIAL_KEY}
    settings = ctx["settings"]
    study = open_study(ctx["storage_url"], settings, ctx["study_name"])
    if number is not None and study.get_trials(deepcopy=False)[number].state.is_finished():
        send({"hs_replayed": 1})
        return
    if ctx.get("cwd") and os.path.isdir(ctx["cwd"]):
        os.chdir(ctx["cwd"])  # Tune starts trials in their own directory; relative paths are the driver's
    node = _node_id()
    try:
        obj = _worker_objective(objective, ctx["key"])
        runner = _runner(obj, ctx)
        reference = _node_reference(study, ctx, runner, node)
    except Exception as exc:  # noqa: BLE001 - fails this trial only, with its reason
        from hybridsearch.search.worker import _reason

        outcome = TrialOutcome(FAIL, reason=f"Ray worker set-up failed: {_reason(exc)}")
        send({"hs_outcome": json.dumps(outcome.to_dict()), "hs_node": node})
        return
    protocol = TrialProtocol(settings, runner, reference, lambda: finished_for_promotion(study, settings))

    def on_report(step: int, value: float) -> bool:
        if math.isfinite(value):
            send({"dev_score": float(value), "step": int(step), "hs_node": node})
        return False

    outcome = protocol.run(sample, on_report=on_report)
    final = {k: float(v) for k, v in (outcome.metrics or {}).items()
             if k in ("dev_score", "latency_ms", "size_mb") and isinstance(v, (int, float)) and math.isfinite(v)}
    send({**final, "hs_outcome": json.dumps(outcome.to_dict()), "hs_node": node})


# -- Ray session ---------------------------------------------------------------------------------------------
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


def reference_by_task(study, objective, ctx: dict, rs: RaySettings) -> dict | None:
    """Measure the teacher reference in a Ray task with the trials' resources (once per study)."""
    import ray

    from hybridsearch.search.trial import REFERENCE_PREFIX, TEACHER_KEY

    if not ctx["has_reference"] or TEACHER_KEY in study.user_attrs:
        return study.user_attrs.get(TEACHER_KEY)
    custom = {rs.node_type: 0.001} if rs.node_type else None
    task = ray.remote(measure_reference_task).options(num_cpus=rs.cpus_per_trial, num_gpus=rs.gpus_per_trial,
                                                      resources=custom, max_retries=0)
    node, ref, reason = ray.get(task.remote(objective, ctx))
    if ref is None:
        raise UserError(f"measuring the teacher in a Ray worker failed ({reason}); check the teacher and "
                        "--device, then re-run the same command")
    study.set_user_attr(REFERENCE_PREFIX + node, ref)
    study.set_user_attr(TEACHER_KEY, ref)
    return ref


# -- the search ----------------------------------------------------------------------------------------------
def _experiments(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("exp-*") if p.is_dir())


def _experiment_done(exp: Path, results, enough: bool) -> bool:
    """All of the experiment's trials ended, and it sampled all it meant to (or the study has enough)."""
    want = json.loads((exp / STATE_FILE).read_text()).get("num_samples", 0) if (exp / STATE_FILE).is_file() else 0
    trials = results._experiment_analysis.trials if results is not None else []
    return all(t.status in ("TERMINATED", "ERROR") for t in trials) and (enough or len(trials) >= want)


def _new_tuner(fn, exp: Path, searcher, rs: RaySettings, num_samples: int, time_budget_s: float | None):
    """A Tuner for a new experiment directory `exp`: our searcher, FIFO or ASHA, `rs` limits."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search import ConcurrencyLimiter

    exp.mkdir()
    (exp / STATE_FILE).write_text(json.dumps({"num_samples": num_samples, "ray": asdict(rs)}))
    scheduler = (ASHAScheduler(time_attr="training_iteration", metric="dev_score", mode="max",
                               grace_period=rs.grace_period, reduction_factor=rs.reduction_factor, max_t=100_000)
                 if rs.scheduler == "asha" else FIFOScheduler())
    return tune.Tuner(
        fn,
        tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=rs.concurrency),
                                    scheduler=scheduler, num_samples=num_samples, reuse_actors=True,
                                    time_budget_s=time_budget_s),
        run_config=tune.RunConfig(name=exp.name, storage_path=str(exp.parent), verbose=rs.verbose,
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )


def run_ray_search(job: SearchJob, rs: RaySettings, lock_path: str | None = None):
    """Run, restore or extend the Ray search of `job.run_dir` until `settings.trials` trials are finished."""
    import uuid
    import warnings

    from hybridsearch.search.objective import as_objective
    from hybridsearch.search.study import check_budgets_reachable, finished_count, prepare_study
    from hybridsearch.search.worker import INTERRUPTED, TrialRunner

    settings = job.settings
    if job.storage_url is None:
        raise UserError("--backend ray needs a study storage (SQLite file or PostgreSQL URL); pass --storage or --out")
    warnings.filterwarnings("ignore", message="Heartbeat of storage")  # Ray trials are asked, not optimized
    study = prepare_study(job.space, job.storage_url, settings, job.study_name, job.metadata)
    root = (Path(job.run_dir) / RAY_DIR).resolve()
    root.mkdir(parents=True, exist_ok=True)
    objective = as_objective(job.objective)
    exps = _experiments(root)
    last = exps[-1] if exps else None
    if settings.trials - finished_count(study) <= 0 and (last is None or (last / ".done").exists()):
        return study
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "3")  # fresher state to restore from
    from ray import tune

    ctx = {"storage_url": job.storage_url, "study_name": job.study_name, "key": uuid.uuid4().hex,
           "settings": settings, "lock_path": lock_path, "cwd": os.getcwd(),
           "has_reference": hasattr(objective, "reference")}
    run_tag = str(Path(job.run_dir).resolve())
    deadline = time.time() + settings.timeout if settings.timeout else None
    _ON_TRIAL[run_tag] = job.on_trial
    try:
        with ray_session(rs):
            check_resources(rs)
            reference = reference_by_task(study, objective, ctx, rs)
            if settings.has_budget:
                with TrialRunner(objective, settings.isolation, settings.trial_timeout) as runner:
                    check_budgets_reachable(job.space, runner, settings, reference)
            fn = tune.with_resources(tune.with_parameters(trainable, objective=objective, ctx=ctx), rs.resources)
            searcher_cls = _searcher_class()
            for _ in range(2):  # restore the last unfinished experiment, then start one for what is left
                if last is not None and not (last / ".done").exists() and tune.Tuner.can_restore(str(last)):
                    tuner = tune.Tuner.restore(str(last), trainable=fn, resume_unfinished=True, resume_errored=False,
                                               restart_errored=False)
                else:
                    remaining = settings.trials - finished_count(study)
                    if remaining <= 0:
                        break
                    last = root / f"exp-{len(_experiments(root)) + 1:03d}"
                    searcher = searcher_cls(job.space, settings, job.storage_url, job.study_name, run_tag, deadline,
                                            asha=rs.scheduler == "asha")
                    budget = max(1.0, deadline - time.time()) if deadline else None
                    tuner = _new_tuner(fn, last, searcher, rs, remaining, budget)
                results = tuner.fit()
                if deadline is not None and time.time() >= deadline:  # --timeout
                    interrupt_unfinished(study, run_tag, INTERRUPTED)
                    (last / ".done").write_text("")  # its unfinished trials are re-enqueued: a re-run starts anew
                    break
                if not _experiment_done(last, results, finished_count(study) >= settings.trials):  # Ctrl-C
                    interrupt_unfinished(study, run_tag, "stopped with the Ray experiment (Ctrl-C); re-run the "
                                                         "same command to resume")
                    (last / ".done").write_text("")
                    raise KeyboardInterrupt("Ray search interrupted")
                (last / ".done").write_text("")
    finally:
        _ON_TRIAL.pop(run_tag, None)
    return study


@register_backend
class RayBackend(Backend):
    name = "ray"
    help = ("Ray Tune trials, local or --address cluster; --scheduler asha lets ASHA stop trials on the "
            "intermediate dev score (default fifo: every trial runs its budget)")
    options = {"concurrency": 1, "cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "address": None, "node_type": None,
               "scheduler": "fifo"}

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--concurrency", type=int, default=1, help="trials at once (--backend ray; default: 1)")
        parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per Ray trial (default: 1)")
        parser.add_argument("--gpus-per-trial", type=float, default=0.0,
                            help="GPU share per Ray trial, fractions allowed, e.g. 0.5 (default: 0)")
        parser.add_argument("--address", default=None, metavar="HOST:PORT",
                            help="join this Ray cluster (default: start a local Ray for the search and stop it after)")
        parser.add_argument("--node-type", default=None, metavar="RESOURCE",
                            help="run Ray trials (and so measure latency) only on nodes started with this custom "
                            "resource, e.g. ray start --resources='{\"rpi4\": 1}' (default: any node)")
        parser.add_argument("--scheduler", default="fifo", choices=SCHEDULERS,
                            help="Ray trial scheduler: fifo (default: every trial runs its budget) or asha "
                                 "(stops trials on the intermediate dev score)")

    def settings(self, **extra) -> RaySettings:
        return RaySettings(**{k: self.opts[k] for k in self.options}, **extra)

    def check(self) -> None:
        self.settings().check()

    def run(self, job: SearchJob, verbose: int = 1, lock_path: str | None = None):
        return run_ray_search(job, self.settings(verbose=verbose), lock_path=lock_path)
