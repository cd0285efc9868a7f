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


def test_a_run_made_before_the_trial_record_still_opens_in_study_show_and_export(tmp_path, capsys):
    """Runs written before `search.trial` kept one `outcome` attribute per trial (flat `metrics`, `reason`,
    `precheck`, ... attributes, and run.json's flat objective settings) read the same."""
    from hybridsearch.cli import main
    from hybridsearch.search.distill_objective import DistillObjective, sample_key
    from hybridsearch.search.pareto import front, teacher_row, trial_rows

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = open_run(tmp_path / "old", IDENTITY)
    old_objective = {"space_path": "hybrid", "task_args": {"task": "mr", "text_column": None}, "teacher_source": "T",
                     "cache_dir": None, "device": "cpu", "shape": [1, 64], "threads": None, "repeats": 30,
                     "steps": None, "weights_dir": str(run.path / "weights"), "precheck_repeats": 20,
                     "latency_table": None, "dtype": "float32"}
    meta = json.loads((run.path / "run.json").read_text())
    (run.path / "run.json").write_text(json.dumps({**meta, "objective": old_objective}))
    study = optuna.create_study(storage=run.storage, study_name=run.study_name,
                                directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("teacher", {"dev_score": 0.83, "latency_ms": 20.0, "size_mb": 90.0})
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for i, (state, reason) in enumerate([("COMPLETE", None), ("PRUNED", "over budget: latency"), ("FAIL", "boom")]):
        metrics = {"dev_score": 0.8, "latency_ms": 5.0 + i, "size_mb": 20.0, "speedup": 4.0, "steps": 400}
        attrs = {"seeded": False, "precheck": {"latency_ms": 5.0, "size_mb": 20.0}}
        if state == "COMPLETE":
            attrs.update(metrics=metrics, constraints=[-1.0, -1.0], promoted={"at_step": 400, "extra_steps": 400})
        else:
            attrs.update(reason=reason, rejected=state == "PRUNED")
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState[state], params={"x": 0.1 * i}, distributions=dist, user_attrs=attrs,
            values=[0.8, 5.0, 20.0] if state == "COMPLETE" else None))
    rows = trial_rows(study)
    assert [r["reason"] for r in rows] == [None, "over budget: latency", "boom"]
    assert rows[0]["dev_score"] == 0.8 and rows[0]["promoted_steps"] == 400 and front(rows)[0]["trial"] == 0
    assert teacher_row(study)["dev_score"] == 0.83
    assert main(["study", "show", str(run.path)]) == 0
    assert "boom" in capsys.readouterr().out
    objective = DistillObjective.from_state(old_objective)  # export re-distils with the recorded settings
    assert objective.task.task == "mr" and objective.teacher.path == "T" and objective.latency.shape == (1, 64)
    saved = run.path / "weights" / sample_key({"x": 0.0})
    saved.mkdir(parents=True)
    (saved / "config.json").write_text("{}")
    assert main(["export", str(run.path), "--trial", "0", "--to", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "config.json").exists()
