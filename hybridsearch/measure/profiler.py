"""Where a model spends parameters, memory, FLOPs and time, per named component.

Timing method (docs/profile.md has the long form): every module named by the
component mapper gets a forward pre-hook and a forward hook that stamp a clock
(`time.perf_counter_ns` on CPU; CUDA events on the current stream on GPU, read after
one synchronize). The stamps cut one forward pass into consecutive intervals; each
interval belongs to the innermost hooked module running at that moment, and that
module's (component, part) from the mapper owns it. So the components partition the
hooked forward's wall time exactly: nothing is left over, nothing is counted twice.
The same model is also timed without hooks ("plain"), interleaved call by call with
the hooked runs; the difference is reported as the hook overhead, not hidden.
Per component: median over `repeats` runs (after `warmup` runs), p10 / p90.
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass, field

from hybridsearch.errors import UserError
from hybridsearch.measure.components import ComponentMap, map_components, param_breakdown
from hybridsearch.measure.latency import time_call

DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
          "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


@dataclass
class ComponentProfile:
    """One row of the profile. FLOPs are per forward pass of the profiled input shape."""

    name: str
    label: str
    short: str
    params: int
    bytes: int
    flops: int
    matmul_flops: int
    other_flops: int
    counted_matmul_flops: int | None
    time_ms: float
    time_p10_ms: float
    time_p90_ms: float
    param_share: float = 0.0
    flops_share: float = 0.0
    time_share: float = 0.0
    time_parts: dict[str, float] = field(default_factory=dict)


@dataclass
class Profile:
    """A whole profile; `to_dict()` is what `profile.json` holds."""

    model: str
    source: str
    family: str
    architecture: str
    config: dict
    settings: dict
    total_params: int
    total_bytes: int
    total_flops: int
    forward_ms: dict
    components: list[ComponentProfile]
    environment: dict

    def to_dict(self) -> dict:
        data = asdict(self)
        data["schema"] = "hybridsearch.profile/1"
        return data

    def component(self, name: str) -> ComponentProfile:
        return next(c for c in self.components if c.name == name)


def resolve_dtype(name: str):
    import torch

    key = DTYPES.get(str(name).lower())
    if key is None:
        raise UserError(f"unknown dtype {name!r}; use float32, float16 or bfloat16")
    return getattr(torch, key)


def max_seq_len(model) -> int | None:
    """Longest input `model` accepts (from its component map), None if unbounded."""
    return map_components(model).max_positions


def check_shape(limit: int | None, batch: int, seq_len: int) -> None:
    """`UserError` unless batch, seq_len > 0 and seq_len <= limit (None: no limit)."""
    if batch <= 0 or seq_len <= 0:
        raise UserError(f"batch and seq-len must be positive, got batch={batch} seq-len={seq_len}")
    if limit is not None and seq_len > limit:
        raise UserError(f"seq-len {seq_len} is past this model's maximum of {limit} positions; use --seq-len <= {limit}")


class _Timeline:
    """Hooks that stamp enter/exit of mapped modules; partitions one forward's time."""

    def __init__(self, model, cmap: ComponentMap, cuda: bool):
        self.model, self.cmap, self.cuda = model, cmap, cuda
        modules = dict(model.named_modules())
        missing = [n for n in cmap.owner if n not in modules]
        if "" not in cmap.owner:
            raise ValueError("a component mapper must map the root module ('') so all time has an owner")
        if missing:
            raise UserError(f"component mapper names modules the model lacks: {missing[:3]}")
        self.names = list(cmap.owner)
        self.modules = [modules[n] for n in self.names]
        self.events: list = []
        self.handles: list = []

    def _stamp(self):
        if self.cuda:
            import torch

            ev = torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter_ns()

    def attach(self) -> None:
        for idx, module in enumerate(self.modules):
            # prepend: stamp before any other pre-hook (e.g. activation fake-quant) runs
            self.handles.append(module.register_forward_pre_hook(self._pre(idx), prepend=True))
            self.handles.append(module.register_forward_hook(self._post(idx)))

    def detach(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _pre(self, idx):
        def hook(_module, _args):
            self.events.append((self._stamp(), 1, idx))

        return hook

    def _post(self, idx):
        def hook(_module, _args, _output):
            self.events.append((self._stamp(), -1, idx))

        return hook

    def run(self, inputs: dict) -> dict[tuple[str, str], float]:
        """One hooked forward; -> {(component, part): ms}, summing to its wall time."""
        if self.cuda:
            import torch

            torch.cuda.synchronize()
        self.events = []
        start = self._stamp()
        self.model(**inputs)
        end = self._stamp()
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            clock = [start.elapsed_time(ev) for ev, _, _ in self.events]
            t_end = start.elapsed_time(end)
        else:
            clock = [(t - start) / 1e6 for t, _, _ in self.events]
            t_end = (end - start) / 1e6
        stack = [self.names.index("")]
        out: dict[tuple[str, str], float] = {}
        prev = 0.0
        for t, (_, kind, idx) in zip(clock, self.events):
            self._add(out, stack[-1], t - prev)
            if kind > 0:
                stack.append(idx)
            else:
                stack.pop()
            prev = t
        self._add(out, stack[-1], t_end - prev)
        return out

    def _add(self, out, idx, ms: float) -> None:
        key = self.cmap.owner[self.names[idx]]
        out[key] = out.get(key, 0.0) + ms


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def make_inputs(cmap: ComponentMap, batch: int, seq_len: int, device) -> dict:
    """Random full-length token ids (no padding) for the model's vocabulary."""
    from hybridsearch.measure.latency import example_inputs

    inputs = example_inputs((batch, seq_len), cmap.vocab_size, device)
    if not cmap.type_vocab_size:
        inputs.pop("token_type_ids")
    return inputs


def time_components(model, cmap: ComponentMap, inputs: dict, *, cuda: bool, repeats: int, warmup: int,
                    round_offset: int = 0):
    """Interleaved hooked / plain runs -> (per-(component, part) ms lists, hooked totals, plain totals).

    Hooked goes first in even rounds, plain in odd ones (`round_offset` continues the count).
    """
    import torch

    timeline = _Timeline(model, cmap, cuda)
    parts: dict[tuple[str, str], list[float]] = {}
    hooked: list[float] = []
    plain: list[float] = []
    with torch.inference_mode():
        for r in range(warmup + repeats):
            for hooked_turn in ((True, False) if (r + round_offset) % 2 == 0 else (False, True)):
                if hooked_turn:
                    timeline.attach()
                    try:
                        split = timeline.run(inputs)
                    finally:
                        timeline.detach()
                    if r >= warmup:
                        hooked.append(sum(split.values()))
                        for key in set(parts) | set(split):
                            parts.setdefault(key, [0.0] * (len(hooked) - 1)).append(split.get(key, 0.0))
                else:
                    ms = time_call(model, inputs, cuda)
                    if r >= warmup:
                        plain.append(ms)
    return parts, hooked, plain


@dataclass
class _Job:
    """One model at one shape, ready to time; `parts/hooked/plain` accumulate over rounds."""

    model: object
    cmap: ComponentMap
    inputs: dict
    name: str
    source: str
    batch: int
    seq_len: int
    params: dict
    total_params: int
    elem: int
    flops: dict
    counted: dict | None = None
    parts: dict = field(default_factory=dict)
    hooked: list = field(default_factory=list)
    plain: list = field(default_factory=list)


def _settings(device, dtype, threads, repeats, warmup):
    from hybridsearch.measure.latency import available_cores, resolve_device

    if repeats < 1 or warmup < 0:
        raise UserError("repeats must be >= 1 and warmup >= 0")
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype)
    n_threads = int(threads) if threads else available_cores()
    if n_threads <= 0:
        raise UserError(f"threads must be positive, got {threads}")
    return dev, torch_dtype, n_threads


def _prepare(model, name, source, batch, seq_len, dev, torch_dtype) -> _Job:
    import torch

    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", "eager") not in ("eager", None):
        config._attn_implementation = "eager"  # so the attention core runs as visible ops
    cmap = map_components(model)
    check_shape(cmap.max_positions, batch, seq_len)
    model.eval().to(device=dev, dtype=torch_dtype)
    params = param_breakdown(model, cmap)
    total_params = sum(p.numel() for p in model.parameters())
    assert sum(params.values()) == total_params, "component parameter sums must equal the model's"
    return _Job(model, cmap, make_inputs(cmap, batch, seq_len, dev), name, source, batch, seq_len, params,
                total_params, torch.empty((), dtype=torch_dtype).element_size(), cmap.flops(seq_len, batch))


def profile_models(jobs: dict, *, device: str = "cpu", dtype: str = "float32", threads: int | None = None,
                   repeats: int = 10, warmup: int = 3, count_flops: bool = True, source: str = "object") -> dict:
    """Profile several (model, batch, seq_len) jobs, interleaved round by round; -> {key: Profile}.

    `jobs`: {key: (model, batch, seq_len)}; the same model may appear in several jobs.
    Each round runs every job once (hooked and plain), in a rotating order, so slow
    drifts of a shared machine hit all jobs alike (as in `measure.latency`).
    """
    import torch

    from hybridsearch.measure.flops import counted_matmul_flops

    dev, torch_dtype, n_threads = _settings(device, dtype, threads, repeats, warmup)
    prepared = {k: _prepare(m, str(k), source, b, t, dev, torch_dtype) for k, (m, b, t) in jobs.items()}
    keys = list(prepared)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        for job in prepared.values():
            if count_flops:
                job.counted = counted_matmul_flops(job.model, job.cmap, job.inputs)
        for r in range(warmup + repeats):
            for key in keys[r % len(keys):] + keys[: r % len(keys)]:
                job = prepared[key]
                try:
                    parts, hooked, plain = time_components(job.model, job.cmap, job.inputs, cuda=dev.type == "cuda",
                                                           repeats=int(r >= warmup), warmup=int(r < warmup),
                                                           round_offset=r)
                except RuntimeError as exc:
                    raise UserError(f"the model cannot run in {dtype} on {dev}: {str(exc).splitlines()[0][:160]}; "
                                    "try --dtype float32") from None
                _merge(job, parts, hooked, plain)
    finally:
        torch.set_num_threads(old_threads)
    settings = dict(device=str(dev), dtype=str(torch_dtype).replace("torch.", ""), threads=n_threads,
                    repeats=repeats, warmup=warmup, attn_implementation="eager")
    return {k: _assemble(job, settings, dev) for k, job in prepared.items()}


def _merge(job: _Job, parts: dict, hooked: list, plain: list) -> None:
    n_old, n_new = len(job.hooked), len(hooked)
    for key in set(job.parts) | set(parts):
        job.parts.setdefault(key, [0.0] * n_old).extend(parts.get(key, [0.0] * n_new))
    job.hooked.extend(hooked)
    job.plain.extend(plain)


def profile_model(
    model,
    *,
    name: str = "model",
    source: str = "object",
    batch: int = 1,
    seq_len: int = 128,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int | None = None,
    repeats: int = 10,
    warmup: int = 3,
    count_flops: bool = True,
) -> Profile:
    """Profile `model` (moved to device / dtype in place) on random (batch, seq_len) ids."""
    return profile_models({name: (model, batch, seq_len)}, device=device, dtype=dtype, threads=threads,
                          repeats=repeats, warmup=warmup, count_flops=count_flops, source=source)[name]


def _assemble(job: _Job, settings: dict, dev) -> Profile:
    cmap, parts, hooked, plain = job.cmap, job.parts, job.hooked, job.plain
    rows = []
    for comp in cmap.components:
        series = [vals for (c, _p), vals in parts.items() if c == comp.name]
        per_run = [sum(v[i] for v in series) for i in range(len(hooked))] if series else [0.0] * len(hooked)
        f = job.flops[comp.name]
        rows.append(ComponentProfile(
            name=comp.name, label=comp.label, short=comp.short or comp.label, params=job.params[comp.name],
            bytes=job.params[comp.name] * job.elem, flops=f.total, matmul_flops=f.matmul, other_flops=f.other,
            counted_matmul_flops=None if job.counted is None or comp.name in cmap.uncounted else job.counted[comp.name],
            time_ms=statistics.median(per_run), time_p10_ms=_pct(per_run, 0.1), time_p90_ms=_pct(per_run, 0.9),
            time_parts={p: statistics.median(v) for (c, p), v in sorted(parts.items()) if c == comp.name},
        ))
    total_flops = sum(r.flops for r in rows)
    total_time = sum(r.time_ms for r in rows)
    for r in rows:
        r.param_share = r.params / job.total_params if job.total_params else 0.0
        r.flops_share = r.flops / total_flops if total_flops else 0.0
        r.time_share = r.time_ms / total_time if total_time else 0.0
    hooked_med, plain_med = statistics.median(hooked), statistics.median(plain)
    return Profile(
        model=job.name, source=job.source, family=cmap.family, architecture=type(job.model).__name__,
        config=dict(cmap.summary), settings=dict(batch=job.batch, seq_len=job.seq_len, **settings),
        total_params=job.total_params, total_bytes=job.total_params * job.elem, total_flops=total_flops,
        forward_ms=dict(
            sum_of_component_medians=total_time,
            hooked_median=hooked_med, hooked_p10=_pct(hooked, 0.1), hooked_p90=_pct(hooked, 0.9),
            plain_median=plain_med, plain_p10=_pct(plain, 0.1), plain_p90=_pct(plain, 0.9),
            hook_overhead=hooked_med - plain_med,
        ),
        components=rows, environment=_environment(dev),
    )


def _environment(dev) -> dict:
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "machine": platform.machine(), "processor": platform.processor()}
    if dev.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(dev)
    return env
