"""The search-quality experiment scripts run end to end on a tiny teacher and CSV task (slow)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.test_search_cli import user_files  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    path = ROOT / "experiments" / "search_quality" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hypervolume_of_a_known_front():
    hv = _script("search_vs_random").hypervolume
    # points (score, speed-up) above reference (0.5, 1.0): union of [0.5,0.8]x[1,3] and [0.5,0.7]x[1,4]
    assert hv([(0.8, 3.0), (0.7, 4.0), (0.4, 9.0)], (0.5, 1.0)) == pytest.approx(0.3 * 2 + 0.2 * 1)
    assert hv([(0.4, 9.0)], (0.5, 1.0)) == 0.0


@pytest.mark.slow
def test_search_vs_random_and_proxy_fidelity_run(tmp_path, user_files, capsys):  # noqa: F811
    data, teacher, space = user_files
    extra = ["--task", str(data), "--text-column", "review", "--label-column", "stars", "--teacher", str(teacher),
             "--space", str(space), "--repeats", "3"]
    out = tmp_path / "svr"
    assert _script("search_vs_random").main(["--trials", "3", "--seeds", "1", "--steps", "4", "--out", str(out),
                                             "--", *extra]) == 0
    text = capsys.readouterr().out
    assert "nsga2: median hypervolume" in text and "random: median hypervolume" in text
    assert (out / "hypervolume.csv").read_text().count("\n") == 3  # header + 2 runs
    pf = tmp_path / "pf"
    assert _script("proxy_fidelity").main([str(out / "nsga2-s0"), "--n", "3", "--long-steps", "6",
                                           "--out", str(pf)]) == 0
    summary = json.loads((pf / "proxy_fidelity.json").read_text())
    assert summary["n"] >= 2 and len(summary["rows"]) >= 2
    assert all(r["short_dev_sd"] is not None for r in summary["rows"])


def test_grouped_vs_nsga2_script_runs_and_its_surrogate_rewards_the_combined_seeds():
    g = _script("grouped_vs_nsga2")
    rng = __import__("numpy").random.default_rng(0)
    combined = {"arch.weight_bits": 8, "arch.sparsity": 0.0, "emb.size": 384, "recipe.lr": 2e-4,
                "recipe.losses": "kd_ol+kd_eo", "recipe.temperature": 2.0, "recipe.alpha": 0.5}
    for i in range(6):
        combined[f"layer_{i}.block"] = "transformer" if i % 2 else "skip"
        if i % 2:
            combined.update({f"layer_{i}.heads": 12, f"layer_{i}.ffn": 1536})
    scores = [g.surrogate(combined, rng) for _ in range(50)]
    assert g.TEACHER_MS / scores[0][1] >= g.TARGET_SPEEDUP  # kd-eo's layers at int8: >= 3x in the surrogate
    text = g.main(["--seeds", "2", "--trials", "6", "--toy-trials", "8"])
    assert "optuna: target met in" in text and "grouped: median hypervolume" in text
