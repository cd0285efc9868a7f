"""`--backend nni`: an NNI HPO tuner (TPE by default, or random) drives the same space and objective.

Contracts:
- the space goes to NNI in its own format (`to_nni_space`): conditional keys become nested
  `choice`s with `_name` (depth -> its layers; a layer's `block` -> the keys whose `when` names
  it; `arch.sharing` -> one shared layer or one per depth); `from_nni` flattens a parameter
  back to the sample dict every backend uses.
- the tuner runs in this process (`update_search_space` / `generate_parameters` /
  `receive_trial_result`; no NNI experiment manager, no web server); trials run one at a time in
  the search's `TrialRunner` (a crashed trial process fails only its trial); `on_trial(study,
  frozen_trial)` after each.
- scalarized as in single-objective mode: the reward is the dev score; a candidate the precheck
  rejects (over a budget, before training) gets -1, one over a budget after training its dev
  score - 1. The study keeps the full values (its directions follow `--objective`).
- results land in the same Optuna study (`study.add_trial`): params, values, and user attrs
  `backend="nni"`, `nni_params`, `nni_reward`, `metrics`, `constraints`, `precheck`, `reason`,
  `rejected`, `seeded` / `seed_name`. The space's seeds run first, once.
- state, pickle-free: RUN_DIR/nni/tuner.json holds the history (nested parameter, reward) and the
  tuner's RNG state; a re-run replays it into a fresh tuner (plus any NNI trial of the study the
  file missed) and goes on. A trial interrupted mid-way never reached the study and is run anew;
  no finished trial is lost or repeated.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from hybridsearch.errors import UserError
from hybridsearch.search.objective import constraint_values, objective_values, over_budget
from hybridsearch.search.rundir import STUDY_NAME

ALGORITHMS = ("tpe", "random")
STATE_FILE = "nni/tuner.json"
REJECTED_REWARD = -1.0
OVER_BUDGET_PENALTY = 1.0


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


def distributions(space, sample: dict) -> dict:
    """Optuna distributions of the sample's labels, as `space.sample` would ask them."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for label in sample:
        ch = choice_of(space, label)
        if ch.kind == "categorical":
            out[label] = CategoricalDistribution(list(ch.values))
        elif ch.kind == "int":
            out[label] = IntDistribution(int(ch.low), int(ch.high), step=int(ch.step or 1), log=ch.log)
        else:
            out[label] = FloatDistribution(ch.low, ch.high, step=ch.step, log=ch.log)
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
    state = {}
    if path.is_file():
        try:
            state = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} is damaged ({exc}); delete it to rebuild the tuner from the study") from None
    history = list(state.get("history", []))
    seen = {r["trial"] for r in history}
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("backend") == "nni" and t.number not in seen and "nni_params" in t.user_attrs:
            history.append({"trial": t.number, "parameter": t.user_attrs["nni_params"],
                            "reward": t.user_attrs.get("nni_reward")})
    return state, history


# -- one trial ------------------------------------------------------------------------------------------------
def evaluate_sample(runner, sample: dict, settings):
    """Run one sample -> (TrialState, values or None, user attrs, reward or None, intermediate values)."""
    from optuna.trial import TrialState

    budgets = (settings.max_latency_ms, settings.max_size_mb)
    attrs: dict = {}
    if settings.has_budget:
        res = runner.run("precheck", sample)
        if res.status != "done":
            return TrialState.FAIL, None, {"reason": f"precheck failed: {res.reason}"}, None, {}
        cost = res.value or {}
        attrs["precheck"] = cost
        reason = over_budget(cost, *budgets)
        if reason:
            attrs.update(reason=reason, rejected=True, constraints=constraint_values(cost, *budgets))
            return TrialState.PRUNED, None, attrs, REJECTED_REWARD, {}
    steps: dict = {}

    def on_report(step: int, value: float) -> bool:
        if math.isfinite(value):
            steps[int(step)] = float(value)
        return False

    res = runner.run("evaluate", sample, on_report)
    if res.status != "done":
        return TrialState.FAIL, None, {**attrs, "reason": res.reason or res.status}, None, steps
    metrics = res.value or {}
    attrs.update(metrics=metrics, constraints=constraint_values(metrics, *budgets))
    if metrics.get("failure"):
        return TrialState.FAIL, None, {**attrs, "reason": str(metrics["failure"])}, None, steps
    try:
        values = objective_values(metrics, settings.objective)
    except ValueError as exc:
        return TrialState.FAIL, None, {**attrs, "reason": f"no usable result: {exc}"}, None, steps
    reward = float(metrics["dev_score"]) - (OVER_BUDGET_PENALTY if max(attrs["constraints"]) > 0 else 0.0)
    return TrialState.COMPLETE, values, attrs, reward, steps


# -- the search -----------------------------------------------------------------------------------------------
def run_nni_search(space, objective, storage_url: str | None, settings, run_dir, *, algorithm: str = "tpe",
                   study_name: str = STUDY_NAME, metadata: dict | None = None, on_trial=None):
    """Run (or resume) the NNI-driven search of `run_dir` until `settings.trials` trials are finished; the study."""
    import warnings

    import optuna

    from hybridsearch.search.objective import as_objective
    from hybridsearch.search.optuna_backend import check_budgets_reachable, finished_count, open_study
    from hybridsearch.search.worker import TrialRunner

    settings.check()
    if algorithm not in ALGORITHMS:
        raise UserError(f"unknown --nni-algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if storage_url is None:
        raise UserError("--backend nni needs a study storage (SQLite file or PostgreSQL URL); pass --storage or --out")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = open_study(storage_url, settings, study_name, metadata)
    nni_space = to_nni_space(space)
    state_path = Path(run_dir) / STATE_FILE
    state, history = _load_state(state_path, study)
    if state and state.get("algorithm") != algorithm:
        raise UserError(f"{state_path} was written by --nni-algorithm {state['algorithm']}; pass that or another --out")
    seed = int(state.get("seed", settings.seed))
    tuner = make_tuner(algorithm, seed, nni_space, startup=min(20, max(5, settings.trials // 5)))
    for record in history:
        replay(tuner, record)
    if state.get("rng"):
        tuner.rng.bit_generator.state = state["rng"]
    done_seeds = {t.user_attrs.get("seed_name") for t in study.get_trials(deepcopy=False)
                  if t.user_attrs.get("backend") == "nni"}
    pending_seeds = [s for s in space.seeds if s["name"] not in done_seeds] if settings.enqueue_seeds else []
    if settings.trials - finished_count(study) <= 0:
        return study
    start = time.monotonic()
    with TrialRunner(as_objective(objective), settings.isolation, settings.trial_timeout) as runner:
        check_budgets_reachable(space, runner, settings)
        while finished_count(study) < settings.trials:
            if settings.timeout and time.monotonic() - start > settings.timeout:
                break
            pid = len(history)
            seed_point = pending_seeds.pop(0) if pending_seeds else None
            if seed_point:
                sample = dict(seed_point["sample"])
                nested = to_nni(nni_space, sample)
            else:
                nested = tuner.generate_parameters(pid)
                sample = from_nni(space, nested)
            state_, values, attrs, reward, steps = evaluate_sample(runner, sample, settings)
            attrs.update(backend="nni", nni_params=nested, nni_reward=reward, seeded=seed_point is not None)
            if seed_point:
                attrs["seed_name"] = seed_point["name"]
            trial = optuna.trial.create_trial(
                state=state_, values=values, params=sample, distributions=distributions(space, sample),
                user_attrs=attrs, intermediate_values=steps or None)
            trial._validate()
            trial_id = study._storage.create_new_trial(study._study_id, template_trial=trial)  # = add_trial
            number = study._storage.get_trial_number_from_id(trial_id)
            record = {"trial": number, "parameter": nested, "reward": reward}
            if seed_point:
                replay(tuner, record)
            elif reward is not None:
                tuner.receive_trial_result(pid, nested, reward)
            else:
                tuner.trial_end(pid, False)
            history.append(record)
            _save_state(state_path, algorithm, seed, tuner, history)
            if on_trial:
                on_trial(study, study._storage.get_trial(trial_id))
    return study
