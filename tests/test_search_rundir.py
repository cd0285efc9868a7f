"""Run directories: a copied or moved run reads its own study, not the one where it was made."""

from __future__ import annotations

import json
import shutil

import optuna

from hybridsearch.search.rundir import default_storage, load_run, open_run

IDENTITY = {"task": "mr:abc", "teacher_fingerprint": "f" * 16, "space_hash": "s" * 16}


def _study_with_one_trial(run) -> None:
    study = optuna.create_study(storage=run.storage, study_name=run.study_name)
    study.enqueue_trial({"x": 1.0})
    study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)


def test_a_copied_run_directory_reads_its_own_study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    made = open_run(tmp_path / "made-here", IDENTITY)
    assert made.storage == default_storage(made.path)
    _study_with_one_trial(made)
    copy = tmp_path / "copied"
    shutil.copytree(made.path, copy)
    shutil.rmtree(made.path)
    run = load_run(copy)
    assert run.storage == default_storage(copy)
    assert len(optuna.load_study(study_name=run.study_name, storage=run.storage).trials) == 1


def test_an_older_run_json_naming_its_original_place_is_read_from_the_copy(tmp_path):
    made = open_run(tmp_path / "gpu-box", IDENTITY)
    _study_with_one_trial(made)
    meta = json.loads((made.path / "run.json").read_text())
    meta["storage"] = "sqlite:////elsewhere/hs-gpu-run/study.db"  # what run.json held before this fix
    (made.path / "run.json").write_text(json.dumps(meta))
    assert load_run(made.path).storage == default_storage(made.path)


def test_an_explicit_storage_url_is_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    run = open_run(tmp_path / "r", IDENTITY, storage=url)
    assert load_run(run.path).storage == url
