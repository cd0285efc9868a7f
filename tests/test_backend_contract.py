"""The backend contract: every registered search backend (`search.backends.list_backends()`) behaves the same.

Each test runs for every backend on the toy problem (no BERT): the optimum is found, budgets reject
before training, a killed trial process fails alone, a SIGKILLed search resumes (no COMPLETE trial
lost or re-run; the trial RUNNING at the kill runs again once, marked `retry_of`), the teacher row is
stored, `latency_ms` means the drift-free latency everywhere, promotion is honoured (and
`promote=False` too), `--timeout` and Ctrl-C stop the running trial (FAIL `interrupted`, enqueued
again) and a re-run finishes the search; plus one tiny-teacher distillation per backend.

Per-backend differences the suite allows (and no others):
- the optimum test gives NNI's own TPE (10 random start-up trials) 50 trials where Optuna and Ray,
  which share the study's sampler (TPE, seed 0), get 40;
- Ray runs trials in its own workers, so "a killed trial process" is a dead Ray worker, and its
  SIGKILL / Ctrl-C drivers join the module's Ray cluster (`--address`) instead of starting one.
One local Ray (2 CPUs) serves the whole module.
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

from hybridsearch.search.backends import list_backends, run_backend
from hybridsearch.search.pareto import teacher_row, trial_rows
from hybridsearch.search.space import parse_space
from hybridsearch.search.study import SearchSettings, finished_count
from hybridsearch.search.toy import (
    TOY_BEST_SCORE,
    TOY_DRIFT,
    TOY_OPTIMUM,
    TOY_SPACE,
    TOY_TEACHER,
    ToyObjective,
    ToyTeacherObjective,
    toy_latency,
    toy_score,
)
from hybridsearch.search.trial import OUTCOME_KEY, RETRY_OF_KEY, read_outcome

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = list_backends()


def toy_space():
    return parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")


@pytest.fixture(scope="module")
def ray_address(local_ray):
    """The module's local Ray (`tests/conftest.py`), as the address a second driver joins."""
    return local_ray.get_runtime_context().gcs_address


@pytest.fixture
def search(request, tmp_path):
    """search(backend, objective, settings, **options) -> study, in tmp_path (SQLite)."""

    def run(backend, objective, settings, run_dir=None, **options):
        if backend == "ray":
            request.getfixturevalue("ray_address")
        run_dir = run_dir or tmp_path
        return run_backend(backend, toy_space(), objective, f"sqlite:///{run_dir / 'study.db'}", settings, run_dir,
                           **options)

    return run


def completed(study):
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_toy_optimum_is_found(backend, search):
    # the unique optimum (1 of 310 points): by trial 13 with the study's TPE (10 start-up trials, optuna 5.1),
    # by trial 50 with NNI's (nni 3.0)
    trials = 50 if backend == "nni" else 40
    study = search(backend, ToyObjective(), SearchSettings(trials=trials, objective="score", sampler="tpe", seed=0,
                                                           isolation="inline", promote=False))
    assert max(toy_score(t.params) for t in completed(study)) == TOY_BEST_SCORE
    assert any(t.params == TOY_OPTIMUM for t in completed(study))
    assert study.trials[0].user_attrs["seeded"] and study.trials[0].user_attrs["seed_name"] == "one-cnn"


@pytest.mark.parametrize("backend", BACKENDS)
def test_over_budget_candidates_are_rejected_before_training(backend, search, tmp_path):
    log = tmp_path / "evals.jsonl"
    study = search(backend, ToyObjective(log=str(log)), SearchSettings(trials=8, sampler="random", seed=2,
                                                                       max_latency_ms=2.0, isolation="inline"))
    outcomes = {t.number: read_outcome(t) for t in study.trials}
    rejected = [n for n, o in outcomes.items() if o and o.rejected]
    assert rejected and all(study.trials[n].state.name == "PRUNED" for n in rejected)
    assert all("over budget: latency" in outcomes[n].reason for n in rejected)
    assert len(log.read_text().splitlines()) == 8 - len(rejected)  # rejected ones never trained
    assert all(outcomes[t.number].metrics["latency_ms"] <= 2.0 for t in completed(study))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_killed_trial_process_fails_that_trial_only(backend, search):
    study = search(backend, ToyObjective(crash="kill"), SearchSettings(trials=5, sampler="random", seed=3,
                                                                       isolation="process"))
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed, "seed 3 samples depth 2 at least once"
    assert all(t.params["depth"] == 2 for t in failed)
    reason = "Ray trial failed" if backend == "ray" else "killed by SIGKILL"
    assert all(reason in read_outcome(t).reason for t in failed)
    assert len(completed(study)) == 5 - len(failed) and finished_count(study) == 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_teacher_row_latency_meaning_and_promotion(backend, search):
    study = search(backend, ToyTeacherObjective(near=True), SearchSettings(trials=10, sampler="random", seed=1,
                                                                           isolation="inline", promote_eta=2))
    assert teacher_row(study)["dev_score"] == TOY_TEACHER["dev_score"]
    done = completed(study)
    for t in done:  # drift-free: the teacher's latency / the same-run speed-up; the raw median kept
        m = read_outcome(t).metrics
        assert m["latency_ms"] == pytest.approx(toy_latency(t.params))
        assert m["latency_ms_raw"] == pytest.approx(TOY_DRIFT * toy_latency(t.params))
        assert read_outcome(t).precheck["latency_ms"] == pytest.approx(toy_latency(t.params))
        assert read_outcome(t).latency_source == "measured"
    promoted = [t for t in done if read_outcome(t).promoted]
    assert promoted and len(promoted) < len(done)
    for t in promoted:  # ASHA's rule (eta 2): among the fastest half of the trials finished before it
        prior = [u for u in done if u.number < t.number]
        faster = [u for u in prior if toy_latency(u.params) < toy_latency(t.params)]
        assert len(faster) < (len(prior) + 1) // 2
    for t in done:
        extra = read_outcome(t).metrics["steps"] - 100
        assert extra == (read_outcome(t).promoted["extra_steps"] if t in promoted else 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_promote_is_honoured(backend, search):
    study = search(backend, ToyTeacherObjective(), SearchSettings(trials=5, sampler="random", seed=1,
                                                                  isolation="inline", promote_eta=1,
                                                                  promote=False))
    assert all(read_outcome(t).metrics["steps"] == 100 and not read_outcome(t).promoted for t in completed(study))


@pytest.mark.parametrize("backend", BACKENDS)
def test_timeout_stops_the_running_trial_and_a_rerun_finishes(backend, search, request, tmp_path):
    if backend == "ray":
        request.getfixturevalue("ray_address")  # started before the clock
    start = time.monotonic()
    study = search(backend, ToyObjective(sleep=30), SearchSettings(trials=3, sampler="random", seed=0, timeout=4,
                                                                   isolation="process"))
    assert time.monotonic() - start < 28  # not 30 per trial: the running trial was stopped at the deadline
    cut = [t for t in study.trials if (read_outcome(t) or None) and read_outcome(t).interrupted]
    assert cut and all(t.state.name == "FAIL" for t in cut)
    assert finished_count(study) == len(completed(study))
    waiting = [t for t in study.get_trials() if t.state.name == "WAITING"]
    assert any(t.user_attrs.get(RETRY_OF_KEY) == cut[0].number for t in waiting)
    study = search(backend, ToyObjective(), SearchSettings(trials=3, sampler="random", seed=0, isolation="inline"))
    assert finished_count(study) == 3
    assert any(t.user_attrs.get(RETRY_OF_KEY) == cut[0].number and t.state.name == "COMPLETE" for t in study.trials)


DRIVER = """
import sys, yaml
from hybridsearch.search.backends import run_backend
from hybridsearch.search.space import parse_space
from hybridsearch.search.study import SearchSettings
from hybridsearch.search.toy import TOY_SPACE, ToyObjective
backend, run_dir, log = sys.argv[1], sys.argv[2], sys.argv[3]
options = {"address": sys.argv[4]} if backend == "ray" else {}
space = parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml")
try:
    run_backend(backend, space, ToyObjective(sleep=0.6, log=log), f"sqlite:///{run_dir}/study.db",
                SearchSettings(trials=7, sampler="random", seed=0, isolation="inline", heartbeat_interval=1,
                               grace_period=2), run_dir, **options)
except KeyboardInterrupt:
    sys.exit(130)
"""


def _start_driver(backend, tmp_path, log, address):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_AIR_NEW_OUTPUT": "0"}
    return subprocess.Popen([sys.executable, str(script), backend, str(tmp_path), str(log), address or ""], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(log: Path, lines: int, proc, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < lines):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(0.05)
    time.sleep(0.3)  # inside the next trial's evaluation


def _complete_values(tmp_path) -> dict:
    import optuna

    study = optuna.load_study(study_name="hybridsearch", storage=f"sqlite:///{tmp_path / 'study.db'}")
    return {t.number: t.values for t in study.trials if t.state.name == "COMPLETE"}


@pytest.mark.parametrize("how", ["sigkill", "sigint"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stopped_search_resumes_without_losing_or_repeating_trials(backend, how, search, request, tmp_path):
    address = request.getfixturevalue("ray_address") if backend == "ray" else None
    log1, log2 = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    proc = _start_driver(backend, tmp_path, log1, address)
    _wait_for(log1, 3, proc)
    proc.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGINT)
    code = proc.wait(60)
    if how == "sigint":
        assert code == 130
        assert "Traceback" not in proc.stderr.read()  # no worker or thread printed one
    before = _complete_values(tmp_path)
    assert len(before) >= 3
    if how == "sigkill":
        time.sleep(3.5)  # past the heartbeat grace period (2 s; the storage clock has 1 s resolution)
    study = search(backend, ToyObjective(log=str(log2)), SearchSettings(trials=7, sampler="random", seed=0,
                                                                        isolation="inline", heartbeat_interval=1,
                                                                        grace_period=2))
    trials = study.get_trials(deepcopy=False)
    for number, values in before.items():  # nothing completed was lost or re-run
        assert trials[number].state.name == "COMPLETE" and trials[number].values == values
    rerun = [json.loads(line) for line in log2.read_text().splitlines()]
    assert len(rerun) == len(completed(study)) - len(before)
    unfinished = [t for t in trials if t.state.name == "FAIL" and not (read_outcome(t) and read_outcome(t).counts
                                                                       and read_outcome(t).reason)]
    assert len(unfinished) == 1  # the trial running at the stop ...
    retries = [t for t in trials if t.user_attrs.get(RETRY_OF_KEY) == unfinished[0].number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"  # ... ran again, once
    assert finished_count(study) == 7


def test_ray_and_optuna_record_the_same_keys_and_latency_meaning(search, tmp_path):
    studies = {}
    for backend in ("optuna", "ray"):
        (tmp_path / backend).mkdir()
        studies[backend] = search(backend, ToyTeacherObjective(), SearchSettings(trials=4, sampler="random", seed=5,
                                                                                 isolation="inline"),
                                  run_dir=tmp_path / backend)

    def keys(study):
        t = completed(study)[0]
        return ({k for k in t.user_attrs if not k.startswith("backend.")}, set(t.user_attrs[OUTCOME_KEY]),
                set(t.user_attrs[OUTCOME_KEY]["metrics"]))

    assert keys(studies["optuna"]) == keys(studies["ray"])
    rows = {b: {r["trial"]: r for r in trial_rows(s)} for b, s in studies.items()}
    assert [r["params"] for r in rows["optuna"].values()] == [r["params"] for r in rows["ray"].values()]
    for n, r in rows["optuna"].items():
        if r["state"] == "COMPLETE":
            assert r["latency_ms"] == pytest.approx(rows["ray"][n]["latency_ms"])


@pytest.mark.integration
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tiny_teacher_distillation_per_backend(backend, search, request, tmp_path):
    from hybridsearch.distill.context import LatencyProtocol, TaskSource, TeacherSource
    from hybridsearch.search.distill_objective import DistillObjective
    from hybridsearch.search.space import load_space

    data, teacher, space_file = request.getfixturevalue("user_files")
    if backend == "ray":
        request.getfixturevalue("ray_address")
    space = load_space(str(space_file))
    objective = DistillObjective(str(space.path), TaskSource(str(data), text_column="review", label_column="stars"),
                                 TeacherSource(str(teacher)), LatencyProtocol(repeats=3),
                                 cache_dir=str(tmp_path / "cache"), weights_dir=str(tmp_path / "weights"))
    study = run_backend(backend, space, objective, f"sqlite:///{tmp_path / 'study.db'}",
                        SearchSettings(trials=2, sampler="random", isolation="process"), tmp_path)
    assert teacher_row(study) is not None
    done = completed(study)
    assert done, [read_outcome(t).reason for t in study.trials]
    for t in done:
        m = read_outcome(t).metrics
        assert m["speedup"] > 0 and m["latency_ms"] == pytest.approx(teacher_row(study)["latency_ms"] / m["speedup"])
        assert Path(m["extra"]["weights"]).is_dir()


from tests.test_search_cli import user_files  # noqa: E402, F401 - fixture (tiny teacher, CSV task, tiny space)
