"""The Optuna search loop on the toy problem (no BERT): optimum, budgets, failures, resume, heartbeat."""

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
from hybridsearch.search.optuna_backend import SearchSettings, finished_count, open_study, run_search
from hybridsearch.search.space import parse_space
from hybridsearch.search.toy import TOY_BEST_SCORE, TOY_OPTIMUM, TOY_SPACE, ToyObjective, toy_score

ROOT = Path(__file__).resolve().parents[1]


def toy_space():
    return parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")


def states(study):
    return [t.state.name for t in study.trials]


def test_tpe_finds_the_known_optimum_within_40_seeded_trials():
    # TPE, sampler seed 0, in memory: the unique optimum (score 3.5, 1 of 310 points) within 40 trials
    # (found at trial 13 with optuna 5.0; random search with the same budget finds it ~12% of the time).
    study = run_search(toy_space(), ToyObjective(), None,
                       SearchSettings(trials=40, objective="score", sampler="tpe", seed=0, isolation="inline"))
    assert len(study.trials) == 40
    assert study.best_value == TOY_BEST_SCORE and study.best_params == TOY_OPTIMUM
    assert study.trials[0].user_attrs["seeded"] and study.trials[0].user_attrs["seed_name"] == "one-cnn"
    assert not any(t.user_attrs["seeded"] for t in study.trials[1:])


def test_tpe_beats_random_on_the_toy_problem():
    def best(sampler, seed):
        s = run_search(toy_space(), ToyObjective(), None,
                       SearchSettings(trials=40, objective="score", sampler=sampler, seed=seed, isolation="inline"))
        return max(toy_score(t.params) for t in s.trials)

    tpe = [best("tpe", seed) for seed in range(4)]
    rnd = [best("random", seed) for seed in range(4)]
    assert sum(tpe) > sum(rnd) and min(tpe) >= 3.0


def test_multi_objective_front_is_non_dominated():
    from hybridsearch.search.pareto import front, trial_rows

    study = run_search(toy_space(), ToyObjective(), None,
                       SearchSettings(trials=25, objective="multi", sampler="nsga2", isolation="inline"))
    rows = trial_rows(study)
    fr = front(rows)
    assert fr and all(r["state"] == "COMPLETE" for r in fr)
    done = [r for r in rows if r["state"] == "COMPLETE"]
    for r in fr:  # no trial beats a front member on all three objectives
        assert not any(o["dev_score"] >= r["dev_score"] and o["latency_ms"] <= r["latency_ms"]
                       and o["size_mb"] <= r["size_mb"] and o["dev_score"] + o["size_mb"] != r["dev_score"] + r["size_mb"]
                       for o in done)


def test_over_budget_candidates_are_rejected_before_training(tmp_path):
    log = tmp_path / "evals.jsonl"
    study = run_search(toy_space(), ToyObjective(log=str(log)), None,
                       SearchSettings(trials=20, sampler="random", max_latency_ms=2.0, isolation="inline"))
    rejected = [t for t in study.trials if t.user_attrs.get("rejected")]
    assert rejected and all(t.state.name == "PRUNED" for t in rejected)
    assert all("over budget: latency" in t.user_attrs["reason"] for t in rejected)
    evaluated = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(evaluated) == 20 - len(rejected)  # rejected ones never trained
    assert all(t.user_attrs["metrics"]["latency_ms"] <= 2.0 for t in study.trials if t.state.name == "COMPLETE")


def test_unreachable_budget_is_said_before_training(tmp_path):
    log = tmp_path / "evals.jsonl"
    with pytest.raises(UserError, match="no candidate of toy.yaml can meet the budget"):
        run_search(toy_space(), ToyObjective(log=str(log)), None,
                   SearchSettings(trials=5, max_latency_ms=0.05, isolation="inline"))
    assert not log.exists()


@pytest.mark.parametrize("crash, reason", [("raise", "RuntimeError: toy crash"), ("nan", "no usable result")])
def test_failed_trials_keep_their_reason_and_the_search_goes_on(crash, reason):
    study = run_search(toy_space(), ToyObjective(crash=crash), None,
                       SearchSettings(trials=15, sampler="random", seed=1, isolation="inline"))
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed and all(reason in t.user_attrs["reason"] for t in failed)
    assert all(t.params["depth"] == 2 for t in failed)
    assert "COMPLETE" in states(study) and len(study.trials) == 15


def test_a_killed_worker_process_fails_its_trial_only(tmp_path):
    study = run_search(toy_space(), ToyObjective(crash="kill"), f"sqlite:///{tmp_path / 's.db'}",
                       SearchSettings(trials=6, sampler="random", seed=3, isolation="process"))
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed, "seed 3 samples depth 2 at least once"
    assert all("killed by SIGKILL" in t.user_attrs["reason"] for t in failed)
    assert states(study).count("COMPLETE") == 6 - len(failed)


def test_pruner_stops_poor_trials_in_score_mode():
    study = run_search(toy_space(), ToyObjective(steps=4), None,
                       SearchSettings(trials=25, objective="score", sampler="random", seed=0, isolation="inline"))
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned and all("pruned at step" in t.user_attrs["reason"] for t in pruned)


RUNNER = """
import sys
from hybridsearch.search.optuna_backend import SearchSettings, run_search
from hybridsearch.search.space import parse_space
from hybridsearch.search.toy import TOY_SPACE, ToyObjective
import yaml
space = parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")
run_search(space, ToyObjective(sleep=0.4, log=sys.argv[2]), sys.argv[1],
           SearchSettings(trials=8, sampler="random", seed=0, isolation="inline",
                          heartbeat_interval=1, grace_period=2))
"""


def test_sigkilled_search_resumes_without_losing_or_repeating_completed_trials(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    log1, log2 = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), url, str(log1)], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and (not log1.exists() or len(log1.read_text().splitlines()) < 3):
        time.sleep(0.05)
    storage = optuna.storages.RDBStorage(url)
    while time.time() < deadline:  # a trial has started (RUNNING) and its heartbeat thread with it
        running = [t for t in storage.get_all_trials(storage.get_study_id_from_name("hybridsearch"))
                   if t.state.name == "RUNNING"]
        if running:
            break
        time.sleep(0.02)
    time.sleep(0.15)  # inside that trial's evaluation
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.values for t in optuna.load_study(study_name="hybridsearch", storage=url).trials
              if t.state.name == "COMPLETE"}
    assert len(before) >= 3
    time.sleep(3.5)  # past the heartbeat grace period (2 s; the storage clock has 1 s resolution)
    study = run_search(toy_space(), ToyObjective(log=str(log2)), url,
                       SearchSettings(trials=8, sampler="random", seed=0, isolation="inline",
                                      heartbeat_interval=1, grace_period=2))
    trials = study.trials
    for number, values in before.items():  # nothing completed was lost or re-run
        assert trials[number].state.name == "COMPLETE" and trials[number].values == values
    resumed = [t for t in trials if t.number > max(before) and t.state.name == "COMPLETE"]
    assert len(log2.read_text().splitlines()) == len(resumed)
    stale = [t for t in trials if t.state.name == "FAIL" and not t.user_attrs.get("reason")]
    assert len(stale) == 1 and f"stale.{stale[0].number}" in study.user_attrs
    assert any(t.user_attrs.get("retry_of") == stale[0].number for t in trials)
    assert finished_count(study) == 8


def test_heartbeat_fails_a_stale_trial_but_not_a_live_one(tmp_path):
    import optuna

    settings = SearchSettings(heartbeat_interval=1, grace_period=2)
    study = open_study(f"sqlite:///{tmp_path / 's.db'}", settings)
    stale = study.ask({"depth": optuna.distributions.IntDistribution(1, 3)})
    study._storage.record_heartbeat(stale._trial_id)
    time.sleep(3.5)  # grace 2 s; the storage clock has 1 s resolution
    live = study.ask({"depth": optuna.distributions.IntDistribution(1, 3)})
    study._storage.record_heartbeat(live._trial_id)
    optuna.storages.fail_stale_trials(study)
    got = {t.number: t.state.name for t in study.get_trials()}
    assert got[stale.number] == "FAIL" and got[live.number] == "RUNNING"
    assert f"stale.{stale.number}" in study.user_attrs
    assert any(t.user_attrs.get("retry_of") == stale.number and t.state.name == "WAITING" for t in study.get_trials())


def test_resume_with_another_identity_or_objective_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_study(url, SearchSettings(), metadata={"task": "mr", "space_hash": "aaa"})
    with pytest.raises(UserError, match="made for space hash 'aaa'"):
        open_study(url, SearchSettings(), metadata={"task": "mr", "space_hash": "bbb"})
    with pytest.raises(UserError, match="--objective multi"):
        open_study(url, SearchSettings(objective="score"), metadata={"task": "mr", "space_hash": "aaa"})


def test_unreachable_storage_is_a_user_error():
    with pytest.raises(UserError, match="cannot open study storage"):
        open_study("sqlite:////nonexistent-dir/x/y.db", SearchSettings())


def test_timeout_bounds_the_search_and_the_interrupted_trial_runs_again(tmp_path):
    start = time.monotonic()
    study = run_search(toy_space(), ToyObjective(sleep=60), f"sqlite:///{tmp_path / 's.db'}",
                       SearchSettings(trials=10, sampler="random", timeout=3, isolation="process"))
    assert time.monotonic() - start < 15  # not 60: the running trial was stopped at the deadline
    cut = [t for t in study.trials if t.user_attrs.get("interrupted")]
    assert len(cut) == 1 and cut[0].state.name == "FAIL" and "--timeout" in cut[0].user_attrs["reason"]
    assert finished_count(study) == states(study).count("COMPLETE")
    waiting = [t for t in study.get_trials() if t.state.name == "WAITING"]
    assert waiting and waiting[-1].system_attrs["fixed_params"] == cut[0].params


ORPHAN = """
import sys
import yaml
from hybridsearch.search.optuna_backend import SearchSettings, run_search
from hybridsearch.search.space import parse_space
from hybridsearch.search.toy import TOY_SPACE, ToyObjective
if __name__ == "__main__":  # the worker is spawned: it re-imports this file
    space = parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")
    run_search(space, ToyObjective(sleep=120, pidfile=sys.argv[2]), sys.argv[1],
               SearchSettings(trials=2, sampler="random", isolation="process"))
"""


def test_a_killed_search_leaves_no_worker_behind(tmp_path):
    script, pidfile = tmp_path / "orphan.py", tmp_path / "worker.pid"
    script.write_text(ORPHAN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), f"sqlite:///{tmp_path / 's.db'}", str(pidfile)], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not (pidfile.exists() and pidfile.read_text()):
        time.sleep(0.05)
    worker = int(pidfile.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(100):  # the worker notices within ~1 s
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived the killed search")


def test_timeout_before_the_teacher_is_timed_is_a_one_line_error(monkeypatch):
    from hybridsearch.search import worker

    class WithReference(ToyObjective):
        def reference(self):
            return {"score": 1.0}

    monkeypatch.setattr(worker.TrialRunner, "run",
                        lambda self, kind, sample: worker.CallResult("error", reason=worker.INTERRUPTED))
    with pytest.raises(UserError, match="--timeout 5s ran out .* before any trial"):
        run_search(toy_space(), WithReference(), None, SearchSettings(trials=3, timeout=5, isolation="inline"))
