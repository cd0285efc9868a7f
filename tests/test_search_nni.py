"""The NNI backend on the toy problem (no BERT): space conversion, search, failures, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hybridsearch.errors import UserError
from hybridsearch.search.nni_backend import from_nni, make_tuner, run_nni_search, to_nni, to_nni_space
from hybridsearch.search.optuna_backend import SearchSettings, finished_count
from hybridsearch.search.space import load_space, parse_space
from hybridsearch.search.toy import TOY_BEST_SCORE, TOY_OPTIMUM, TOY_SPACE, ToyObjective

ROOT = Path(__file__).resolve().parents[1]


def toy_space():
    return parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")


def test_nested_nni_space_round_trips_every_sample():
    space = toy_space()
    nni_space = to_nni_space(space)
    assert set(nni_space) == {"depth", "recipe.temperature"}
    d3 = next(b for b in nni_space["depth"]["_value"] if b["_name"] == 3)
    cnn = next(b for b in d3["layer_2.block"]["_value"] if b["_name"] == "cnn")
    assert cnn == {"_name": "cnn", "layer_2.kernel": {"_type": "choice", "_value": [3, 5]}}
    for seed in range(30):
        sample = space.random_sample(seed)
        assert from_nni(space, to_nni(nni_space, sample)) == sample
    assert from_nni(space, to_nni(nni_space, TOY_OPTIMUM)) == TOY_OPTIMUM


@pytest.mark.parametrize("name", ["hybrid", "transformer_only"])
def test_tuner_samples_of_the_shipped_spaces_are_valid(name):
    space = load_space(name)
    nni_space = to_nni_space(space)
    for algorithm in ("random", "tpe"):
        tuner = make_tuner(algorithm, 0, nni_space)
        for i in range(20):
            params = tuner.generate_parameters(i)
            sample = from_nni(space, params)
            space.resolve(sample)  # raises UserError for a label that is missing, extra or out of range
            tuner.receive_trial_result(i, params, 0.5)


def test_tpe_search_on_the_toy_problem_lands_in_the_study(tmp_path):
    # NNI TPE (seed 0, 10 random start-up trials): reaches the unique optimum (1 of 310 points) within 50 trials
    # with nni 3.0; the seed runs first, every trial carries its NNI parameter and reward.
    study = run_nni_search(toy_space(), ToyObjective(), f"sqlite:///{tmp_path / 's.db'}",
                           SearchSettings(trials=50, objective="score", seed=0, isolation="inline"), tmp_path)
    trials = study.trials
    assert len(trials) == 50 and finished_count(study) == 50
    assert trials[0].user_attrs["seed_name"] == "one-cnn" and trials[0].params == {
        "depth": 1, "layer_0.block": "cnn", "layer_0.kernel": 3, "recipe.temperature": 1.0}
    assert all(t.user_attrs["backend"] == "nni" and t.user_attrs["nni_reward"] == t.value for t in trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 50  # no point proposed twice
    assert study.best_value == TOY_BEST_SCORE and study.best_params == TOY_OPTIMUM
    state = json.loads((tmp_path / "nni" / "tuner.json").read_text())
    assert [r["trial"] for r in state["history"]] == list(range(50))


def test_resumed_search_continues_exactly_like_an_uninterrupted_one(tmp_path):
    def run(path, trials):
        return run_nni_search(toy_space(), ToyObjective(), f"sqlite:///{path / 's.db'}",
                              SearchSettings(trials=trials, objective="score", seed=3, isolation="inline"), path)

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    straight = run(tmp_path / "a", 16)
    run(tmp_path / "b", 7)
    resumed = run(tmp_path / "b", 16)  # a fresh tuner, history and RNG state replayed from tuner.json
    assert [t.params for t in resumed.trials] == [t.params for t in straight.trials]


def test_multi_objective_budget_rejects_before_training(tmp_path):
    study = run_nni_search(toy_space(), ToyObjective(), f"sqlite:///{tmp_path / 's.db'}",
                           SearchSettings(trials=20, objective="multi", max_latency_ms=2.5, isolation="inline"),
                           tmp_path)
    rejected = [t for t in study.trials if t.user_attrs.get("rejected")]
    assert rejected and all(t.state.name == "PRUNED" and t.user_attrs["nni_reward"] == -1.0 for t in rejected)
    assert all(t.user_attrs["precheck"]["latency_ms"] > 2.5 for t in rejected)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done and all(len(t.values) == 3 and t.values[1] <= 2.5 for t in done)


def test_a_killed_worker_process_fails_its_trial_only(tmp_path):
    study = run_nni_search(toy_space(), ToyObjective(crash="kill"), f"sqlite:///{tmp_path / 's.db'}",
                           SearchSettings(trials=12, objective="score", isolation="process"), tmp_path)
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed and all(t.params["depth"] == 2 and "killed by SIGKILL" in t.user_attrs["reason"] for t in failed)
    assert all(t.state.name == "COMPLETE" for t in study.trials if t.params["depth"] != 2)
    assert finished_count(study) == 12


def test_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="--nni-algorithm"):
        run_nni_search(toy_space(), ToyObjective(), f"sqlite:///{tmp_path / 's.db'}", SearchSettings(), tmp_path,
                       algorithm="bohb")
    ranged = yaml.safe_load(TOY_SPACE)
    ranged["depth"] = {"low": 1, "high": 3, "log": True}
    with pytest.raises(UserError, match="'depth' decides which other keys exist"):
        to_nni_space(parse_space(ranged, "ranged.yaml"))


RUNNER = """
import sys
from tests.test_search_nni import toy_space
from hybridsearch.search.nni_backend import run_nni_search
from hybridsearch.search.optuna_backend import SearchSettings
from hybridsearch.search.toy import ToyObjective

if __name__ == "__main__":
    run_nni_search(toy_space(), ToyObjective(sleep=0.2, log=sys.argv[3]), sys.argv[1],
                   SearchSettings(trials=10, objective="score", seed=1, isolation="process"), sys.argv[2])
"""


def test_sigkilled_search_resumes_without_losing_or_repeating_trials(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    script, log1, log2 = tmp_path / "runner.py", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    script.write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), url, str(tmp_path), str(log1)], env=env, cwd=ROOT)
    deadline = time.time() + 90
    while time.time() < deadline and (not log1.exists() or len(log1.read_text().splitlines()) < 4):
        time.sleep(0.05)
    time.sleep(0.1)  # inside the next trial's evaluation
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: (t.params, t.value) for t in optuna.load_study(study_name="hybridsearch", storage=url).trials}
    assert len(before) >= 3
    subprocess.run([sys.executable, str(script), url, str(tmp_path), str(log2)], env=env, cwd=ROOT, check=True,
                   timeout=120)
    study = optuna.load_study(study_name="hybridsearch", storage=url)
    assert len(study.trials) == 10 and finished_count(study) == 10
    for number, (params, value) in before.items():  # nothing finished was lost or changed
        assert study.trials[number].params == params and study.trials[number].value == value
    points = [json.dumps(t.params, sort_keys=True) for t in study.trials]
    assert len(set(points)) == 10  # nor repeated
    assert len(log2.read_text().splitlines()) == 10 - len(before)
    history = json.loads((tmp_path / "nni" / "tuner.json").read_text())["history"]
    assert [r["trial"] for r in history] == list(range(10))


def test_run_backend_dispatches_and_refuses_foreign_flags(tmp_path):
    from hybridsearch.search.backends import run_backend

    url, settings = f"sqlite:///{tmp_path / 's.db'}", SearchSettings(trials=4, objective="score", isolation="inline")
    with pytest.raises(UserError, match="unknown --backend 'dask'"):
        run_backend("dask", toy_space(), ToyObjective(), url, settings, tmp_path, study_name="hybridsearch")
    with pytest.raises(UserError, match="--gpus-per-trial, --concurrency need --backend ray"):
        run_backend("nni", toy_space(), ToyObjective(), url, settings, tmp_path, study_name="hybridsearch",
                    concurrency=2, gpus_per_trial=0.5)
    seen = []
    study = run_backend("nni", toy_space(), ToyObjective(), url, settings, tmp_path, study_name="hybridsearch",
                        on_trial=lambda s, t: seen.append(t.number))
    assert seen == [0, 1, 2, 3] and all(t.user_attrs["backend"] == "nni" for t in study.trials)


def test_backend_flags_parse_into_run_backend_options():
    import argparse

    from hybridsearch.search.backends import add_backend_arguments, backend_options

    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    args = parser.parse_args(["--backend", "ray", "--concurrency", "2", "--gpus-per-trial", "0.25",
                              "--address", "10.0.0.5:6379"])
    assert args.backend == "ray" and backend_options(args) == {
        "concurrency": 2, "cpus_per_trial": 1.0, "gpus_per_trial": 0.25, "address": "10.0.0.5:6379",
        "node_type": None, "nni_algorithm": "tpe"}
    assert "ASHA" in parser.format_help() and "constraints" in parser.format_help()
