"""The latency protocol: ordering, stats, shapes, threads restored, bad devices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hybridsearch.errors import UserError
from hybridsearch.measure.latency import LatencyStats, measure_latency, parse_shape, resolve_device


class _MLP(nn.Module):
    def __init__(self, width: int, depth: int):
        super().__init__()
        self.emb = nn.Embedding(1000, width)
        self.body = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.body(self.emb(input_ids))  # (B, T, W)


def test_larger_model_is_slower_and_stats_are_consistent():
    torch.manual_seed(0)
    models = {"big": _MLP(512, 8), "small": _MLP(32, 1)}
    before = torch.get_num_threads()
    stats = measure_latency(models, shape=(4, 64), threads=1, repeats=15, warmup=2)
    assert torch.get_num_threads() == before
    assert set(stats) == {"big", "small"}
    for s in stats.values():
        assert isinstance(s, LatencyStats) and s.n == 15
        assert 0 < s.p10_ms <= s.median_ms <= s.p90_ms
    assert stats["big"].median_ms > 3 * stats["small"].median_ms


def test_parse_shape_and_bad_input():
    assert parse_shape("2x32") == (2, 32)
    assert parse_shape("1,64") == (1, 64)
    assert parse_shape(None) == (1, 64)
    for bad in ("64", "ax3", "0x4"):
        with pytest.raises(UserError):
            parse_shape(bad)
    with pytest.raises(UserError):
        measure_latency({}, repeats=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the no-GPU message")
def test_missing_device_is_a_user_error():
    with pytest.raises(UserError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(UserError):
        resolve_device("tpu")
    with pytest.raises(UserError, match="no CUDA GPU"):
        measure_latency({"m": _MLP(8, 1)}, device="cuda:0", repeats=1)


def test_other_dtype_times_cast_copies_and_leaves_models_alone():
    from hybridsearch.measure.latency import int8_kernels

    model = _MLP(16, 2)
    stats = measure_latency({"m": model}, shape=(1, 8), threads=1, repeats=2, warmup=1, dtype="bf16")
    assert stats["m"].n == 2
    assert next(model.parameters()).dtype == torch.float32  # the caller's model was not cast
    assert int8_kernels("cpu", "float32") and not int8_kernels("cpu", "bfloat16")
    assert not int8_kernels("cuda", "float32")
    with pytest.raises(UserError, match="unknown latency dtype"):
        measure_latency({"m": model}, repeats=1, dtype="int4")


def test_cli_gpu_dtypes_need_a_gpu():
    from hybridsearch.measure.latency import cli_latency_dtype

    assert cli_latency_dtype("cpu", "fp32") == "float32"
    assert cli_latency_dtype("cuda:0", "fp16") == "float16"
    with pytest.raises(UserError, match="add --device cuda"):
        cli_latency_dtype("cpu", "bf16")
