"""Several processes writing to one study: SQLite on one machine, PostgreSQL across machines.

SQLite's limit (documented in the README's search section): one machine, a handful of worker
processes on a local disk (not NFS); writers queue on the database lock for up to the busy timeout
(60 s, `search.study.make_storage`). Beyond that, or across machines, use PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from hybridsearch.search.study import finished_count
from hybridsearch.search.trial import read_outcome
from tests.postgres import postgres_url  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import sys
import yaml
from hybridsearch.search.backends import run_backend
from hybridsearch.search.space import parse_space
from hybridsearch.search.study import SearchSettings
from hybridsearch.search.toy import TOY_SPACE, ToyObjective

if __name__ == "__main__":
    url, trials, sleep, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    run_backend("optuna", parse_space(yaml.safe_load(TOY_SPACE), "toy.yaml"), ToyObjective(sleep=sleep), url,
               SearchSettings(trials=trials, objective="multi", sampler="random", seed=seed, isolation="inline",
                              heartbeat_interval=1, grace_period=2))
"""


def _spawn(tmp_path, url, trials, sleep=0.0, seed=0):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), url, str(trials), str(sleep), str(seed)], env=env,
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)


def _load(url):
    import optuna

    return optuna.load_study(study_name="hybridsearch", storage=url)


def _check_consistent(study, trials):
    got = study.trials
    assert [t.number for t in got] == list(range(len(got)))  # numbers unique and dense
    assert finished_count(study) >= trials
    for t in got:
        if t.state.name == "COMPLETE":
            assert len(t.values) == 3 and read_outcome(t).metrics["dev_score"] == t.values[0]
    assert not [t for t in got if t.state.name == "RUNNING"]


def _create(url):
    # the launcher creates the study first: study.open_study has a create race when two
    # processes open a study that does not exist yet (DuplicatedStudyError in the loser)
    from hybridsearch.search.study import SearchSettings, open_study

    open_study(url, SearchSettings(objective="multi", heartbeat_interval=1, grace_period=2))


def _two_workers(tmp_path, url, trials):
    _create(url)
    procs = [_spawn(tmp_path, url, trials, sleep=0.05, seed=s) for s in (1, 2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-2000:]
    study = _load(url)
    _check_consistent(study, trials)
    return study


def test_two_processes_share_one_sqlite_study(tmp_path):
    db = tmp_path / "study.db"
    study = _two_workers(tmp_path, f"sqlite:///{db}", 24)
    assert len(study.trials) <= 24 + 2  # each process stops once the study has enough
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_share_one_postgres_study(tmp_path, postgres_url):  # noqa: F811
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as con:
        con.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    study = _two_workers(tmp_path, postgres_url, 24)
    assert len(study.trials) <= 24 + 2


def test_a_killed_postgres_worker_fails_only_its_trial(tmp_path, postgres_url):  # noqa: F811
    import optuna
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as con:
        con.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    _create(postgres_url)
    victim = _spawn(tmp_path, postgres_url, 6, sleep=30.0, seed=1)  # its first trial outlives it
    deadline = time.time() + 60
    running = []
    while time.time() < deadline and not running:
        try:
            running = [t for t in _load(postgres_url).trials if t.state.name == "RUNNING"]
        except (KeyError, optuna.exceptions.OptunaError):
            pass
        time.sleep(0.2)
    assert running, "the victim never started a trial"
    time.sleep(1.2)  # a heartbeat was recorded
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    time.sleep(3.5)  # past the grace period (2 s)
    survivor = _spawn(tmp_path, postgres_url, 6, sleep=0.0, seed=2)
    _, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err[-2000:]
    study = _load(postgres_url)
    _check_consistent(study, 6)
    dead = study.trials[running[0].number]
    assert dead.state.name == "FAIL" and f"stale.{dead.number}" in study.user_attrs
    assert any(t.user_attrs.get("retry_of") == dead.number and t.state.name == "COMPLETE" for t in study.trials)
