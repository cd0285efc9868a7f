"""`hybridsearch search` end to end on a tiny random teacher and a user's own CSV task, then study / export / report."""

from __future__ import annotations

import csv
import json

import pytest

from hybridsearch.cli import main
from tests.distill_helpers import tiny_bert, tiny_texts

TINY_SPACE = """
name: tiny
depth: [1, 2]
arch: {hidden: 32, act_bits: [32, 8]}
layer:
  block: [transformer, cnn, skip]
  heads: {choices: [2, 4], when: {block: transformer}}
  head_size: {value: 8, when: {block: transformer}}
  ffn: {value: 64, when: {block: [transformer, cnn]}}
  kernel: {value: 3, when: {block: cnn}}
recipe: {losses: [kd_ol], temperature: [1.0, 2.0], steps: 4, batch_size: 16, eval_every: 2, max_length: 16, lr: 1.0e-3}
seeds:
  - name: one-transformer
    sample: {depth: 1, arch.act_bits: 32, layer_0.block: transformer, layer_0.heads: 4, recipe.temperature: 2.0}
"""


@pytest.fixture
def user_files(tmp_path):
    texts, labels = tiny_texts(160, seed=0)
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["review", "stars"])
        w.writerows(zip(texts, ["pos" if y else "neg" for y in labels]))
    model, tok = tiny_bert(tmp_path / "teacher")
    model.save_pretrained(tmp_path / "teacher")
    tok.save_pretrained(tmp_path / "teacher")
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    return data, tmp_path / "teacher", space


@pytest.mark.integration
@pytest.mark.slow
def test_search_end_to_end_on_a_csv_task(tmp_path, user_files, capsys):
    data, teacher, space = user_files
    out = tmp_path / "run"
    argv = ["search", "--task", str(data), "--text-column", "review", "--label-column", "stars",
            "--teacher", str(teacher), "--space", str(space), "--trials", "5", "--repeats", "3", "--out", str(out)]
    assert main(argv) == 0
    rows = list(csv.DictReader((out / "pareto.csv").open()))
    assert rows[0]["role"] == "teacher" and any(r["role"] == "front" for r in rows)
    assert {"trial", "score", "metric", "latency_ms", "speedup", "size_mb", "seeded"} <= set(rows[0])
    for name in ("report.md", "pareto.png", "arch.png", "best/config.json", "run.json"):
        assert (out / name).exists(), name
    from transformers import AutoModelForSequenceClassification

    import hybridsearch  # noqa: F401 - registers the Auto classes

    AutoModelForSequenceClassification.from_pretrained(out / "best")
    # re-running resumes: nothing new to do
    assert main(argv) == 0
    assert "run directory" in capsys.readouterr().out
    assert main(["study", "show", str(out)]) == 0
    assert main(["export", str(out), "--best", "--to", str(tmp_path / "exp")]) == 0
    assert json.loads((tmp_path / "exp" / "config.json").read_text())
    assert main(["report", str(out)]) == 0
    # a trial off the front has no kept weights: export re-distils it from its recorded sample
    front_trials = {int(r["trial"]) for r in rows if r["role"] == "front"}
    from hybridsearch.search.distill_objective import sample_key
    from hybridsearch.search.results import load_study
    from hybridsearch.search.rundir import load_run
    from hybridsearch.search.trial import read_outcome

    study = load_study(load_run(out))
    # every trial was prechecked against the teacher (promotion ranks by it), drift-free like its own latency
    teacher_ms = study.user_attrs["teacher"]["latency_ms"]
    for t in study.trials:
        pre = read_outcome(t).precheck
        assert pre["speedup"] > 0 and pre["latency_ms_raw"] > 0
        assert abs(pre["latency_ms"] - teacher_ms / pre["speedup"]) < 1e-9
    off = [t for t in study.trials if t.state.name == "COMPLETE" and t.number not in front_trials]
    if off:
        assert not (out / "weights" / sample_key(off[0].params)).exists()
        assert main(["export", str(out), "--trial", str(off[0].number), "--to", str(tmp_path / "off")]) == 0
        assert (tmp_path / "off" / "model.safetensors").exists()
    # a different space for the same RUN_DIR is refused
    other = tmp_path / "other.yaml"
    other.write_text(TINY_SPACE.replace("[1, 2]", "[1]"))
    assert main(argv[:-6] + ["--space", str(other), "--trials", "3", "--repeats", "3", "--out", str(out)]) == 2


def test_not_a_run_dir_is_refused(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file.txt").write_text("hi")
    assert main(["study", "show", str(tmp_path / "x")]) == 2
    assert "is not a hybridsearch run" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.slow
def test_retrain_an_arch_json_over_two_seeds(tmp_path, user_files):
    from hybridsearch.search.freeze import FreezeBase
    from hybridsearch.search.space import load_space

    data, teacher, space = user_files
    arch, _ = load_space(str(space)).freeze(
        {"depth": 1, "arch.act_bits": 32, "layer_0.block": "cnn", "recipe.temperature": 1.0},
        FreezeBase(vocab_size=48, unk_id=1, num_labels=2, id2label={0: "neg", 1: "pos"}, max_positions=64))
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(arch.to_json())
    out = tmp_path / "retrained"
    argv = ["retrain", str(arch_file), "--task", str(data), "--text-column", "review", "--label-column", "stars",
            "--teacher", str(teacher), "--steps", "4", "--seeds", "0,1", "--repeats", "3", "--to", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "retrain.json").read_text())
    assert len(summary["tests"]) == 2 and summary["best_seed"] in (0, 1)
    assert (out / "config.json").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_unreachable_budget_and_bad_storage_are_one_line_errors(tmp_path, user_files, capsys):
    data, teacher, space = user_files
    base = ["search", "--task", str(data), "--text-column", "review", "--label-column", "stars",
            "--teacher", str(teacher), "--space", str(space), "--trials", "2", "--repeats", "3"]
    assert main(base + ["--out", str(tmp_path / "r1"), "--max-size-mb", "0.0001"]) == 2
    err = capsys.readouterr().err
    assert "no candidate of" in err and "can meet the budget" in err and len(err.strip().splitlines()) == 1
    assert main(base + ["--out", str(tmp_path / "r2"), "--storage", "postgresql://nobody@127.0.0.1:1/x"]) == 2
    err = capsys.readouterr().err
    assert "cannot open study storage" in err or "database driver missing" in err
