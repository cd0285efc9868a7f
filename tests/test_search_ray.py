"""The Ray Tune backend on the toy problem (no BERT): study records, ASHA, budgets, crashes, restore.

One local Ray (2 CPUs, no dashboard) serves the module; `run_ray_search` reuses a running Ray.
Starting Ray takes ~10 s on a busy 2-core machine; the budget and GPU tests share that start in the
fast tier, the crash (a dead Ray worker costs ~10 s), restore and real-objective tests are slow.
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
from hybridsearch.search.optuna_backend import SearchSettings, finished_count
from hybridsearch.search.ray_backend import RaySettings, check_address, outcome, run_ray_search
from hybridsearch.search.space import parse_space
from hybridsearch.search.toy import TOY_SPACE, ToyObjective
from tests.test_search_cli import user_files  # noqa: F401 - fixture (tiny teacher, CSV task, tiny space)

ROOT = Path(__file__).resolve().parents[1]


def toy_space():
    return parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False,
             resources={"hs_target": 1})  # a node type trials can be pinned to
    yield ray
    ray.shutdown()


# -- no Ray needed -------------------------------------------------------------------------------------------
def test_unreachable_address_and_bad_resources_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        check_address("127.0.0.1:9", timeout=1)
    with pytest.raises(UserError, match="bad --address"):
        check_address("no-port-here")
    for bad, match in (({"concurrency": 0}, "--concurrency"), ({"cpus_per_trial": 0}, "--cpus-per-trial"),
                       ({"gpus_per_trial": 1.5}, "whole number")):
        with pytest.raises(UserError, match=match):
            RaySettings(**bad).check()
    with pytest.raises(UserError, match="needs a study storage"):
        run_ray_search(toy_space(), ToyObjective(), None, SearchSettings(), tmp_path)


def test_trial_outcomes_map_to_study_states():
    s = SearchSettings(objective="multi", max_latency_ms=2.0)
    m = {"dev_score": 0.8, "latency_ms": 1.5, "size_mb": 2.0, "failure": None}
    attrs, state, values = outcome({"hs_final": 1, "hs_metrics": json.dumps(m)}, False, s)
    assert state.name == "COMPLETE" and values == [0.8, 1.5, 2.0] and attrs["constraints"][0] == -0.5
    attrs, state, _ = outcome({"hs_rejected": 1, "hs_reason": "over budget: x", "hs_precheck": '{"latency_ms": 3}'},
                              False, s)
    assert state.name == "PRUNED" and attrs["rejected"] and attrs["constraints"][0] == 1.0
    attrs, state, _ = outcome({"dev_score": 0.4, "step": 2}, False, s)
    assert state.name == "PRUNED" and "ASHA" in attrs["reason"]
    attrs, state, _ = outcome(None, True, s)
    assert state.name == "FAIL" and "worker process died" in attrs["reason"]
    attrs, state, _ = outcome({"hs_final": 1, "hs_metrics": json.dumps({**m, "dev_score": None})}, False, s)
    assert state.name == "FAIL" and "no usable result" in attrs["reason"]


# -- on a local Ray ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ray_search_writes_the_study_and_a_crashed_worker_fails_its_trial_only(local_ray, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = run_ray_search(toy_space(), ToyObjective(crash="kill", steps=2), url,
                           SearchSettings(trials=6, objective="score", sampler="tpe", isolation="inline"), tmp_path,
                           RaySettings(concurrency=2, verbose=0))
    trials = study.trials
    assert len(trials) == 6 and finished_count(study) == 6
    assert trials[0].user_attrs["seed_name"] == "one-cnn"  # the space's seed runs first
    assert all(t.user_attrs["backend"] == "ray" and t.user_attrs["ray_run"] == str(tmp_path) for t in trials)
    for t in trials:
        if t.params["depth"] == 2:  # the toy kills its process for depth 2
            assert t.state.name == "FAIL" and "worker process died" in t.user_attrs["reason"]
        elif t.state.name == "PRUNED":
            assert "ASHA" in t.user_attrs["reason"]
        else:
            assert t.state.name == "COMPLETE" and t.value == t.user_attrs["metrics"]["dev_score"]
    assert any(t.state.name == "COMPLETE" for t in trials)
    assert (tmp_path / "ray" / "exp-001" / ".done").exists()
    again = run_ray_search(toy_space(), ToyObjective(), url, SearchSettings(trials=6, objective="score"), tmp_path,
                           RaySettings(verbose=0))
    assert len(again.trials) == 6  # finished: nothing more runs


def test_ray_multi_objective_budget_rejects_before_training(local_ray, tmp_path):
    seen = []
    study = run_ray_search(toy_space(), ToyObjective(), f"sqlite:///{tmp_path / 'study.db'}",
                           SearchSettings(trials=8, objective="multi", max_latency_ms=2.5, isolation="inline"),
                           tmp_path, RaySettings(concurrency=2, node_type="hs_target", verbose=0),
                           on_trial=lambda st, t: seen.append((t.number, t.state.name)))
    rejected = [t for t in study.trials if t.user_attrs.get("rejected")]
    assert all(t.state.name == "PRUNED" and t.user_attrs["precheck"]["latency_ms"] > 2.5 for t in rejected)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done and all(len(t.values) == 3 and t.user_attrs["constraints"][0] <= 0 for t in done)
    assert sorted(seen) == sorted((t.number, t.state.name) for t in study.trials)  # on_trial saw each, recorded


def test_gpu_shares_without_a_gpu_and_an_absent_node_type_are_refused(local_ray, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(UserError, match="no Ray node offers resource 'rpi4'"):
        run_ray_search(toy_space(), ToyObjective(), url, SearchSettings(trials=2, isolation="inline"), tmp_path,
                       RaySettings(node_type="rpi4"))
    if local_ray.cluster_resources().get("GPU", 0):
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError, match="--gpus-per-trial 0.5 asked"):
        run_ray_search(toy_space(), ToyObjective(), url, SearchSettings(trials=2, isolation="inline"), tmp_path,
                       RaySettings(gpus_per_trial=0.5))


RUNNER = """
import sys
from tests.test_search_ray import toy_space
from hybridsearch.search.optuna_backend import SearchSettings
from hybridsearch.search.ray_backend import RaySettings, run_ray_search
from hybridsearch.search.toy import ToyObjective

if __name__ == "__main__":
    run_ray_search(toy_space(), ToyObjective(sleep=1.0, log=sys.argv[3]), sys.argv[1],
                   SearchSettings(trials=8, objective="score", seed=1, isolation="inline"), sys.argv[2],
                   RaySettings(concurrency=2, verbose=0))
"""


@pytest.mark.slow
def test_killed_driver_restores_without_losing_or_repeating_trials(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    script, log1, log2 = tmp_path / "runner.py", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    script.write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AIR_NEW_OUTPUT": "0"}
    proc = subprocess.Popen([sys.executable, str(script), url, str(tmp_path), str(log1)], env=env, cwd=ROOT,
                            start_new_session=True)
    try:
        deadline = time.time() + 150
        while time.time() < deadline and (not log1.exists() or len(log1.read_text().splitlines()) < 3):
            time.sleep(0.1)
        time.sleep(1.5)  # Tune saves its state; later trials are running
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
        proc.wait()
    before = {t.number: (t.params, t.value) for t in optuna.load_study(study_name="hybridsearch", storage=url).trials
              if t.state.name == "COMPLETE"}
    assert len(before) >= 2
    subprocess.run([sys.executable, str(script), url, str(tmp_path), str(log2)], env=env, cwd=ROOT, check=True,
                   timeout=240)
    study = optuna.load_study(study_name="hybridsearch", storage=url)
    assert finished_count(study) == 8
    for number, (params, value) in before.items():  # nothing finished was lost or changed
        assert study.trials[number].params == params and study.trials[number].value == value
    evaluated = [json.loads(x) for p in (log1, log2) for x in p.read_text().splitlines()]
    complete = [t.params for t in study.trials if t.state.name == "COMPLETE"]
    assert all(evaluated.count(p) >= 1 for p in complete)
    assert len(log2.read_text().splitlines()) <= 8 - len(before)  # only what was left ran again
    assert not [t for t in study.trials if t.state.name == "RUNNING"]


# -- the per-node latency lock (no Ray needed) ---------------------------------------------------------------
def _measure(path, out):
    from hybridsearch.search import locks

    with locks.measuring(path):
        Path(out).write_text(repr(time.time()))
        time.sleep(0.3)


def _train(path, out):
    from hybridsearch.search import locks

    with locks.training(path):
        Path(out).write_text(repr(time.time()))


def test_node_lock_measures_alone_and_before_queued_trainers(tmp_path):
    import multiprocessing as mp

    from hybridsearch.search import locks

    lock, m_out, t_out = str(tmp_path / "node.lock"), tmp_path / "m", tmp_path / "t"
    ctx = mp.get_context("fork")
    with locks.training(lock):
        measurer = ctx.Process(target=_measure, args=(lock, m_out))
        measurer.start()
        time.sleep(0.5)
        assert not m_out.exists()  # a training holds the node: no measurement
        trainer = ctx.Process(target=_train, args=(lock, t_out))
        trainer.start()
        time.sleep(0.5)
        assert not t_out.exists()  # a queued measurer goes first: new trainings wait
        released = time.time()
        locks.yield_point()  # between two steps: the measurer runs, then this training goes on
        back = time.time()
    measurer.join(10), trainer.join(10)
    m_at, t_at = float(m_out.read_text()), float(t_out.read_text())
    assert released <= m_at < t_at and back >= m_at + 0.25


def test_latency_lock_wraps_measure_latency_once():
    from hybridsearch.measure import latency
    from hybridsearch.search import locks

    original = latency.measure_latency
    try:
        locks.install_latency_lock()
        wrapped = latency.measure_latency
        locks.install_latency_lock()
        assert wrapped is latency.measure_latency and wrapped._hs_node_locked and wrapped.__wrapped__ is original
    finally:
        latency.measure_latency = original


@pytest.mark.slow
@pytest.mark.integration
def test_ray_and_nni_backends_run_the_real_objective_on_a_tiny_teacher(local_ray, tmp_path, user_files):  # noqa: F811
    from hybridsearch.cli import main
    from hybridsearch.search.backends import run_backend
    from hybridsearch.search.distill_objective import DistillObjective
    from hybridsearch.search.pareto import trial_rows
    from hybridsearch.search.rundir import open_run
    from hybridsearch.search.space import load_space

    data, teacher, space_file = user_files
    space = load_space(str(space_file))
    task_args = {"task": str(data), "text_column": "review", "label_column": "stars", "text_pair_column": None,
                 "dev_file": None, "test_file": None, "num_labels": None}
    for backend in ("ray", "nni"):
        run = open_run(tmp_path / backend, {"task": "reviews", "teacher_fingerprint": "tiny", "space_hash": space.hash})
        run_dir = run.path
        objective = DistillObjective(str(space_file), task_args, str(teacher), cache_dir=str(tmp_path / "cache"),
                                     repeats=3, weights_dir=str(run_dir / "weights"))
        settings = SearchSettings(trials=3, objective="multi", max_size_mb=50.0)
        study = run_backend(backend, space, objective, run.storage, settings, run_dir, study_name=run.study_name,
                            concurrency=2 if backend == "ray" else 1, ray_verbose=0)
        rows = trial_rows(study)
        done = [r for r in rows if r["state"] == "COMPLETE"]
        assert len(rows) == 3 and done, rows
        assert all(r["state"] == "PRUNED" and "ASHA" in r["reason"] for r in rows if r["state"] != "COMPLETE")
        assert all(r["latency_ms"] > 0 and r["size_mb"] > 0 and 0 <= r["dev_score"] <= 1 for r in done)
        assert all(t.user_attrs["backend"] == backend for t in study.trials)
        assert main(["study", "show", str(run_dir)]) == 0  # the CLI reads a Ray / NNI study like any other
