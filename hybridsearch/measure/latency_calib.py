"""Build a `LatencyTable` by measurement, and check its predictions on unseen students.

Calibration (`calibrate`):
1. enumerate every part the search space can produce (`space_parts`): each block
   configuration (latency-relevant fields only) and each embedding / head config;
2. time each part *as deployed* (a one-layer student through `for_deployment`, its
   layer alone on a fixed (B, T, H) input; the base = embeddings + pooler + classifier)
   interleaved with the teacher, in groups, through `measure.latency`; store
   part median / teacher median;
3. fit the per-kind fallback fits on the parts; time `n_students` random whole students
   from the space with the teacher, in groups as the check does, and fit the correction
   (per part-group multipliers and an intercept, `fit_correction`).

Check (`check`): random students from the space whose latency signature is not in the
calibration set, timed interleaved with the teacher; relative error of the predicted
ratio against the measured ratio (student median / teacher median of the same run).
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass

from hybridsearch.measure.latency_model import (
    LatencyTable,
    _parse,
    arch_keys,
    current_fingerprint,
    has_fallback,
    latency_signature,
    part_features,
    part_group,
)

COMMON_LATENCY_KEYS = {"block", "hidden", "weight_bits", "act_bits"}  # space `layer:` keys every block's latency reads
SYNTHETIC_TASK_TOKENS = 8000  # a `vocab: task` student keeps this many ids when no task is given


def latency_relevant() -> set[str]:
    """Space `layer:` keys that change a layer's latency: the common ones and every block's tagged fields."""
    from hybridsearch.students.blocks import block_infos

    tagged = {f.space_key for info in block_infos().values() for f in info.fields if f.tag and f.space_key}
    return COMMON_LATENCY_KEYS | tagged


# ---- what the space can produce --------------------------------------------------------
def _values(ch, relevant: bool) -> list:
    if ch.kind in ("fixed", "categorical"):
        return list(ch.values) if relevant else [ch.values[0]]
    if not relevant:
        return [ch.low]
    if ch.kind == "int":
        step = int(ch.step or 1)
        grid = list(range(int(ch.low), int(ch.high) + 1, step))
        return grid if len(grid) <= 12 else sorted({grid[round(i * (len(grid) - 1) / 7)] for i in range(8)})
    return [ch.low, ch.high]


def _layer_combos(layer: dict) -> list[dict]:
    """Every assignment of the layer template's active keys (same `when` logic as sampling)."""
    relevant = latency_relevant()
    combos = [{}]
    for key, ch in layer.items():
        nxt = []
        for values in combos:
            if not ch.active(values):
                nxt.append(values)
                continue
            nxt += [{**values, key: v} for v in _values(ch, key in relevant)]
        combos = nxt
    return combos


def freeze_base(teacher_config, task_tokens: bool = True) -> dict:
    """The freeze base (`search.freeze.FreezeBase` fields, as a dict the space accepts) matching the
    teacher's vocabulary; `vocab: task` keeps a synthetic id set."""
    vocab = int(teacher_config.vocab_size)
    tokens = list(range(0, vocab, max(vocab // SYNTHETIC_TASK_TOKENS, 1))) if task_tokens else None
    return {"vocab_size": vocab, "max_positions": int(getattr(teacher_config, "max_position_embeddings", 512)),
            "unk_id": min(100, vocab - 1), "task_tokens": tokens}


def space_parts(space, base) -> dict[str, tuple]:
    """{part key: (arch, layer index or None)}: one small arch per part the space can produce.

    `space` builds the archs (`space.to_arch(resolved values, base)`): measure never imports search.
    """
    from hybridsearch.students.blocks import block_info

    to_arch = space.to_arch
    grp = {g: {k: _values(ch, True) for k, ch in getattr(space, g).items()} for g in ("arch", "emb")}
    arch_opts = [dict(zip(grp["arch"], v)) for v in itertools.product(*grp["arch"].values())]
    emb_opts = [dict(zip(grp["emb"], v)) for v in itertools.product(*grp["emb"].values())]
    layer_opts = _layer_combos(space.layer)
    widths = sorted({v["hidden"] for v in layer_opts if v.get("hidden")})
    costly = [v for v in layer_opts if not block_info(v["block"]).free]  # skip layers have no part
    probe = costly[0] if costly else layer_opts[0]
    parts: dict[str, tuple] = {}
    for a in arch_opts:
        a = {**a, "sharing": "none"}
        for in_h in [a.get("hidden", 384), *widths]:
            for values in costly:
                arch = to_arch({"arch": {**a, "hidden": in_h}, "emb": {}, "layers": [values]}, base)
                parts.setdefault(arch_keys(arch)[1], (arch, 0))
        for e in emb_opts:
            for out_h in [None, *widths]:
                arch = to_arch({"arch": a, "emb": e, "layers": [{**probe, "hidden": out_h}]}, base)
                parts.setdefault(arch_keys(arch)[0], (arch, None))
    return parts


# ---- probes: one part as deployed, timed on its own -----------------------------------------
def _layer_probe(arch, shape, int8: bool = True):
    import torch
    from torch import nn

    from hybridsearch.students.blocks import BlockContext
    from hybridsearch.students.deploy import for_deployment
    from hybridsearch.students.model import HybridStudent

    B, T = shape
    block = for_deployment(HybridStudent(arch), int8=int8).layers["0"]
    x = torch.randn(B, T, arch.hidden, generator=torch.Generator().manual_seed(0))  # (B, T, H_in)

    class LayerProbe(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = block
            self.register_buffer("x", x)  # a buffer: moved and cast with the probe

        def forward(self, input_ids, attention_mask, token_type_ids=None, **_):
            ctx = BlockContext(mask=attention_mask.bool(), token_type_ids=token_type_ids)
            return self.block(self.x, ctx)[0]  # (B, T, H)

    return LayerProbe().eval()


def _base_probe(arch, shape):
    import torch
    from torch import nn

    from hybridsearch.students.blocks import BlockContext
    from hybridsearch.students.model import HybridStudent

    student = HybridStudent(arch).eval()
    B, T = shape
    last = torch.randn(B, T, arch.out_hidden, generator=torch.Generator().manual_seed(0))  # (B, T, H_out)

    class BaseProbe(nn.Module):
        """HybridStudent.forward minus its layers: masks, context, embeddings, pooling, head."""

        def __init__(self):
            super().__init__()
            self.s = student
            self.register_buffer("last", last)  # a buffer: moved and cast with the probe

        def forward(self, input_ids, attention_mask, token_type_ids, **_):
            s = self.s
            mask = attention_mask.bool()  # (B, T)
            BlockContext(mask=mask, token_type_ids=token_type_ids)
            h = s.embeddings(input_ids, token_type_ids)  # (B, T, H0)
            top = h if h.shape[-1] == self.last.shape[-1] else self.last  # (B, T, H_out)
            return s.classifier(s.drop(torch.tanh(s.pooler(s.pool(top, mask))))), h  # (B, C)

    return BaseProbe().eval()


def _deployed_student(arch, int8: bool = True):
    from hybridsearch.students.deploy import for_deployment
    from hybridsearch.students.model import HybridStudent

    return for_deployment(HybridStudent(arch), int8=int8)


# ---- timing in groups, always with the teacher ------------------------------------------------
@dataclass
class Timing:
    settings: dict  # device, threads, repeats, warmup, dtype

    @property
    def int8(self) -> bool:
        """Whether deployed probes get int8 kernels (CPU at float32 only)."""
        from hybridsearch.measure.latency import int8_kernels

        return int8_kernels(self.settings.get("device"), self.settings.get("dtype"))

    def ratios(self, teacher, models: dict, inputs) -> tuple[dict[str, float], float]:
        """{name: median / teacher median} for models timed interleaved with the teacher; teacher ms."""
        from hybridsearch.measure.latency import measure_latency

        stats = measure_latency({"__teacher__": teacher, **models}, inputs=inputs, **self.settings)
        t = stats.pop("__teacher__").median_ms
        return {n: s.median_ms / t for n, s in stats.items()}, t


def _groups(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _progress(total: int, desc: str, show: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="part", disable=not show, leave=False)


def random_archs(space, base, seeds, exclude: set[str] = frozenset(), n: int | None = None):
    """[(seed, arch)] for valid random samples with distinct latency signatures not in `exclude`."""
    from hybridsearch.errors import UserError

    out, seen = [], set(exclude)
    for seed in seeds:
        try:
            arch = space.freeze(space.random_sample(seed), base)[0].validate()
        except UserError:  # e.g. every layer skip: the search rejects it too
            continue
        sig = latency_signature(arch)
        if sig not in seen:
            seen.add(sig)
            out.append((seed, arch))
            if n is not None and len(out) >= n:
                break
    return out


def _fit(rows: list[tuple[list[float], float]], ridge: float = 1e-6) -> list[float]:
    """Least squares of y on x (non-negative result enforced by dropping negative terms once)."""
    import numpy as np

    X = np.array([r[0] for r in rows], dtype=float)
    y = np.array([r[1] for r in rows], dtype=float)
    w = 1.0 / np.maximum(y, 1e-9)  # relative error
    active = np.ones(X.shape[1], dtype=bool)
    for _ in range(X.shape[1]):
        Xa = X[:, active] * w[:, None]
        coef = np.linalg.solve(Xa.T @ Xa + ridge * np.eye(Xa.shape[1]), Xa.T @ (y * w))
        if (coef >= 0).all():
            break
        idx = np.flatnonzero(active)
        active[idx[coef < 0]] = False
        if not active.any():
            return [0.0] * X.shape[1]
    full = np.zeros(X.shape[1])
    full[active] = coef
    return [float(c) for c in full]


def fit_correction(table: LatencyTable, measured: list[tuple], shrink: float = 0.5, iters: int = 4) -> dict:
    """Per-group multipliers and intercept from [(arch, measured ratio)]: relative least squares,
    Huber-reweighted against outliers (a spike on a shared machine), shrunk towards 1 (and b towards 0)."""
    import numpy as np

    groups = sorted({part_group(k) for a, _ in measured for k in arch_keys(a)})
    X = np.zeros((len(measured), len(groups) + 1))
    for i, (a, _) in enumerate(measured):
        for k in arch_keys(a):
            X[i, groups.index(part_group(k))] += table.part_ratio(k)[0]
        X[i, -1] = 1.0
    y = np.array([m for _, m in measured])
    prior = np.array([1.0] * len(groups) + [0.0])
    robust = np.ones(len(y))
    for _ in range(iters):
        w = robust / y  # relative error
        A, t = X * w[:, None], y * w
        coef = np.linalg.solve(A.T @ A + shrink * np.eye(len(prior)), A.T @ t + shrink * prior)
        res = np.abs(X @ coef - y) / y
        cut = 2.0 * 1.4826 * float(np.median(res)) + 1e-9
        robust = np.where(res <= cut, 1.0, cut / np.maximum(res, 1e-12))
    mult = np.clip(coef[:-1], 0.25, 4.0)
    return {**{g: float(m) for g, m in zip(groups, mult)}, "b": float(coef[-1])}


def format_correction(correction: dict) -> str:
    if not correction:
        return "none"
    return ", ".join(f"{k} {v:+.4f}" if k == "b" else f"{k} x{v:.2f}" for k, v in correction.items())


def calibrate(teacher, space, shape=(1, 64), threads=None, device="cpu", repeats: int = 20, warmup: int = 3,
              n_students: int = 30, group: int = 8, student_group: int = 5, progress: bool = True,
              log=print, dtype: str = "float32") -> LatencyTable:
    """Measure the table for `teacher` (a transformers classifier) and `space` here, now, at `dtype`."""
    from hybridsearch.measure.latency import example_inputs, parse_shape, resolve_latency_dtype

    shape = parse_shape(shape)
    dtype = resolve_latency_dtype(dtype)
    fp = current_fingerprint(teacher.config, shape, threads, device, dtype)
    timing = Timing(dict(device=device, threads=fp["threads"], repeats=repeats, warmup=warmup, dtype=dtype))
    inputs = example_inputs(shape, int(teacher.config.vocab_size))
    base = freeze_base(teacher.config)
    parts = space_parts(space, base)
    teacher = teacher.eval()
    entries, teacher_ms = {}, []
    bar = _progress(len(parts) + n_students, "latency calibrate", progress)
    for keys in _groups(sorted(parts), group):
        models = {}
        for k in keys:
            arch, idx = parts[k]
            models[k] = _layer_probe(arch, shape, timing.int8) if idx is not None else _base_probe(arch, shape)
        ratios, t = timing.ratios(teacher, models, inputs)
        entries.update(ratios)
        teacher_ms.append(t)
        bar.update(len(keys))
    table = LatencyTable(fingerprint=fp, teacher_ms=statistics.median(teacher_ms), entries=entries, space=space.hash,
                         meta={"repeats": repeats, "warmup": warmup, "parts": len(parts), "space_path": space.path})
    by_kind: dict[str, list] = {}
    for key, r in entries.items():
        if has_fallback(_parse(key)[0]):
            kind, x = part_features(key, shape)
            by_kind.setdefault(kind, []).append((x, r))
    table.fits = {k: _fit(rows) for k, rows in by_kind.items() if rows}
    students = random_archs(space, base, range(n_students * 20), n=n_students)
    measured = []
    for chunk in _groups(students, student_group):
        ratios, t = timing.ratios(teacher, {str(s): _deployed_student(a, timing.int8) for s, a in chunk}, inputs)
        teacher_ms.append(t)
        measured += [(a, ratios[str(s)]) for s, a in chunk]
        bar.update(len(chunk))
    bar.close()
    table.correction = fit_correction(table, measured) if len(measured) >= 3 else {}
    table.teacher_ms = statistics.median(teacher_ms)
    table.calibration_sigs = [latency_signature(a) for _, a in students]
    table.meta["calibration_students"] = [
        {"seed": s, "parts": arch_keys(a), "measured": m, "parts_sum": sum(table.part_ratio(k)[0] for k in arch_keys(a)),
         "predicted": table.predict(a).ratio} for (s, a), (_, m) in zip(students, measured)]
    log(f"calibrated {len(parts)} parts and {len(students)} students; teacher {table.teacher_ms:.2f} ms; "
        f"correction {format_correction(table.correction)}")
    return table


def check(table: LatencyTable, teacher, space, n: int = 30, repeats: int = 20, warmup: int = 3, group: int = 5,
          device="cpu", seed0: int = 1_000_000, progress: bool = True) -> dict:
    """Time `n` unseen random students with the teacher; relative errors of the predicted ratios."""
    from hybridsearch.measure.latency import example_inputs

    shape = tuple(table.fingerprint["shape"])
    timing = Timing(dict(device=device, threads=table.fingerprint["threads"], repeats=repeats, warmup=warmup,
                         dtype=table.fingerprint.get("dtype", "float32")))
    inputs = example_inputs(shape, int(teacher.config.vocab_size))
    base = freeze_base(teacher.config)
    cands = random_archs(space, base, range(seed0, seed0 + 100 * n), set(table.calibration_sigs), n=n)
    teacher = teacher.eval()
    rows = []
    bar = _progress(len(cands), "latency check", progress)
    for chunk in _groups(cands, group):
        ratios, t = timing.ratios(teacher, {str(s): _deployed_student(a, timing.int8) for s, a in chunk}, inputs)
        for s, a in chunk:
            p = table.predict(a)
            m = ratios[str(s)]
            rows.append({"seed": s, "signature": latency_signature(a), "layers": _describe(a), "parts": arch_keys(a),
                         "measured_ratio": m, "predicted_ratio": p.ratio, "measured_ms": m * t,
                         "predicted_ms": p.latency_ms, "teacher_ms": t, "rel_error": (p.ratio - m) / m,
                         "fallback_parts": len(p.fallback)})
        bar.update(len(chunk))
    bar.close()
    errs = [abs(r["rel_error"]) for r in rows]
    ms_errs = [abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] for r in rows]
    return {"n": len(rows), "median_rel_error": statistics.median(errs), "worst_rel_error": max(errs),
            "mean_signed_error": statistics.mean(r["rel_error"] for r in rows),
            "median_ms_error": statistics.median(ms_errs), "worst_ms_error": max(ms_errs),
            "teacher_ms_now": statistics.median(r["teacher_ms"] for r in rows),
            "teacher_ms_calibration": table.teacher_ms, "rows": rows}


def _describe(arch) -> str:
    """'e128 tran(h4,s32,f768,q8) cnn(k3,dl1,f384) ...' for the check's table (non-zero latency tags)."""
    out = [f"e{arch.embedding_size}{'+task' if arch.embedding.kept_tokens is not None else ''}"]
    for key in arch_keys(arch)[1:]:
        kind, v = _parse(key)
        detail = ",".join(f"{t}{x}" for t, x in v.items() if t not in ("in", "out", "q") and x)
        out.append(f"{kind[:4]}({detail}{',q8' if v['q'] else ''})")
    return " ".join(out)
