"""`--backend nni`: an NNI HPO tuner (TPE by default, or random) picks each sample; trials run like Optuna's.

Contracts:
- the space goes to NNI in its own format (`to_nni_space`): conditional keys become nested
  `choice`s with `_name` (depth -> its layers; a layer's `block` -> the keys whose `when` names
  it; `arch.sharing` -> one shared layer or one per depth); `from_nni` flattens a parameter
  back to the sample dict every backend uses.
- the tuner runs in this process (`update_search_space` / `generate_parameters` /
  `receive_trial_result`; no NNI experiment manager, no web server); its sample is enqueued in
  the study and asked, and the trial runs through the shared loop (`search.backends.local`:
  the same protocol, record, promotion and teacher reference as `--backend optuna`). The
  study's queue (the space's seeds, re-runs of unfinished trials) goes first; the tuner is told
  those results as history.
- scalarized: the reward is the dev score; a candidate the precheck rejects (over a budget,
  before training) gets -1, one over a budget after training its dev score - 1. The study keeps
  the full values (its directions follow `--objective`). Trials carry `backend.nni.params`
  (the nested parameter) and `backend.nni.reward`.
- state, pickle-free: RUN_DIR/nni/tuner.json holds the history (nested parameter, reward) and the
  tuner's RNG state; a re-run replays it into a fresh tuner (plus any NNI trial of the study the
  file missed) and goes on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hybridsearch.errors import UserError
from hybridsearch.search.backends import Backend, SearchJob, register_backend
from hybridsearch.search.backends.local import Proposer

ALGORITHMS = ("tpe", "random")
STATE_FILE = "nni/tuner.json"
REJECTED_REWARD = -1.0
OVER_BUDGET_PENALTY = 1.0
PARAMS_KEY, REWARD_KEY = "nni.params", "nni.reward"  # under backend.


# -- space <-> NNI format -----------------------------------------------------------------------------
def _param(label: str, ch) -> dict:
    if ch.kind == "categorical":
        return {"_type": "choice", "_value": list(ch.values)}
    if ch.kind == "int":
        step = int(ch.step or 1)
        values = list(range(int(ch.low), int(ch.high) + 1, step))
        if len(values) <= 256 and not ch.log:
            return {"_type": "choice", "_value": values}
        if ch.log:
            return {"_type": "qloguniform", "_value": [ch.low, ch.high, step]}
        return {"_type": "quniform", "_value": [ch.low, ch.high, step]}
    if ch.step:
        return {"_type": "qloguniform" if ch.log else "quniform", "_value": [ch.low, ch.high, ch.step]}
    return {"_type": "loguniform" if ch.log else "uniform", "_value": [ch.low, ch.high]}


def _driver_branches(label: str, ch) -> list:
    if ch.kind == "categorical":
        return list(ch.values)
    if ch.kind == "int" and not ch.log:
        return list(range(int(ch.low), int(ch.high) + 1, int(ch.step or 1)))
    raise UserError(f"--backend nni: '{label}' decides which other keys exist, so it must be a list of "
                    f"choices, not a range; list its values in the space")


def _layer_tree(space, i: int, keys: list[str], bound: dict, drivers: set[str]) -> dict:
    out: dict = {}
    for idx, key in enumerate(keys):
        ch = space.layer[key]
        if not ch.active(bound):
            continue
        label = f"layer_{i}.{key}"
        if ch.kind == "fixed":
            bound = {**bound, key: ch.values[0]}
            continue
        if key in drivers:
            branches = [{"_name": v, **_layer_tree(space, i, keys[idx + 1:], {**bound, key: v}, drivers)}
                        for v in _driver_branches(label, ch)]
            out[label] = {"_type": "choice", "_value": branches}
            return out
        out[label] = _param(label, ch)
    return out


def _layers(space, n: int) -> dict:
    drivers = {k for ch in space.layer.values() for k, _ in ch.when}
    out: dict = {}
    for i in range(n):
        out.update(_layer_tree(space, i, list(space.layer), {}, drivers))
    return out


def _depth_part(space, sharing) -> dict:
    if space.depth.kind == "fixed":
        d = int(space.depth.values[0])
        return _layers(space, 1 if sharing == "all" else d)
    if sharing == "all":
        return {"depth": _param("depth", space.depth), **_layers(space, 1)}
    return {"depth": {"_type": "choice", "_value": [{"_name": d, **_layers(space, int(d))}
                                                    for d in _driver_branches("depth", space.depth)]}}


def to_nni_space(space) -> dict:
    """SearchSpace -> NNI search-space dict (nested `choice` with `_name` for conditional keys)."""
    out: dict = {}
    for group in ("arch", "emb"):
        for key, ch in getattr(space, group).items():
            if ch.kind != "fixed" and (group, key) != ("arch", "sharing"):
                out[f"{group}.{key}"] = _param(f"{group}.{key}", ch)
    sharing = space.arch.get("sharing")
    if sharing is not None and sharing.kind != "fixed":
        out["arch.sharing"] = {"_type": "choice", "_value": [{"_name": s, **_depth_part(space, s)}
                                                             for s in sharing.values]}
    else:
        out.update(_depth_part(space, sharing.values[0] if sharing is not None else "none"))
    for key, ch in space.recipe.items():
        if ch.kind != "fixed":
            out[f"recipe.{key}"] = _param(f"recipe.{key}", ch)
    return out


def choice_of(space, label: str):
    if label == "depth":
        return space.depth
    group, key = label.split(".", 1)
    return getattr(space, "layer" if group.startswith("layer_") else group)[key]


def _coerce(ch, value):
    if ch.kind == "int":
        step = int(ch.step or 1)
        value = int(round((float(value) - ch.low) / step)) * step + int(ch.low)
        return int(min(max(value, ch.low), ch.high))
    if ch.kind == "float":
        return float(min(max(float(value), ch.low), ch.high))
    return value


def from_nni(space, params: dict) -> dict:
    """An NNI parameter (nested dicts with `_name`) -> the flat sample dict."""
    out: dict = {}

    def walk(d: dict) -> None:
        for key, value in d.items():
            if key == "_name":
                continue
            if isinstance(value, dict) and "_name" in value:
                out[key] = value["_name"]
                walk(value)
            else:
                out[key] = value

    walk(params)
    return {k: _coerce(choice_of(space, k), v) for k, v in out.items()}


def to_nni(nni_space: dict, sample: dict) -> dict:
    """The flat sample -> the nested NNI parameter (the inverse of `from_nni`)."""
    out: dict = {}
    for key, spec in nni_space.items():
        if key not in sample:
            continue
        values = spec["_value"]
        if spec["_type"] == "choice" and values and isinstance(values[0], dict):
            branch = next((b for b in values if b["_name"] == sample[key]), None)
            if branch is None:
                raise UserError(f"sample value {key}={sample[key]!r} is not in the space")
            inner = {k: v for k, v in branch.items() if k != "_name"}
            out[key] = {"_name": sample[key], **to_nni(inner, sample)}
        else:
            out[key] = sample[key]
    return out


# -- the tuner ----------------------------------------------------------------------------------------------
def make_tuner(algorithm: str, seed: int, nni_space: dict, startup: int = 20):
    """A fresh NNI tuner on `nni_space` (nested choices of any depth work)."""
    import logging

    from nni.common.hpo_utils import Deduplicator
    from nni.common.hpo_utils.formatting import ParameterSpec

    logging.getLogger("nni").setLevel(logging.WARNING)
    if algorithm == "tpe":
        from nni.algorithms.hpo.tpe_tuner import TpeTuner

        tuner = TpeTuner(optimize_mode="maximize", seed=seed, tpe_args={"n_startup_jobs": startup})
    elif algorithm == "random":
        from nni.algorithms.hpo.random_tuner import RandomTuner

        tuner = RandomTuner(seed=seed)
    else:
        raise UserError(f"unknown --nni-algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")

    class _Spec(ParameterSpec):  # NNI 3.0 looks up a parent that is itself inactive (KeyError); skip it
        def is_activated_in(self, partial):
            return not self.is_nested() or partial.get(self.key[:-2], object()) == self.key[-2]

    tuner.update_search_space(nni_space)
    tuner.space = {k: _Spec(*v) for k, v in tuner.space.items()}
    tuner.dedup = Deduplicator(tuner.space)
    return tuner


def replay(tuner, record: dict) -> None:
    """Feed one finished history record {"parameter", "reward"} into a fresh tuner."""
    from nni.common.hpo_utils import format_parameters

    if record.get("reward") is not None and hasattr(tuner, "import_data"):
        tuner.import_data([{"parameter": record["parameter"], "value": record["reward"]}])
    else:
        tuner.dedup.add_history(format_parameters(record["parameter"], tuner.space))


def _save_state(path: Path, algorithm: str, seed: int, tuner, history: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"algorithm": algorithm, "seed": seed, "rng": tuner.rng.bit_generator.state,
                               "history": history}))
    os.replace(tmp, path)


def _load_state(path: Path, study) -> tuple[dict, list]:
    """The saved state and the history, completed from the study's NNI trials the file missed."""
    from hybridsearch.search.trial import BACKEND_KEY, BACKEND_PREFIX

    state = {}
    if path.is_file():
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is damaged ({exc}); delete it to rebuild the tuner from the study") from None
        if not isinstance(state, dict):
            raise UserError(f"{path} is not a tuner state (a JSON object); delete it to rebuild it from the study")
    history = list(state.get("history", []))
    seen = {r["trial"] for r in history}
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        params = a.get(BACKEND_PREFIX + PARAMS_KEY, a.get("nni_params"))  # older runs: flat nni_params
        if a.get(BACKEND_KEY) == "nni" and t.number not in seen and params is not None and t.state.is_finished():
            history.append({"trial": t.number, "parameter": params,
                            "reward": a.get(BACKEND_PREFIX + REWARD_KEY, a.get("nni_reward"))})
    return state, history


def reward_of(outcome) -> float | None:
    """The scalar NNI is told: dev score (- 1 over a budget), -1 when rejected before training, None on failure."""
    if outcome.rejected:
        return REJECTED_REWARD
    if outcome.state != "COMPLETE":
        return None
    over = max(outcome.constraints or [0.0]) > 0
    return float(outcome.metrics["dev_score"]) - (OVER_BUDGET_PENALTY if over else 0.0)


class TunerProposer(Proposer):
    """The study's queue first (seeds, re-runs), then the NNI tuner's samples."""

    backend = "nni"

    def __init__(self, space, settings, run_dir, algorithm: str):
        self.space, self.settings, self.algorithm = space, settings, algorithm
        self.nni_space = to_nni_space(space)
        self.state_path = Path(run_dir) / STATE_FILE
        self.tuner = self.history = None
        self.seed = settings.seed
        self._pending: dict[int, tuple] = {}  # trial number -> (parameter id or None, nested parameter)

    def load(self, study) -> None:
        state, self.history = _load_state(self.state_path, study)
        if state and state.get("algorithm") != self.algorithm:
            raise UserError(f"{self.state_path} was written by --nni-algorithm {state['algorithm']}; "
                            f"pass that or another --out")
        self.seed = int(state.get("seed", self.settings.seed))
        self.tuner = make_tuner(self.algorithm, self.seed, self.nni_space,
                                startup=min(20, max(5, self.settings.trials // 5)))
        for rec in self.history:
            replay(self.tuner, rec)
        if state.get("rng"):
            self.tuner.rng.bit_generator.state = state["rng"]

    def propose(self, study):
        from optuna.trial import TrialState

        if self.tuner is None:
            self.load(study)
        pid = None
        if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            pid = len(self.history)
            nested = self.tuner.generate_parameters(pid)
            study.enqueue_trial(from_nni(self.space, nested))
        trial = study.ask()
        sample = self.space.sample(trial)
        self._pending[trial.number] = (pid, nested if pid is not None else to_nni(self.nni_space, sample))
        return trial, sample

    def backend_attrs(self, trial, sample, outcome) -> dict:
        return {PARAMS_KEY: self._pending[trial.number][1], REWARD_KEY: reward_of(outcome)}

    def told(self, study, trial, sample, outcome) -> None:
        pid, nested = self._pending.pop(trial.number)
        reward = reward_of(outcome)
        rec = {"trial": trial.number, "parameter": nested, "reward": reward}
        if pid is None:
            replay(self.tuner, rec)
        elif reward is not None:
            self.tuner.receive_trial_result(pid, nested, reward)
        else:
            self.tuner.trial_end(pid, False)
        self.history.append(rec)
        _save_state(self.state_path, self.algorithm, self.seed, self.tuner, self.history)


@register_backend
class NNIBackend(Backend):
    name = "nni"
    help = "an NNI tuner (--nni-algorithm tpe / random), scalarized on the dev score"
    options = {"nni_algorithm": "tpe"}

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--nni-algorithm", default="tpe", choices=ALGORITHMS,
                            help="NNI tuner for --backend nni (default: tpe)")

    def check(self) -> None:
        if self.opts["nni_algorithm"] not in ALGORITHMS:
            raise UserError(f"unknown --nni-algorithm {self.opts['nni_algorithm']!r}; use one of {', '.join(ALGORITHMS)}")

    def run(self, job: SearchJob):
        from hybridsearch.search.backends.local import run_local

        if job.storage_url is None:
            raise UserError("--backend nni needs a study storage (SQLite file or PostgreSQL URL); pass --storage or --out")
        return run_local(job, TunerProposer(job.space, job.settings, job.run_dir, self.opts["nni_algorithm"]))
