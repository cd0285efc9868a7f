"""Slow: analytic FLOPs agree with torch's FlopCounterMode on the bert-base preset at seq 128."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_bert_base_flops_agree_with_torch_counter_within_1_percent():
    from hybridsearch.measure.components import map_components, param_breakdown
    from hybridsearch.measure.flops import component_flops, counted_matmul_flops
    from hybridsearch.measure.presets import load_model
    from hybridsearch.measure.profiler import make_inputs

    model, source = load_model("bert-base")
    assert source == "preset"
    cmap = map_components(model)
    params = param_breakdown(model, cmap)
    assert sum(params.values()) == sum(p.numel() for p in model.parameters()) == 109_483_778
    counted = counted_matmul_flops(model, cmap, make_inputs(cmap, 1, 128, "cpu"))
    analytic = component_flops(model.config, 128, 1)
    for name in ("attn_qkv", "attn_core", "attn_out", "ffn", "head"):
        assert counted[name] > 0
        assert abs(analytic[name].matmul - counted[name]) <= 0.01 * counted[name], name
        if name != "attn_core":  # Linear-only rows: bias + activation add < 1% on top of the matmuls
            assert abs(analytic[name].total - counted[name]) <= 0.01 * counted[name], name
    core = analytic["attn_core"]  # scaling + softmax: 6 FLOPs per score, ~2.3% of its matmuls at H=768
    assert 0.01 < core.other / core.matmul < 0.05
