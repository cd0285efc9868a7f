"""The Optuna backend and the study on the toy problem (no BERT): samplers, fronts, failures, heartbeat, identity.

What every backend shares (optimum, budgets, crashes, resume, teacher row, latency meaning,
promotion, timeout) is in tests/test_backend_contract.py.
"""

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
from hybridsearch.search.backends import run_backend
from hybridsearch.search.space import parse_space
from hybridsearch.search.study import SearchSettings, open_study
from hybridsearch.search.toy import TOY_SPACE, ToyObjective, toy_score
from hybridsearch.search.trial import read_outcome

ROOT = Path(__file__).resolve().parents[1]


def run_search(space, objective, storage_url, settings):
    return run_backend("optuna", space, objective, storage_url, settings)


def toy_space():
    return parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")


def states(study):
    return [t.state.name for t in study.trials]


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
    assert failed and all(reason in read_outcome(t).reason for t in failed)
    assert all(t.params["depth"] == 2 for t in failed)
    assert "COMPLETE" in states(study) and len(study.trials) == 15


def test_pruner_stops_poor_trials_in_score_mode():
    study = run_search(toy_space(), ToyObjective(steps=4), None,
                       SearchSettings(trials=25, objective="score", sampler="random", seed=0, isolation="inline"))
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned and all("pruned at step" in read_outcome(t).reason for t in pruned)


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


ORPHAN = """
import sys
import yaml
from hybridsearch.search.backends import run_backend
from hybridsearch.search.space import parse_space
from hybridsearch.search.study import SearchSettings
from hybridsearch.search.toy import TOY_SPACE, ToyObjective
if __name__ == "__main__":  # the worker is spawned: it re-imports this file
    space = parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")
    run_backend("optuna", space, ToyObjective(sleep=120, pidfile=sys.argv[2]), sys.argv[1],
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
                        lambda self, kind, sample, *a: worker.CallResult("error", reason=worker.INTERRUPTED))
    with pytest.raises(UserError, match="--timeout 5s ran out .* before any trial"):
        run_search(toy_space(), WithReference(), None, SearchSettings(trials=3, timeout=5, isolation="inline"))


def test_a_resumed_search_draws_fresh_samples(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = run_search(toy_space(), ToyObjective(), url, SearchSettings(trials=3, sampler="random", seed=0,
                                                                        isolation="inline"))
    assert len(first.trials) == 3
    study = run_search(toy_space(), ToyObjective(), url, SearchSettings(trials=6, sampler="random", seed=0,
                                                                        isolation="inline"))
    points = [json.dumps(t.params, sort_keys=True) for t in study.trials]
    assert len(set(points)) == 6  # the sampler's seed follows the trials so far: no replayed draws
