"""The one latency protocol used everywhere (search, baselines, experiments).

- forward pass only, tokenization excluded; inputs of a fixed shape (batch, seq),
  padded to the full sequence length (default 1 x 64);
- fixed thread count (default: all cores available to this process), restored after;
- warm-up calls, then `repeats` timed calls per model, *interleaved*: each round calls
  every model once, in a rotating order, so slow drifts of a shared machine hit all
  models alike and the ratios survive (back-to-back runs here drift 10-20%);
- median and p10 / p90 spread per model; on CUDA each call is timed with CUDA events
  after a synchronize;
- a compute dtype (float32 default; float16 / bfloat16 for GPUs): every model, the
  teacher included, runs at that dtype. int8 kernels exist only for float32 on CPU
  (`int8_kernels`); elsewhere int8 layers run dequantized (no int8 speed-up claimed).

`measure_latency` moves float32 models that are not on `device` there (in place); at
another dtype it times cast copies, so the caller's models are left as they were.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass

from hybridsearch.errors import UserError

DEFAULT_SHAPE = (1, 64)


@dataclass
class LatencyStats:
    """Per-model latency in milliseconds over `n` timed calls."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def parse_shape(text: str | tuple | list | None) -> tuple[int, int]:
    """'1x64', '1,64' or (1, 64) -> (batch, seq); `UserError` on anything else."""
    if text is None:
        return DEFAULT_SHAPE
    if isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = str(text).lower().replace(",", "x").split("x")
    try:
        batch, seq = (int(p) for p in parts)
    except (ValueError, TypeError):
        raise UserError(f"bad shape {text!r}; give BATCHxSEQ, e.g. 1x64") from None
    if batch <= 0 or seq <= 0:
        raise UserError(f"bad shape {text!r}; batch and sequence length must be positive")
    return batch, seq


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_device(device: str | None = "cpu"):
    """A torch.device that exists here, else `UserError`."""
    import torch

    name = str(device or "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu or cuda[:N]") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} requested but no CUDA GPU is visible; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"device {name!r} not present: {torch.cuda.device_count()} GPU(s) visible")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UserError(f"device {name!r} requested but MPS is not available; use --device cpu")
    elif dev.type != "cpu":
        raise UserError(f"unsupported device {name!r}; use cpu or cuda[:N]")
    return dev


def resolve_latency_dtype(name: str | None = "float32") -> str:
    """'float32' | 'float16' | 'bfloat16' (aliases fp32 / fp16 / half / bf16); `UserError` otherwise."""
    from hybridsearch.measure.profiler import DTYPES

    key = DTYPES.get(str(name or "float32").lower())
    if key is None:
        raise UserError(f"unknown latency dtype {name!r}; use float32, float16 or bfloat16")
    return key


def cli_latency_dtype(device: str | None, dtype: str | None) -> str:
    """A command line's --dtype, checked against its --device: float16 / bfloat16 are GPU dtypes."""
    key = resolve_latency_dtype(dtype)
    if key != "float32" and not str(device or "cpu").startswith("cuda"):
        raise UserError(f"--dtype {dtype} times models on a GPU; add --device cuda, or use --dtype float32 on CPU")
    return key


def int8_kernels(device: str | None = "cpu", dtype: str | None = "float32") -> bool:
    """Whether int8 layers run torch's int8 kernels here: only on CPU at float32 (eager dynamic
    quantization has no CUDA kernels and takes float32 activations)."""
    return str(device or "cpu").startswith("cpu") and resolve_latency_dtype(dtype) == "float32"


def example_inputs(shape=DEFAULT_SHAPE, vocab_size: int = 1000, device="cpu", seed: int = 0) -> dict:
    """Random token ids of `shape`, [CLS]-free but full length: attention mask all ones."""
    import torch

    batch, seq = parse_shape(shape)
    gen = torch.Generator().manual_seed(seed)
    low = min(1000, max(vocab_size // 2, 1))  # skip BERT's special / unused ids where possible
    ids = torch.randint(low, max(vocab_size, low + 1), (batch, seq), generator=gen)  # (B, T)
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones(batch, seq, dtype=torch.long, device=device),
        "token_type_ids": torch.zeros(batch, seq, dtype=torch.long, device=device),
    }


def _vocab_size(models) -> int:
    sizes = [getattr(getattr(m, "config", None), "vocab_size", None) for m in models.values()]
    sizes = [s for s in sizes if isinstance(s, int) and s > 0]
    return min(sizes) if sizes else 1000


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measure_latency(
    models: dict,
    shape=DEFAULT_SHAPE,
    device: str | None = "cpu",
    threads: int | None = None,
    repeats: int = 30,
    warmup: int = 5,
    inputs: dict | None = None,
    vocab_size: int | None = None,
    dtype: str | None = "float32",
) -> dict[str, LatencyStats]:
    """Time `models` (name -> nn.Module) interleaved, call by call; -> {name: LatencyStats}.

    `inputs` (dict of tensors passed as keyword arguments) defaults to random ids of `shape`.
    `dtype` != float32 times cast copies (build int8 students with `int8_kernels(...)` false).
    """
    import copy

    import torch

    if not models:
        raise UserError("no models to time; pass at least one")
    if repeats <= 0 or warmup < 0:
        raise UserError("repeats must be >= 1 and warmup >= 0")
    dev = resolve_device(device)
    n_threads = int(threads) if threads else available_cores()
    if n_threads <= 0:
        raise UserError(f"threads must be positive, got {threads}")
    if inputs is None:
        inputs = example_inputs(shape, vocab_size or _vocab_size(models), dev)
    else:
        inputs = {k: v.to(dev) for k, v in inputs.items()}
    dtype = resolve_latency_dtype(dtype)
    if dtype != "float32":
        models = {n: copy.deepcopy(m).to(device=dev, dtype=getattr(torch, dtype)) for n, m in models.items()}
    for model in models.values():
        model.eval()
        if dev.type != "cpu":
            model.to(dev)
    names = list(models)
    times: dict[str, list[float]] = {n: [] for n in names}
    cuda = dev.type == "cuda"
    old_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                for name in names:
                    models[name](**inputs)
            for r in range(repeats):
                order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
                for name in order:
                    times[name].append(time_call(models[name], inputs, cuda))
    finally:
        torch.set_num_threads(old_threads)
    return {
        n: LatencyStats(statistics.median(v), _percentile(v, 0.1), _percentile(v, 0.9), len(v))
        for n, v in times.items()
    }


def time_call(model, inputs: dict, cuda: bool) -> float:
    """One forward call in milliseconds (CUDA events and synchronisation on GPU)."""
    if cuda:
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        model(**inputs)
        end.record()
        torch.cuda.synchronize()
        return float(start.elapsed_time(end))
    t0 = time.perf_counter()
    model(**inputs)
    return (time.perf_counter() - t0) * 1000.0
