"""`hybridsearch profile`: parameter sums, FLOPs vs torch's counter, time attribution, JSON, errors."""

from __future__ import annotations

import json
import time

import pytest

from hybridsearch.cli import main
from hybridsearch.errors import UserError
from tests.conftest import make_tiny_bert

MATMUL_COMPONENTS = ("attn_qkv", "attn_core", "attn_out", "ffn", "head")


def _tiny_config(**kw):
    from transformers import BertConfig

    base = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=64, num_labels=3)
    base.update(kw)
    return BertConfig(**base)


def _tiny_models():
    """A few BERT-family shapes and classes, random weights, eager attention."""
    from transformers import ElectraConfig, RobertaConfig

    from hybridsearch.measure.presets import model_from_config

    return {
        "bert": model_from_config(_tiny_config()),
        "bert-wide-ffn": model_from_config(_tiny_config(hidden_size=48, num_attention_heads=3, intermediate_size=200,
                                                        num_hidden_layers=3)),
        "roberta": model_from_config(RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=2, intermediate_size=64,
                                                   max_position_embeddings=40)),
        "electra-factorised": model_from_config(ElectraConfig(vocab_size=99, embedding_size=16, hidden_size=32,
                                                              num_hidden_layers=2, num_attention_heads=4,
                                                              intermediate_size=64, max_position_embeddings=64)),
    }


@pytest.fixture(scope="module")
def tiny_models():
    return _tiny_models()


def test_param_sums_are_exact(tiny_models):
    from hybridsearch.measure.components import map_components, param_breakdown

    for name, model in tiny_models.items():
        cmap = map_components(model)
        counts = param_breakdown(model, cmap)
        assert sum(counts.values()) == sum(p.numel() for p in model.parameters()), name
        assert counts["attn_core"] == 0
        cfg = model.config
        H, L = cfg.hidden_size, cfg.num_hidden_layers
        assert counts["attn_qkv"] == L * 3 * (H * H + H), name
        assert counts["attn_out"] == L * (H * H + H), name
        assert counts["ffn"] == L * (2 * H * cfg.intermediate_size + cfg.intermediate_size + H), name
        assert counts["norm_residual"] == L * 2 * 2 * H, name


@pytest.mark.parametrize("batch,seq", [(1, 8), (2, 16)])
def test_analytic_flops_match_torch_counter(tiny_models, batch, seq):
    from hybridsearch.measure.components import map_components
    from hybridsearch.measure.flops import component_flops, counted_matmul_flops
    from hybridsearch.measure.profiler import make_inputs

    for name, model in tiny_models.items():
        cmap = map_components(model)
        counted = counted_matmul_flops(model, cmap, make_inputs(cmap, batch, seq, "cpu"))
        analytic = component_flops(model.config, seq, batch)
        for comp in cmap.names():
            want, got = analytic[comp].matmul, counted[comp]
            if comp in MATMUL_COMPONENTS:
                assert got > 0, (name, comp)
            assert abs(want - got) <= 0.01 * max(got, 1), (name, comp, want, got)


def test_model_flops_bert_base_by_hand():
    from hybridsearch.measure.flops import model_flops
    from hybridsearch.measure.presets import preset_config

    T, H, inter, L = 128, 768, 3072, 12
    matmul = L * (2 * T * (4 * H * H + 2 * H * inter) + 4 * T * T * H) + 2 * H * H + 2 * H * 2
    total = model_flops(preset_config("bert-base"), seq_len=T, batch=1)
    assert matmul < total < 1.02 * matmul


def test_presets_have_published_shapes():
    from hybridsearch.measure.presets import PRESETS, preset_config

    for name in ("bert-base", "bert-large", "bert-medium", "bert-small", "bert-mini", "bert-tiny",
                 "minilm-l6-h384", "minilm-l12-h384", "distilbert-like"):
        assert name in PRESETS
    cfg = preset_config("bert-large")
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (24, 1024, 16, 4096)
    cfg = preset_config("minilm-l6-h384")
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (6, 384, 12, 1536)
    with pytest.raises(UserError):
        preset_config("bert-huge")


def _profile(model, **kw):
    from hybridsearch.measure.profiler import profile_model

    kw = {"seq_len": 16, "threads": 1, "repeats": 3, "warmup": 1, **kw}
    return profile_model(model, **kw)


def test_time_goes_to_the_component_that_spends_it(monkeypatch):
    """A sleep in the FFN activation lands in FFN; a sleep in softmax lands in the attention core."""
    import torch

    from hybridsearch.measure.presets import model_from_config

    class SlowAct(torch.nn.Module):
        def __init__(self, act):
            super().__init__()
            self.act = act

        def forward(self, x):
            time.sleep(0.010)
            return self.act(x)

    model = model_from_config(_tiny_config())
    for layer in model.bert.encoder.layer:
        layer.intermediate.intermediate_act_fn = SlowAct(layer.intermediate.intermediate_act_fn)
    real_softmax = torch.nn.functional.softmax

    def slow_softmax(*a, **k):
        time.sleep(0.025)
        return real_softmax(*a, **k)

    monkeypatch.setattr(torch.nn.functional, "softmax", slow_softmax)
    prof = _profile(model)
    ms = {c.name: c.time_ms for c in prof.components}
    assert ms["ffn"] >= 2 * 10.0
    assert ms["attn_core"] >= 2 * 25.0
    assert ms["ffn"] < ms["attn_core"]  # sleeps overshoot on a busy machine; the order holds
    for other in ("embeddings", "attn_qkv", "attn_out", "norm_residual", "head"):
        assert ms[other] < 10.0, other  # real work of a tiny model: well under a ms on a quiet machine
    fwd = prof.forward_ms
    assert fwd["plain_median"] >= 32.0
    assert abs(fwd["sum_of_component_medians"] - fwd["hooked_median"]) < 0.2 * fwd["hooked_median"]
    shares = sum(c.time_share for c in prof.components)
    assert abs(shares - 1.0) < 1e-9


def test_timeline_partitions_each_run_exactly():
    import torch

    from hybridsearch.measure.components import map_components
    from hybridsearch.measure.presets import model_from_config
    from hybridsearch.measure.profiler import _Timeline, make_inputs

    model = model_from_config(_tiny_config())
    cmap = map_components(model)
    timeline = _Timeline(model, cmap, cuda=False)
    timeline.attach()
    try:
        with torch.inference_mode():
            t0 = time.perf_counter()
            split = timeline.run(make_inputs(cmap, 1, 8, "cpu"))
            wall = (time.perf_counter() - t0) * 1000
    finally:
        timeline.detach()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert {c for c, _ in split} == set(map_components(model).names())
    assert 0 < sum(split.values()) <= wall


def test_cli_writes_json_and_png(tmp_path, capsys):
    _, _, directory = make_tiny_bert(tmp_path)
    out = tmp_path / "prof"
    code = main(["profile", str(directory), "--seq-len", "16", "--batch", "2", "--repeats", "2", "--warmup", "1",
                 "--threads", "1", "--out", str(out)])
    assert code == 0
    data = json.loads((out / "profile.json").read_text())
    assert data["total_params"] == sum(c["params"] for c in data["components"])
    names = [c["name"] for c in data["components"]]
    assert names == ["embeddings", "attn_qkv", "attn_core", "attn_out", "ffn", "norm_residual", "head"]
    for c in data["components"]:
        assert {"name", "params", "bytes", "flops", "time_ms", "time_share", "counted_matmul_flops"} <= set(c)
        assert c["bytes"] == 4 * c["params"]
    assert data["settings"]["batch"] == 2 and data["settings"]["seq_len"] == 16
    assert data["source"] == "local"
    assert (out / "profile.png").stat().st_size > 10_000
    assert "attention core" in capsys.readouterr().out


def test_cli_sweeps(tmp_path):
    _, _, directory = make_tiny_bert(tmp_path)
    out = tmp_path / "sw"
    base = ["profile", str(directory), "--repeats", "2", "--warmup", "1", "--threads", "1", "--out", str(out)]
    assert main(base + ["--seq-len", "16", "--sweep", "heads", "--sweep-values", "1,2,4"]) == 0
    heads = json.loads((out / "sweep_heads.json").read_text())
    assert [p["heads"] for p in heads["points"]] == [1, 2, 4]
    assert len({p["attn_core_matmul_flops"] for p in heads["points"]}) == 1  # matmul FLOPs flat in heads
    assert (out / "sweep_heads.png").exists()
    assert main(base + ["--sweep", "seq-len", "--sweep-values", "8,16,32"]) == 0
    seq = json.loads((out / "sweep_seq_len.json").read_text())
    flops = [p["total_flops"] for p in seq["points"]]
    assert flops == sorted(flops) and flops[0] < flops[-1]
    assert (out / "sweep_seq_len.png").exists()


@pytest.mark.parametrize("argv,needle", [
    (["profile", "bert-huge"], "not a preset"),
    (["profile", "./no/such/model-dir"], "cannot read model"),
    (["profile", "bert-base", "--seq-len", "1000"], "maximum of 512"),
    (["profile", "bert-tiny", "--dtype", "float7"], "unknown dtype"),
    (["profile", "bert-tiny", "--sweep", "heads", "--sweep-values", "3"], "do not divide"),
])
def test_cli_bad_input(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err


def test_cli_bad_model_dir_and_seq(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    assert main(["profile", str(tmp_path / "junk")]) == 2
    assert "cannot load model" in capsys.readouterr().err
    _, _, directory = make_tiny_bert(tmp_path)
    assert main(["profile", str(directory), "--seq-len", "65"]) == 2  # tiny BERT has 64 positions
    assert "maximum of 64" in capsys.readouterr().err


def test_cli_cuda_without_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["profile", "bert-tiny", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_unknown_family_is_a_user_error():
    import torch

    from hybridsearch.measure.components import map_components

    with pytest.raises(UserError, match="no component mapper"):
        map_components(torch.nn.Sequential(torch.nn.Linear(2, 2)))


@pytest.mark.gpu
def test_cuda_profile_runs():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from hybridsearch.measure.presets import model_from_config

    prof = _profile(model_from_config(_tiny_config()), device="cuda")
    assert prof.forward_ms["hooked_median"] > 0
    assert all(c.time_ms >= 0 for c in prof.components)


def test_bytes_follow_dtype():
    from hybridsearch.measure.presets import model_from_config

    prof = _profile(model_from_config(_tiny_config()), dtype="bfloat16", repeats=1, warmup=0)
    assert prof.settings["dtype"] == "bfloat16"
    assert all(c.bytes == 2 * c.params for c in prof.components)
    assert prof.total_bytes == 2 * prof.total_params


def test_bare_encoder_without_pooler_is_mapped():
    from transformers import BertModel

    from hybridsearch.measure.components import map_components, param_breakdown

    model = BertModel(_tiny_config(), add_pooling_layer=False).eval()
    cmap = map_components(model)
    counts = param_breakdown(model, cmap)
    assert counts["head"] == 0 and counts["embeddings"] > 0
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters())
    assert cmap.owner[""][0] == "embeddings"  # the base model's own time is input preparation
    prof = _profile(model, repeats=1, warmup=0)
    assert prof.component("attn_core").time_ms > 0
