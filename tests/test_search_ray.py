"""The Ray Tune backend's own parts (toy problem, no BERT): settings, outcomes, resources, ASHA, restore, lock.

What every backend shares (budgets, crashes, resume, teacher row, latency meaning, promotion,
timeout) is in tests/test_backend_contract.py. One local Ray (2 CPUs, no dashboard) serves the
module (`tests/conftest.py::local_ray`); `run_backend("ray", ...)` reuses it.
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
from hybridsearch.search.backends.ray import RaySettings, check_address, outcome_of
from hybridsearch.search.space import parse_space
from hybridsearch.search.study import SearchSettings, finished_count
from hybridsearch.search.toy import TOY_SPACE, ToyObjective
from hybridsearch.search.trial import TrialOutcome, read_outcome

ROOT = Path(__file__).resolve().parents[1]


def toy_space():
    return parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")


def ray_search(objective, settings, run_dir, on_trial=None, **options):
    return run_backend("ray", toy_space(), objective, f"sqlite:///{run_dir / 'study.db'}", settings, run_dir,
                       on_trial=on_trial, **options)


# -- no Ray needed -------------------------------------------------------------------------------------------
def test_unreachable_address_and_bad_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        check_address("127.0.0.1:9", timeout=1)
    with pytest.raises(UserError, match="bad --address"):
        check_address("no-port-here")
    for bad, match in (({"concurrency": 0}, "--concurrency"), ({"cpus_per_trial": 0}, "--cpus-per-trial"),
                       ({"gpus_per_trial": 1.5}, "whole number"), ({"scheduler": "pbt"}, "--scheduler")):
        with pytest.raises(UserError, match=match):
            RaySettings(**bad).check()
    with pytest.raises(UserError, match="needs a study storage"):
        run_backend("ray", toy_space(), ToyObjective(), None, SearchSettings(), tmp_path)


def test_ray_results_map_to_outcomes():
    done = TrialOutcome("COMPLETE", values=[0.8, 1.5, 2.0], metrics={"dev_score": 0.8})
    got, node = outcome_of({"hs_outcome": json.dumps(done.to_dict()), "hs_node": "n1"}, False)
    assert got == done and node == "n1"
    got, _ = outcome_of({"dev_score": 0.4, "step": 2}, False, asha=True)
    assert got.state == "PRUNED" and "ASHA" in got.reason
    got, _ = outcome_of({"dev_score": 0.4, "step": 2}, False)  # FIFO: only Ctrl-C / Ray stops a trial early
    assert got.state == "FAIL" and got.interrupted
    got, _ = outcome_of(None, True)
    assert got.state == "FAIL" and "worker process died" in got.reason
    got, _ = outcome_of({"dev_score": 0.4, "step": 2}, False, stopped_by_deadline=True)
    assert got.state == "FAIL" and got.interrupted


# -- on a local Ray ------------------------------------------------------------------------------------------
def test_asha_is_opt_in_and_stops_trials_on_the_dev_score(local_ray, tmp_path):
    study = ray_search(ToyObjective(steps=4), SearchSettings(trials=6, objective="score", sampler="random",
                                                             isolation="inline"), tmp_path, concurrency=2,
                       scheduler="asha")
    outcomes = [read_outcome(t) for t in study.trials]
    assert finished_count(study) == 6
    assert all(o.state == "COMPLETE" or "ASHA" in o.reason for o in outcomes)
    assert all(t.user_attrs["backend"] == "ray" and t.user_attrs["backend.ray.run"] == str(tmp_path)
               for t in study.trials)
    assert (tmp_path / "ray" / "exp-001" / ".done").exists()
    again = ray_search(ToyObjective(), SearchSettings(trials=6, objective="score"), tmp_path)
    assert len(again.trials) == 6  # finished: nothing more runs


def test_node_type_pins_trials_and_on_trial_sees_each(local_ray, tmp_path):
    seen = []
    study = ray_search(ToyObjective(), SearchSettings(trials=4, objective="multi", isolation="inline"), tmp_path,
                       on_trial=lambda st, t: seen.append((t.number, t.state.name)), concurrency=2,
                       node_type="hs_target")
    assert sorted(seen) == sorted((t.number, t.state.name) for t in study.trials)  # on_trial saw each, recorded
    nodes = {t.user_attrs.get("backend.ray.node_id") for t in study.trials}
    assert nodes == {local_ray.get_runtime_context().get_node_id()}


def test_gpu_shares_without_a_gpu_and_an_absent_node_type_are_refused(local_ray, tmp_path):
    with pytest.raises(UserError, match="no Ray node offers resource 'rpi4'"):
        ray_search(ToyObjective(), SearchSettings(trials=2, isolation="inline"), tmp_path, node_type="rpi4")
    if local_ray.cluster_resources().get("GPU", 0):
        pytest.skip("this machine has a GPU")
    with pytest.raises(UserError, match="--gpus-per-trial 0.5 asked"):
        ray_search(ToyObjective(), SearchSettings(trials=2, isolation="inline"), tmp_path, gpus_per_trial=0.5)


RUNNER = """
import sys
from tests.test_search_ray import ray_search
from hybridsearch.search.study import SearchSettings
from hybridsearch.search.toy import ToyObjective
from pathlib import Path

if __name__ == "__main__":
    ray_search(ToyObjective(sleep=1.0, log=sys.argv[2]), SearchSettings(trials=8, objective="score", seed=1,
               isolation="inline"), Path(sys.argv[1]), concurrency=2)
"""


@pytest.mark.slow
def test_killed_driver_and_its_ray_restore_without_losing_or_repeating_trials(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    script, log1, log2 = tmp_path / "runner.py", tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    script.write_text(RUNNER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AIR_NEW_OUTPUT": "0"}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(log1)], env=env, cwd=ROOT,
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
    subprocess.run([sys.executable, str(script), str(tmp_path), str(log2)], env=env, cwd=ROOT, check=True,
                   timeout=240)
    study = optuna.load_study(study_name="hybridsearch", storage=url)
    assert finished_count(study) == 8
    for number, (params, value) in before.items():  # nothing finished was lost or changed
        assert study.trials[number].params == params and study.trials[number].value == value
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


def test_node_lock_is_passed_in_and_held_around_calls(tmp_path):
    from hybridsearch.search.locks import NodeLock
    from hybridsearch.search.worker import TrialRunner

    class Probe(ToyObjective):
        def precheck(self, sample):  # inside measuring(): another measurer cannot get the lock
            import fcntl

            fd = os.open(self.lock_file, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return {"held": False}
            except BlockingIOError:
                return {"held": True}
            finally:
                os.close(fd)

    obj = Probe()
    obj.lock_file = str(tmp_path / "node.lock")
    runner = TrialRunner(obj, "inline", lock=NodeLock(obj.lock_file))
    assert runner.run("precheck", {}).value == {"held": True}
