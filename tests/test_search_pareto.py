"""Front and `--best` selection rules, and pareto.csv columns."""

from __future__ import annotations

import csv

from hybridsearch.search.pareto import CSV_COLUMNS, front, select_best, steps_text, write_pareto_csv


def row(trial, dev, lat, size, state="COMPLETE", seeded=False):
    return {"trial": trial, "state": state, "dev_score": dev, "latency_ms": lat, "size_mb": size, "seeded": seeded,
            "params": {"depth": 1}, "score": dev, "speedup": 10.0 / lat}


ROWS = [row(0, 0.80, 5.0, 40), row(1, 0.82, 8.0, 60), row(2, 0.79, 2.0, 20), row(3, 0.70, 1.0, 10),
        row(4, 0.75, 6.0, 50),  # dominated by 0
        row(5, 0.99, 0.5, 1, state="FAIL")]
TEACHER = {"trial": "teacher", "dev_score": 0.805, "latency_ms": 10.0, "size_mb": 90, "score": 0.8}


def test_front_is_complete_and_non_dominated_fastest_first():
    assert [r["trial"] for r in front(ROWS)] == [3, 2, 0, 1]
    assert [r["trial"] for r in front(ROWS, max_latency_ms=4)] == [3, 2]


def test_best_without_budget_is_fastest_within_one_point_of_the_teacher():
    assert select_best(front(ROWS), TEACHER)["trial"] == 0  # 0.80 >= 0.805 - 0.01 > 0.79 (trial 2 is faster)
    strict = dict(TEACHER, dev_score=0.815)
    assert select_best(front(ROWS), strict)["trial"] == 1  # only trial 1 is within a point


def test_best_with_a_budget_is_the_highest_dev_score_meeting_it():
    assert select_best(front(ROWS), TEACHER, max_latency_ms=6)["trial"] == 0
    assert select_best(front(ROWS), TEACHER, max_size_mb=15)["trial"] == 3
    assert select_best(front(ROWS), TEACHER, max_latency_ms=0.1) is None


def test_pareto_csv_has_the_teacher_row_and_the_front(tmp_path):
    path = write_pareto_csv(tmp_path / "pareto.csv", front(ROWS), dict(TEACHER, metric="accuracy"))
    rows = list(csv.DictReader(path.open()))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["role"] for r in rows] == ["teacher", "front", "front", "front", "front"]
    assert rows[1]["trial"] == "3" and rows[1]["seeded"] == "False"


def test_describe_names_every_layer_slot_of_a_fixed_depth_sample():
    from hybridsearch.report import _layers, describe

    sample = {"arch.weight_bits": 8, "layer_0.block": "skip", "layer_1.block": "transformer", "layer_1.heads": 12,
              "layer_2.block": "cnn", "layer_2.kernel": 3}  # no `depth` label: the space fixes it
    assert _layers(sample) == ["skip", "transformer", "cnn"]
    assert describe(sample) == "skip | attn 12h | conv k3 ; arch.weight_bits=8"
    assert describe({**sample, "emb.weight_bits": 32, "recipe.lr": 2e-4}).endswith(
        "; arch.weight_bits=8 emb.weight_bits=32 lr=0.0002")
    assert describe({"depth": 1, "layer_0.block": "cnn", "layer_0.kernel": 5}) == "conv k5"


def test_steps_text_shows_a_promoted_trials_extra_steps():
    assert steps_text({"steps": 400, "promoted_steps": None}) == "400"
    assert steps_text({"steps": 800, "promoted_steps": 400}) == "400+400"
    assert steps_text({"steps": None}) == ""
