"""Latency model: keys, prediction from the arch alone, cache keyed by fingerprint, foreign tables,
calibrate / check on a tiny teacher and space (seconds)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from hybridsearch.cli import main
from hybridsearch.errors import UserError
from hybridsearch.measure import latency_calib, latency_model
from hybridsearch.measure.latency_model import (
    LatencyTable,
    arch_keys,
    current_fingerprint,
    get_table,
    load_explicit,
)
from hybridsearch.search.space import load_space, parse_space
from hybridsearch.students.arch import EmbeddingSpec, LayerSpec, StudentArch
from tests.conftest import make_tiny_bert

TINY_SPACE = {
    "name": "tiny", "depth": [1, 2],
    "arch": {"hidden": 32, "act_bits": [32, 8]},
    "emb": {"size": [16, 32], "vocab": ["full", "task"]},
    "layer": {
        "block": ["transformer", "cnn", "bilstm", "skip"],
        "heads": {"choices": [1, 2], "when": {"block": "transformer"}},
        "head_size": {"value": 8, "when": {"block": "transformer"}},
        "ffn": {"choices": [32, 64], "when": {"block": ["transformer", "cnn"]}},
        "kernel": {"choices": [3], "when": {"block": "cnn"}},
        "lstm": {"choices": [8], "when": {"block": "bilstm"}},
        "weight_bits": {"choices": [32, 8], "when": {"block": ["transformer", "cnn", "bilstm"]}},
    },
    "recipe": {"steps": 1},
}


def tiny_space():
    return parse_space(TINY_SPACE, "tiny.yaml")


def arch_of(*layers, hidden=32, vocab=64):
    return StudentArch(embedding=EmbeddingSpec(vocab_size=vocab, max_positions=64), hidden=hidden, layers=list(layers))


def tf(heads=2, ffn=64, **kw):
    return LayerSpec(block="transformer", heads=heads, head_size=8, ffn=ffn, **kw)


def hand_table(entries, fp=None, fits=None, correction=None) -> LatencyTable:
    fp = fp or {"device": "cpu:x", "threads": 1, "shape": [1, 8], "dtype": "float32", "torch": "t",
                "transformers": "t", "teacher": "bert", "model_version": latency_model.MODEL_VERSION}
    return LatencyTable(fingerprint=fp, teacher_ms=10.0, entries=entries, fits=fits or {}, correction=dict(correction or {}))


# ---- pure prediction --------------------------------------------------------------------------
def test_prediction_sums_parts_applies_correction_and_ignores_skip_and_sparsity():
    a = arch_of(tf(), LayerSpec(block="skip"), tf(sparsity=0.5, weight_bits=4))
    keys = arch_keys(a)
    assert len(keys) == 3 and keys[1] == keys[2] and keys[1].startswith("layer|transformer")  # skip: no part
    table = hand_table({keys[0]: 0.05, keys[1]: 0.2}, correction={"transformer.q0": 1.1, "b": 0.01})
    p = table.predict(a)
    assert p.ratio == pytest.approx(0.05 + 1.1 * (0.2 + 0.2) + 0.01)
    assert p.latency_ms == pytest.approx(10.0 * p.ratio) and p.speedup == pytest.approx(1 / p.ratio)
    assert p.fallback == []
    cost = table.cost(a)
    assert cost["latency_ms"] == pytest.approx(p.latency_ms) and cost["size_mb"] > 0


def test_int8_only_when_weights_and_activations_are_8_bit():
    k = lambda spec: arch_keys(arch_of(spec))[1]  # noqa: E731
    assert k(tf(weight_bits=8, act_bits=8)).endswith("q1")
    assert k(tf(weight_bits=8, act_bits=32)).endswith("q0")
    assert k(tf(weight_bits=4, act_bits=8)).endswith("q0")


def test_missing_part_uses_fit_and_is_flagged_or_refused():
    a = arch_of(tf(heads=3))
    base = arch_keys(a)[0]
    fits = {"transformer": [0.01, 0.001, 0.0, 0.0, 0.0]}
    p = hand_table({base: 0.05}, fits=fits).predict(a)
    assert p.fallback == [arch_keys(a)[1]] and p.ratio > 0.05
    with pytest.raises(UserError, match="latency calibrate"):
        hand_table({base: 0.05}).predict(a)


def test_prediction_from_arch_alone_builds_no_model(monkeypatch):
    import hybridsearch.students.blocks as blocks
    import hybridsearch.students.deploy as deploy
    import hybridsearch.students.model as model

    def boom(*a, **k):
        raise AssertionError("a model was built")

    monkeypatch.setattr(model.HybridStudent, "__init__", boom)
    monkeypatch.setattr(blocks, "block_from_spec", boom)
    monkeypatch.setattr(deploy, "for_deployment", boom)
    a = arch_of(tf(), LayerSpec(block="cnn", kernel=3, ffn=32))
    table = hand_table({k: 0.1 for k in arch_keys(a)})
    assert table.predict(a).ratio == pytest.approx(0.3)


def test_space_parts_cover_every_sampled_arch():
    base = latency_calib.freeze_base(SimpleNamespace(vocab_size=30522, max_position_embeddings=512))
    space = load_space("hybrid")
    parts = latency_calib.space_parts(space, base)
    for _, arch in latency_calib.random_archs(space, base, range(60)):
        assert set(arch_keys(arch)) <= set(parts)


# ---- cache and fingerprints ---------------------------------------------------------------------------
def test_cache_reused_and_rebuilt_when_fingerprint_changes(monkeypatch, isolated_cache):
    import torch

    calls = []

    def fake_calibrate(teacher, space, shape, threads, device, log=print, **kw):
        calls.append(threads)
        return LatencyTable(fingerprint=current_fingerprint(teacher.config, shape, threads, device), teacher_ms=5.0,
                            entries={}, space=space.hash)

    monkeypatch.setattr(latency_calib, "calibrate", fake_calibrate)
    teacher = SimpleNamespace(config=SimpleNamespace(model_type="bert", num_hidden_layers=2, hidden_size=32,
                                                     num_attention_heads=4, intermediate_size=64))
    space = tiny_space()
    t1, path1, built1 = get_table(teacher, space, (1, 8), threads=1)
    t2, path2, built2 = get_table(teacher, space, (1, 8), threads=1)
    assert (built1, built2) == (True, False) and path1 == path2 and path1.is_relative_to(isolated_cache)
    _, path3, built3 = get_table(teacher, space, (1, 8), threads=2)  # other thread count
    assert built3 and path3 != path1
    monkeypatch.setattr(torch, "__version__", "99.0")  # library upgrade
    assert get_table(teacher, space, (1, 8), threads=1)[2] is True
    monkeypatch.setattr(latency_model, "device_name", lambda device="cpu": "cpu:Another CPU")
    assert get_table(teacher, space, (1, 8), threads=1)[2] is True
    assert len(calls) == 4


def test_foreign_table_refused(tmp_path):
    here = hand_table({}).fingerprint
    table = hand_table({}, fp={**here, "device": "cpu:Some Other CPU", "threads": 16})
    path = table.save(tmp_path / "t.json")
    with pytest.raises(UserError, match="device built 'cpu:Some Other CPU'.*threads built 16"):
        load_explicit(path, here)
    assert load_explicit(hand_table({}).save(tmp_path / "ok.json"), here).teacher_ms == 10.0
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        load_explicit(tmp_path / "bad.json", here)


# ---- measured, tiny ------------------------------------------------------------------------------
@pytest.fixture
def tiny_setup(tmp_path):
    import yaml

    _, _, teacher_dir = make_tiny_bert(tmp_path)
    space_file = tmp_path / "tiny.yaml"
    space_file.write_text(yaml.safe_dump(TINY_SPACE))
    return teacher_dir, space_file


def test_calibrated_model_ranks_bigger_arch_above_smaller(tiny_bert):
    model = tiny_bert[0]
    table = latency_calib.calibrate(model, tiny_space(), shape=(1, 16), threads=1, repeats=5, warmup=1,
                                    n_students=4, progress=False, log=lambda *_: None)
    assert table.teacher_ms > 0 and len(table.entries) == len(latency_calib.space_parts(
        tiny_space(), latency_calib.freeze_base(model.config)))
    small = arch_of(LayerSpec(block="cnn", kernel=3, ffn=32), vocab=model.config.vocab_size)
    big = arch_of(*[tf(heads=2, ffn=64) for _ in range(6)], vocab=model.config.vocab_size)
    assert table.predict(big).latency_ms > 1.5 * table.predict(small).latency_ms
    result = latency_calib.check(table, model, tiny_space(), n=3, repeats=3, warmup=1, progress=False)
    assert result["n"] == 3 and not {r["signature"] for r in result["rows"]} & set(table.calibration_sigs)


def test_cli_calibrate_check_and_foreign_table(tiny_setup, tmp_path, capsys):
    teacher_dir, space_file = tiny_setup
    common = ["--teacher", str(teacher_dir), "--space", str(space_file), "--shape", "1,8", "--threads", "1",
              "--repeats", "3", "--warmup", "1", "--no-progress"]
    out_table = tmp_path / "table.json"
    assert main(["latency", "calibrate", *common, "--students", "3", "--out", str(out_table)]) == 0
    assert "built latency table" in capsys.readouterr().out
    assert main(["latency", "check", *common, "--n", "2", "--out", str(tmp_path / "check.json")]) == 0
    out = capsys.readouterr().out
    assert "using cached latency table" in out and "median" in out and "worst" in out
    assert json.loads((tmp_path / "check.json").read_text())["n"] == 2
    data = json.loads(out_table.read_text())
    data["fingerprint"]["device"] = "cuda:Some GPU"
    out_table.write_text(json.dumps(data))
    assert main(["latency", "check", *common, "--n", "2", "--latency-table", str(out_table)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: latency table") and "device" in err and "\n" not in err


def test_fit_correction_recovers_group_multipliers_despite_an_outlier():
    import random

    tfk, cnk = arch_keys(arch_of(tf()))[1], arch_keys(arch_of(LayerSpec(block="cnn", kernel=3, ffn=32)))[1]
    base = arch_keys(arch_of(tf()))[0]
    table = hand_table({base: 0.02, tfk: 0.1, cnk: 0.05})
    rng, measured = random.Random(0), []
    for i in range(30):
        n_tf, n_cnn = rng.randint(0, 3), rng.randint(0, 3)
        layers = [tf() for _ in range(n_tf)] + [LayerSpec(block="cnn", kernel=3, ffn=32) for _ in range(n_cnn)]
        a = arch_of(*(layers or [tf()]))
        truth = 0.02 + 1.3 * 0.1 * max(n_tf, not layers) + 0.8 * 0.05 * n_cnn + 0.01
        measured.append((a, truth * (3.0 if i == 7 else 1 + rng.uniform(-0.02, 0.02))))
    corr = latency_calib.fit_correction(table, measured)
    assert corr["transformer.q0"] == pytest.approx(1.3, rel=0.08) and corr["cnn.q0"] == pytest.approx(0.8, rel=0.1)
    table.correction = corr
    a = arch_of(tf(), tf(), LayerSpec(block="cnn", kernel=3, ffn=32))
    assert table.predict(a).ratio == pytest.approx(0.02 + 1.3 * 0.2 + 0.8 * 0.05 + 0.01, rel=0.05)


def test_search_precheck_uses_the_latency_model_instead_of_timing(monkeypatch):
    """With a latency table, the search's precheck predicts latency from the arch alone (no timing)."""
    from hybridsearch.distill.context import TaskSource, TeacherSource
    from hybridsearch.measure import latency
    from hybridsearch.search import distill_objective

    arch = arch_of(tf(heads=2, ffn=64))
    table = hand_table({key: 0.5 for key in arch_keys(arch)})
    objective = distill_objective.DistillObjective("tiny.yaml", TaskSource("x.csv"), TeacherSource("teacher-dir"),
                                                   latency_table="table.json")
    objective._table = table
    objective._ctx = SimpleNamespace(task=SimpleNamespace(spec=SimpleNamespace(is_pair=False)))
    monkeypatch.setattr(objective, "freeze", lambda sample: (arch, None))

    def no_timing(*_a, **_k):
        raise AssertionError("the candidate was timed")

    monkeypatch.setattr(latency, "measure_latency", no_timing)
    cost = objective.precheck({})
    assert cost == table.cost(arch) and cost["latency_source"] == "predicted"
    state = objective.__getstate__()  # what worker processes and run.json get: the setting, not the table
    assert state["latency_table"] == "table.json" and "_table" not in state


def test_calibrate_at_another_dtype_records_it_and_casts_the_probes(tiny_bert):
    """bfloat16 on CPU stands in for a GPU's float16 / bfloat16: probes (buffers included) are cast,
    int8 layers run dequantized, and the table's fingerprint names the dtype."""
    import torch

    model = tiny_bert[0]
    table = latency_calib.calibrate(model, tiny_space(), shape=(1, 8), threads=1, repeats=2, warmup=1,
                                    n_students=3, progress=False, log=lambda *_: None, dtype="bf16")
    assert table.fingerprint["dtype"] == "bfloat16"
    assert next(model.parameters()).dtype == torch.float32
    result = latency_calib.check(table, model, tiny_space(), n=2, repeats=2, warmup=1, progress=False)
    assert result["n"] == 2
