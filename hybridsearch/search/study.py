"""The Optuna study every backend reads and writes: settings, storage, sampler, seeds, stale trials.

Contracts:
- `open_study` creates or loads the run's study and refuses one made with another objective or
  identity (task, teacher, space). Objective names are set (`set_metric_names`: "dev score",
  "latency ms", "size MB"), so optuna-dashboard shows them instead of "Objective 0/1/2".
- The sampler's seed follows (seed, trials asked so far): a resumed search draws fresh samples
  instead of replaying the first run's draws (a new study, queued seeds aside, starts at `seed`).
- `finished_count` counts COMPLETE, PRUNED and FAIL-with-a-reason trials (an interrupted or
  stale trial does not count: it runs again).
- Unfinished trials: `fail_stale` fails trials whose heartbeat stopped (a killed process) and
  enqueues their point once (`requeue`: `retry_of` = the failed trial's number, reason in
  the study's `stale.<n>`); an interrupted trial is re-enqueued every time.
- `heartbeat(storage, trial)` keeps a trial's heartbeat while it runs in this process (the
  ask/tell loops of `search.backends`), like `study.optimize` does.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from hybridsearch.errors import UserError
from hybridsearch.search.objective import DIRECTIONS, METRIC_NAMES, MODES, over_budget
from hybridsearch.search.rundir import STUDY_NAME
from hybridsearch.search.trial import (
    RETRY_OF_KEY,
    SEED_NAME_KEY,
    SEEDED_KEY,
    STALE_PREFIX,
    TEACHER_KEY,
    drift_free,
    read_outcome,
)

SAMPLERS = ("nsga2", "tpe", "random")
IDENTITY = ("task", "teacher_fingerprint", "space_hash")


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

    @property
    def budgets(self) -> tuple:
        return self.max_latency_ms, self.max_size_mb


# -- storage -----------------------------------------------------------------------------------------
def _on_stale(study, trial) -> None:
    """failed_trial_callback: record why, and run the trial's point again once."""
    requeue(study, trial.number, "process running the trial stopped (heartbeat lost); re-enqueued")


def requeue(study, number: int, why: str, always: bool = False) -> bool:
    """Enqueue trial `number`'s point again (`retry_of`), once unless `always`; the reason goes on the study."""
    trial = study.trials[number] if number < len(study.trials) else None
    study.set_user_attr(f"{STALE_PREFIX}{number}", why)
    if trial is None or not trial.params or (trial.user_attrs.get(RETRY_OF_KEY) is not None and not always):
        return False
    origin = trial.user_attrs.get(RETRY_OF_KEY, number)
    attrs = {RETRY_OF_KEY: origin, SEEDED_KEY: bool(trial.user_attrs.get(SEEDED_KEY))}
    if trial.user_attrs.get(SEED_NAME_KEY):
        attrs[SEED_NAME_KEY] = trial.user_attrs[SEED_NAME_KEY]
    study.enqueue_trial(trial.params, user_attrs=attrs)
    return True


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


def sampler_seed(seed: int, trials_so_far: int) -> int:
    """The sampler's seed: `seed` for a new study, then one derived from (seed, trials so far)."""
    if trials_so_far == 0:
        return seed
    return int(hashlib.sha256(f"{seed}:{trials_so_far}".encode()).hexdigest()[:8], 16)


def make_sampler(settings: SearchSettings, trials_so_far: int = 0):
    """With budgets, NSGA-II / TPE get `constraints_func` reading the trial's outcome constraints
    (<= 0 feasible). Independent TPE: conditional spaces. "nsga2" is
    `search.sampler.GroupedNSGAIISampler` (seeds are parents; crossover by label group)."""
    import optuna

    cf = constraints_of if settings.has_budget else None
    seed = sampler_seed(settings.seed, trials_so_far)
    warnings.filterwarnings("ignore", message=".*constraints_func.*", category=FutureWarning)
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "tpe":
        startup = min(10, max(3, settings.trials // 4))
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=False,
                                          constraints_func=cf)
    from hybridsearch.search.sampler import GroupedNSGAIISampler

    pop = min(50, max(3, settings.trials // 4))  # 12 trials: 4 generations of 3 (seeds in the first)
    return GroupedNSGAIISampler(seed=seed, population_size=pop, constraints_func=cf)


def constraints_of(trial) -> list[float]:
    """constraints_func: the outcome's constraints (<= 0 feasible); [0, 0] when it has none."""
    outcome = read_outcome(trial)
    return list((outcome.constraints if outcome else None) or [0.0, 0.0])


def make_pruner(settings: SearchSettings):
    import optuna

    if settings.objective != "score":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def open_storage(storage_url: str | None, settings: SearchSettings):
    import optuna

    if storage_url is None:  # in memory: no heartbeat, no resume (tests, quick experiments)
        return optuna.storages.InMemoryStorage()
    return make_storage(storage_url, settings.heartbeat_interval, settings.grace_period)


def open_study(storage_url: str | None, settings: SearchSettings, study_name: str = STUDY_NAME,
               metadata: dict | None = None, storage=None):
    """Create or load the study; refuse a study made with another objective or identity."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message="Heartbeat of storage")  # ours is kept by `heartbeat` (ask/tell)
    storage = storage or open_storage(storage_url, settings)
    directions = DIRECTIONS[settings.objective]
    names = [s.study_name for s in optuna.study.get_all_study_summaries(storage, include_best_trial=False)]
    if study_name in names:
        study = optuna.load_study(study_name=study_name, storage=storage, pruner=make_pruner(settings))
        have = [d.name.lower() for d in study.directions]
        if have != directions:
            was = "multi" if len(have) > 1 else "score"
            raise UserError(f"this run's study was made with --objective {was}; pass --objective {was} "
                            f"or another --out")
        for key, value in (metadata or {}).items():
            old = study.user_attrs.get(key)
            if key in IDENTITY and old is not None and old != value:
                raise UserError(f"the study in {storage_url} was made for {key.replace('_', ' ')} {old!r}, "
                                f"not {value!r}; resume with the same settings or pass another --out")
        asked = [t for t in study.get_trials(deepcopy=False) if t.state.name != "WAITING"]
        study.sampler = make_sampler(settings, len(asked))
        return study
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, directions=directions,
                                    sampler=make_sampler(settings), pruner=make_pruner(settings))
    except optuna.exceptions.DuplicatedStudyError:  # another worker created it a moment ago: load and check it
        return open_study(storage_url, settings, study_name, metadata, storage)
    study.set_metric_names(METRIC_NAMES[settings.objective])
    for key, value in (metadata or {}).items():
        study.set_user_attr(key, value)
    study.set_user_attr("settings", asdict(settings))
    return study


def prepare_study(space, storage_url: str | None, settings: SearchSettings, study_name: str = STUDY_NAME,
                  metadata: dict | None = None):
    """`open_study`, then the space's seeds (once) and stale trials failed; the study."""
    import optuna

    settings.check()
    study = open_study(storage_url, settings, study_name, metadata)
    if settings.enqueue_seeds:
        enqueue_seeds(study, space)
    if storage_url is not None:
        optuna.storages.fail_stale_trials(study)
    return study


def finished_count(study) -> int:
    """Finished trials that count towards --trials (stale-failed and interrupted trials do not)."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        if not t.state.is_finished():
            continue
        outcome = read_outcome(t)
        if t.state.name in ("COMPLETE", "PRUNED") or (outcome and outcome.reason and outcome.counts):
            n += 1
    return n


def enqueue_seeds(study, space) -> int:
    """Enqueue the space's known-good points once per study (user attrs seeded=True, seed_name)."""
    if study.user_attrs.get("seeds_enqueued"):
        return 0
    for seed in space.seeds:
        study.enqueue_trial(seed["sample"], user_attrs={SEEDED_KEY: True, SEED_NAME_KEY: seed["name"]},
                            skip_if_exists=True)
    study.set_user_attr("seeds_enqueued", [s["name"] for s in space.seeds])
    return len(space.seeds)


def ensure_reference(study, measure, key: str = TEACHER_KEY) -> dict | None:
    """The teacher reference stored on the study under `key`, measured by `measure()` -> CallResult the first
    time; None when the objective has no teacher. `UserError` when measuring fails."""
    if key in study.user_attrs:
        return study.user_attrs[key]
    res = measure()
    if res.status != "done":
        raise UserError(f"measuring the teacher in the trial worker failed ({res.reason}); "
                        "check the teacher and --device, then re-run the same command")
    if res.value is None:
        return None
    study.set_user_attr(key, res.value)
    if key != TEACHER_KEY and TEACHER_KEY not in study.user_attrs:
        study.set_user_attr(TEACHER_KEY, res.value)
    return res.value


def check_budgets_reachable(space, runner, settings: SearchSettings, reference: dict | None = None) -> dict | None:
    """Precheck the space's cheapest candidate; `UserError` before any training if it breaks a budget."""
    if not settings.has_budget:
        return None
    res = runner.run("precheck", space.cheapest_sample())
    if res.status != "done":
        raise UserError(f"cannot measure the cheapest candidate of {space.path} ({res.reason}); fix the space")
    cost = drift_free(res.value or {}, reference)
    reason = over_budget(cost, *settings.budgets)
    if reason:
        raise UserError(f"no candidate of {space.path} can meet the budget: its cheapest one is {reason}; "
                        f"raise the budget or use a smaller space")
    return cost


def trial_by_number(study, number: int):
    """The live `optuna.Trial` of trial `number` (to tell it from another process than the one that asked).
    Optuna has no public lookup of a trial's storage id: this is the one place that reads it."""
    import optuna

    frozen = study.get_trials(deepcopy=False)[number]
    return optuna.trial.Trial(study, frozen._trial_id)


@contextmanager
def heartbeat(study, trial):
    """Record `trial`'s heartbeat every interval while the block runs (storages with heartbeat only)."""
    storage = study._storage  # Optuna keeps the storage private; record_heartbeat is its public heartbeat API
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    if not interval:
        yield
        return
    stop = threading.Event()
    trial_id = trial._trial_id

    def beat():
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except Exception:  # noqa: BLE001 - a missed beat is retried; a dead DB fails the tell
                pass
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
