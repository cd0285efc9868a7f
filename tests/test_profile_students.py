"""Profiling hybrid students: CNN / BiLSTM / projection rows, exact parameter sums, FLOPs, save/load + CLI."""

from __future__ import annotations

import json

import pytest

from hybridsearch.cli import main

V = 60


def _arch():
    from hybridsearch.students import EmbeddingSpec, LayerSpec, StudentArch

    T = dict(block="transformer", heads=4, head_size=8, ffn=64)
    return StudentArch(
        embedding=EmbeddingSpec(vocab_size=V, size=16, unk_id=1, max_positions=64),
        hidden=32,
        layers=[LayerSpec(**T), LayerSpec(block="cnn", kernel=5, ffn=48),
                LayerSpec(block="cnn", kernel=3, dilation=2, separable=True),
                LayerSpec(block="bilstm", lstm_hidden=12, hidden=24), LayerSpec(block="skip"),
                LayerSpec(**{**T, "heads": 2, "hidden": 32})],
        dropout=0.0, attn_dropout=0.0, pooling="mean", num_labels=3,
    )


@pytest.fixture(scope="module")
def student():
    from hybridsearch.students.model import HybridStudent

    return HybridStudent(_arch()).eval()


def test_student_rows_and_exact_param_sums(student):
    from hybridsearch.measure.components import map_components, param_breakdown

    cmap = map_components(student)
    assert cmap.family == "hybrid-student"
    assert {"cnn", "bilstm", "projection", "attn_core", "ffn"} <= set(cmap.names())
    counts = param_breakdown(student, cmap)
    assert sum(counts.values()) == sum(p.numel() for p in student.parameters())
    lstm = student.layers["3"].mixer
    assert counts["bilstm"] == sum(p.numel() for p in lstm.parameters())
    convs = [student.layers["1"].mixer, student.layers["2"].mixer]
    assert counts["cnn"] == sum(p.numel() for m in convs for p in m.parameters())
    # E=16 -> 32 embedding projection, 32 -> 24 and 24 -> 32 residual projections
    assert counts["projection"] == (16 * 32 + 32) + (32 * 24 + 24) + (24 * 32 + 32)
    assert counts["attn_core"] == 0


@pytest.mark.parametrize("batch,seq", [(1, 8), (2, 16)])
def test_student_flops_match_torch_counter(student, batch, seq):
    from hybridsearch.measure.components import map_components
    from hybridsearch.measure.flops import component_flops, counted_matmul_flops
    from hybridsearch.measure.profiler import make_inputs

    cmap = map_components(student)
    counted = counted_matmul_flops(student, cmap, make_inputs(cmap, batch, seq, "cpu"))
    analytic = component_flops(student.arch, seq, batch)
    for name in cmap.names():
        if name in cmap.uncounted:  # SDPA and LSTM kernels are invisible to the counter on CPU
            continue
        want, got = analytic[name].matmul, counted[name]
        assert abs(want - got) <= 0.01 * max(got, 1), (name, want, got)
    assert analytic["bilstm"].matmul > 0 and analytic["attn_core"].matmul > 0


def test_student_profile_time_and_json(student):
    from hybridsearch.measure.profiler import profile_model

    prof = profile_model(student, seq_len=16, threads=1, repeats=2, warmup=1)
    rows = {c.name: c for c in prof.components}
    assert rows["bilstm"].time_ms > 0 and rows["cnn"].time_ms > 0
    assert rows["attn_core"].counted_matmul_flops is None
    assert prof.total_params == sum(c.params for c in prof.components)
    assert abs(sum(c.time_share for c in prof.components) - 1) < 1e-9


def test_cli_profiles_a_saved_student(student, tmp_path):
    directory = tmp_path / "student"
    student.save(directory)
    out = tmp_path / "prof"
    assert main(["profile", str(directory), "--seq-len", "16", "--repeats", "2", "--warmup", "1",
                 "--threads", "1", "--out", str(out)]) == 0
    data = json.loads((out / "profile.json").read_text())
    assert data["source"] == "local-student" and data["family"] == "hybrid-student"
    names = [c["name"] for c in data["components"]]
    assert "cnn" in names and "bilstm" in names and "projection" in names
    assert data["total_params"] == sum(c["params"] for c in data["components"])
    assert main(["profile", str(directory), "--seq-len", "65"]) == 2  # max_positions 64
    assert main(["profile", str(directory), "--sweep", "heads"]) == 2  # heads sweep needs a BERT config
