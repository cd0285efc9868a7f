"""Baselines on a tiny teacher and task: every method builds, the table and plot are well formed."""

from __future__ import annotations

import csv

import pytest

from hybridsearch.errors import UserError
from tests.distill_helpers import tiny_context


def test_baseline_points_cover_the_survey(tmp_path):
    from hybridsearch.baselines import METHODS, baseline_points, baseline_specs

    ctx = tiny_context(tmp_path)
    cfg, tok = ctx.teacher.model.config, ctx.teacher.tokenizer
    specs = {b.name: b for b in baseline_specs(cfg, ctx.task, steps=5, tokenizer=tok)}
    assert list(specs) == list(METHODS)
    assert specs["ad-lower"].not_applicable and "single sentences" in specs["ad-lower"].not_applicable
    points = baseline_points(cfg, ctx.task, steps=5, tokenizer=tok)
    assert "ad-lower" not in points and len(points) == len(METHODS) - 1
    for name, (arch, recipe) in points.items():
        arch.validate(is_pair=False)
        recipe.validate(student_layers=len(arch.layers), teacher_layers=cfg.num_hidden_layers)
        assert recipe.steps == 5, name
    dq8 = points["dq8"][0]
    assert dq8.embedding.weight_bits == 8 and all(x.weight_bits == 8 and x.act_bits == 8 for x in dq8.layers)
    assert [x.sparsity for x in points["ep70"][0].layers] == [0.7, 0.7]
    assert all(x.heads == 2 for x in points["sp-heads"][0].layers)
    assert len(points["kd-eo"][0].layers) == 1 and points["kd-eo-am"][1].losses == ["kd_ol", "kd_eo", "kd_am", "emb"]
    assert points["kd-ol-bilstm"][0].layers[0].block == "bilstm"
    assert points["ps-albert"][0].share_groups == [[0, 1]]
    assert points["emc-factorized"][0].embedding.size == 16
    kept = points["emc-vocab"][0].embedding.kept_tokens
    assert tok.unk_token_id in kept and len(kept) < tok.vocab_size


def test_select_methods():
    from hybridsearch.baselines import METHODS, select_methods

    assert select_methods(None) == list(METHODS) and select_methods("dq8, ep50") == ["dq8", "ep50"]
    with pytest.raises(UserError, match="unknown baseline"):
        select_methods("dq8,nope")


FAST = ["dq8", "ep50", "ep70", "kd-ol-bilstm", "kd-eo", "ad-lower"]


@pytest.mark.parametrize("subset", [pytest.param(FAST, id="some"), pytest.param(None, id="all", marks=pytest.mark.slow)])
def test_run_baselines_writes_a_table_even_with_a_failed_row(tmp_path, monkeypatch, subset):
    import hybridsearch.baselines as bl

    ctx = tiny_context(tmp_path)
    real = bl.baseline_specs

    def with_broken_kd_eo(*a, **kw):
        specs = real(*a, **kw)
        for b in specs:
            if b.name == "kd-eo":
                b.recipe.layer_map = [99]  # points past the teacher: this row must fail alone
        return specs

    monkeypatch.setattr(bl, "baseline_specs", with_broken_kd_eo)
    out = tmp_path / "out"
    methods = subset or list(bl.METHODS)
    rows = bl.run_baselines(ctx, out, subset, steps=2, log=lambda *_: None)
    assert [r["method"] for r in rows] == ["teacher", bl.MODULES_REFERENCE, *methods]
    by = {r["method"]: r for r in rows}
    assert by["teacher"]["size_pct"] == 100.0 and by["teacher"]["speedup"] == 1.0
    assert by["teacher"]["size_drop_per_score_drop"] is None
    ref = by[bl.MODULES_REFERENCE]  # the teacher's weights in the student modules: the teacher's predictions
    assert ref["status"].startswith("reference") and ref["score"] == by["teacher"]["score"]
    assert ref["p_vs_teacher"] == 1.0 and ref["size_pct"] == 100.0 and ref["speedup"] > 0
    assert by["kd-eo"]["status"].startswith("failed: invalid") and "teacher layer 99" in by["kd-eo"]["status"]
    assert by["ad-lower"]["status"].startswith("not applicable")
    ok = [r for r in rows if r["status"] == "ok"]
    # teacher ok, the reference row a reference, kd-eo failed, ad-lower not applicable
    assert len(ok) == len(methods) - 1, [(r["method"], r["status"]) for r in rows if r["status"] != "ok"]
    for r in ok:
        assert r["score"] is not None and r["speedup"] > 0 and 0 < r["size_pct"] and r["p_vs_teacher"] is not None
    assert by["dq8"]["size_pct"] < 40 and by["ep70"]["size_pct"] < by["ep50"]["size_pct"] < 100
    with open(out / "table.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows) and set(bl.COLUMNS) <= set(table[0])
    md = (out / "table.md").read_text()
    assert md.count("\n| ") == len(rows) + 1 and "| teacher |" in md  # header + one line per row
    assert (out / "pareto.png").stat().st_size > 1000
    # a second run reuses the finished rows
    again = bl.run_baselines(ctx, out, ["dq8"], steps=2, log=lambda *_: None)
    assert again[2]["score"] == by["dq8"]["score"] and again[1]["speedup"] == ref["speedup"]


@pytest.mark.parametrize("extra, message", [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--methods", "dq8,nope"], "unknown baseline method"),
    (["--shape", "1y"], "bad shape"),
    (["--dtype", "float16"], "add --device cuda"),
    (["--dtype", "int4"], "unknown latency dtype"),
    pytest.param(["--device", "cuda:7"], "cuda:7", marks=pytest.mark.skipif(
        __import__("torch").cuda.device_count() > 7, reason="needs a missing GPU")),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, extra, message):
    from hybridsearch.cli import main

    assert main(["baselines", "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_rows_timed_at_another_dtype_or_device_are_not_reused(tmp_path):
    from dataclasses import replace

    import hybridsearch.baselines as bl

    ctx = tiny_context(tmp_path)
    spec = bl.baseline_specs(ctx.teacher.model.config, ctx.task, 2, ctx.teacher.tokenizer)[0]
    keys = {bl._row_key(spec, replace(ctx, device=d, dtype=t))
            for d, t in (("cpu", "float32"), ("cpu", "bfloat16"), ("cuda", "float32"), ("cuda", "float16"))}
    assert len(keys) == 4
