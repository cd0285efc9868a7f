"""Latency model: predict a student's latency from its `StudentArch` alone, without building it.

A `LatencyTable` holds, for one fingerprint (device name, thread count, input shape,
dtype, torch / transformers versions, teacher shape, model version):

- `teacher_ms`: the teacher's median latency measured during calibration;
- `entries`: per-part latencies *relative to the teacher* measured interleaved with
  it (`measure.latency`), keyed by the latency-relevant fields only:
  `base|...` (embeddings, pooler, classifier, forward overhead) and
  `layer|...` (one block as deployed: type, in / out width, the fields its descriptor
  tags as latency-relevant (heads, head size, FFN, kernel, LSTM size, ...), int8 path);
- `fits`: per part kind, a least-squares fit of the relative latency on MAC counts
  (`part_features`), used for a part the table has no entry for (another space);
- `correction`: per part group (`base`, `<block>.q0|q1`) a multiplier, and `b` an
  intercept: measured ratio ~= sum_g m_g * (sum of the group's part ratios) + b,
  fitted (robust, shrunk towards 1 / 0) on whole students timed during calibration
  the way the search times them; it captures what isolated parts miss;
- `calibration_sigs`: latency signatures of those students (`latency check` avoids them).

Prediction: ratio = sum_g m_g * parts_g + b; ms = ratio * teacher_ms;
speed-up = 1 / ratio. Sparsity and sub-8-bit weights do not change latency
(deployment runs them dense / dequantized, see `students.deploy`); shared layers
still run once per position. The table is built by `measure.latency_calib`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hybridsearch.errors import UserError

MODEL_VERSION = 2
FINGERPRINT_FIELDS = ("device", "threads", "shape", "dtype", "torch", "transformers", "teacher", "model_version")


# ---- keys and features (from the arch alone: no model is built) ----------------------------------
# Block-specific parts come from each block's descriptor (`students.blocks.block_info`): its key is
# the tagged fields (`BlockInfo.latency_rest`), its fallback features `BlockInfo.latency_macs`.
def layer_key(spec, in_hidden: int, out_hidden: int) -> str | None:
    """The latency-relevant description of one layer; None for a free block (skip: no cost)."""
    from hybridsearch.students.blocks import block_info

    info = block_info(spec.block)
    if info.free:
        return None
    int8 = int(spec.weight_bits == 8 and spec.act_bits == 8)
    return f"layer|{spec.block}|{in_hidden}>{out_hidden}|{info.latency_rest(spec)}|q{int8}"


def base_key(arch) -> str:
    """Embeddings (+ E -> hidden projection, + token remap) and pooler / classifier."""
    kept = int(arch.embedding.kept_tokens is not None)
    return f"base|e{arch.embedding_size}>{arch.hidden}|o{arch.out_hidden}|kept{kept}|{arch.pooling}"


def arch_keys(arch) -> list[str]:
    """Every part key of `arch`, base first (skip layers omitted)."""
    keys = [base_key(arch)]
    for spec, (h_in, h_out) in zip(arch.layers, arch.layer_dims()):
        key = layer_key(spec, h_in, h_out)
        if key is not None:
            keys.append(key)
    return keys


def latency_signature(arch) -> str:
    """Short hash of what decides latency (two archs with equal signatures run alike)."""
    return hashlib.sha256("\n".join(arch_keys(arch)).encode()).hexdigest()[:16]


def _parse(key: str) -> tuple[str, dict]:
    """'layer|cnn|384>384|k3.dl1.sep0.f768|q1' -> ('cnn', {'in':384, 'out':384, 'k':3, ..., 'q':1})."""
    parts = key.split("|")
    if parts[0] == "base":
        e, h = parts[1][1:].split(">")
        return "base", {"e": int(e), "in": int(h), "out": int(parts[2][1:]), "kept": int(parts[3][4:])}
    h_in, h_out = parts[2].split(">")
    vals = {"in": int(h_in), "out": int(h_out), "q": int(parts[4][1:])}
    for item in filter(None, parts[3].split(".")):
        name = item.rstrip("0123456789")
        vals[name] = int(item[len(name):])
    return parts[1], vals


def part_group(key: str) -> str:
    """The correction group of a part: 'base' or '<block>.q<int8>'."""
    parts = key.split("|")
    return "base" if parts[0] == "base" else f"{parts[1]}.{parts[4]}"


def has_fallback(kind: str) -> bool:
    """Whether parts of this kind ('base' or a block name) can be predicted by a fit on MAC counts."""
    if kind == "base":
        return True
    from hybridsearch.students.blocks import block_infos

    info = block_infos().get(kind)
    return info is not None and info.latency_macs is not None


def _unit_macs(kind: str, v: dict, N: int) -> int:
    """MACs of a PostLNLayer's wrapper around its mixer: residual projection and FFN."""
    from hybridsearch.students.blocks import block_info, get_block
    from hybridsearch.students.blocks.base import PostLNLayer

    if not issubclass(get_block(kind), PostLNLayer):
        return 0
    ffn = block_info(kind).field("ffn")
    lin = N * v["in"] * v["out"] * (v["in"] != v["out"])  # residual projection
    return lin + 2 * N * v["out"] * (v.get(ffn.tag, 0) if ffn is not None and ffn.tag else 0)  # FFN


def part_features(key: str, shape: tuple[int, int]) -> tuple[str, list[float]]:
    """(kind, [1, float MACs, int8 MACs, attention MACs, sequential steps]) of one part, in millions."""
    kind, v = _parse(key)
    B, T = shape
    N = B * T
    fp = i8 = attn = steps = 0.0
    if kind == "base":
        fp = N * v["e"] * v["in"] * (v["e"] != v["in"]) + B * (v["out"] * v["out"] + 2 * v["out"])
        steps = v["kept"] * N  # token remap gather
    else:
        if not has_fallback(kind):
            raise UserError(f"latency table has no entry for {key} and block {kind!r} declares no latency_macs; "
                            f"rebuild it with hybridsearch latency calibrate --space <the search space>")
        from hybridsearch.students.blocks import block_info

        m = block_info(kind).latency_macs(v, B, T)  # the mixer's own
        lin = _unit_macs(kind, v, N) + m.get("lin", 0)
        fp += m.get("fp", 0.0)
        attn, steps = float(m.get("attn", 0.0)), float(m.get("steps", 0.0))
        if v["q"]:
            i8 += lin
        else:
            fp += lin
    return kind, [1.0, fp / 1e6, i8 / 1e6, attn / 1e6, steps]


# ---- fingerprint -----------------------------------------------------------------------------
def device_name(device: str = "cpu") -> str:
    """CPU model name (from /proc/cpuinfo) or GPU name."""
    import platform

    if str(device).startswith("cuda"):
        import torch

        return "cuda:" + torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return "cpu:" + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu:" + (platform.processor() or platform.machine() or "unknown")


def teacher_signature(config) -> str:
    """The teacher's shape (what its latency depends on), from a transformers config."""
    get = lambda n, d=None: getattr(config, n, d)  # noqa: E731
    return (f"{get('model_type', '?')}:L{get('num_hidden_layers')}:H{get('hidden_size')}:A{get('num_attention_heads')}"
            f":F{get('intermediate_size')}:E{get('embedding_size', get('hidden_size'))}"
            f":attn={get('_attn_implementation', None) or 'default'}")


def current_fingerprint(teacher_config, shape=(1, 64), threads: int | None = None, device: str = "cpu",
                        dtype: str = "float32") -> dict:
    """The fingerprint of a table built here, now, for this teacher / shape / threads."""
    import torch
    import transformers

    from hybridsearch.measure.latency import available_cores, parse_shape

    return {
        "device": device_name(device), "threads": int(threads) if threads else available_cores(),
        "shape": list(parse_shape(shape)), "dtype": dtype, "torch": torch.__version__,
        "transformers": transformers.__version__, "teacher": teacher_signature(teacher_config),
        "model_version": MODEL_VERSION,
    }


def fingerprint_hash(fp: dict) -> str:
    return hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint_diff(built: dict, here: dict) -> list[str]:
    """'name: built X, here Y' for each field that differs."""
    return [f"{k} built {built.get(k)!r}, here {here.get(k)!r}" for k in FINGERPRINT_FIELDS if built.get(k) != here.get(k)]


# ---- the table ---------------------------------------------------------------------------------
@dataclass
class LatencyPrediction:
    """Predicted latency of one arch: ms, ratio to the teacher, speed-up; `fallback` lists parts
    predicted by the per-kind fit (not measured in the table)."""

    latency_ms: float
    ratio: float
    speedup: float
    teacher_ms: float
    parts: dict[str, float] = field(default_factory=dict)
    fallback: list[str] = field(default_factory=list)


@dataclass
class LatencyTable:
    fingerprint: dict
    teacher_ms: float
    entries: dict[str, float]
    space: str = ""
    fits: dict[str, list[float]] = field(default_factory=dict)
    correction: dict[str, float] = field(default_factory=dict)  # group -> multiplier (default 1), "b" -> intercept
    calibration_sigs: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    # -- prediction, from the arch alone --
    def part_ratio(self, key: str) -> tuple[float, bool]:
        """(latency / teacher latency of one part, whether it came from the fit)."""
        if key in self.entries:
            return self.entries[key], False
        kind, x = part_features(key, tuple(self.fingerprint["shape"]))
        coef = self.fits.get(kind)
        if not coef:
            raise UserError(f"latency table has no entry nor fit for {key}; "
                            f"rebuild it with hybridsearch latency calibrate --space <the search space>")
        return max(sum(c * xi for c, xi in zip(coef, x)), 0.0), True

    def predict(self, arch) -> LatencyPrediction:
        """Latency of `arch` (a StudentArch) on the table's device; nothing is built or run."""
        parts, fallback, total = {}, [], self.correction.get("b", 0.0)
        for key in arch_keys(arch):
            r, fitted = self.part_ratio(key)
            parts[key] = parts.get(key, 0.0) + r
            total += self.correction.get(part_group(key), 1.0) * r
            if fitted:
                fallback.append(key)
        ratio = max(total, 1e-6)
        return LatencyPrediction(ratio * self.teacher_ms, ratio, 1.0 / ratio, self.teacher_ms, parts, fallback)

    def cost(self, arch) -> dict:
        """The search precheck's cost dict: latency_ms, speedup, size_mb (as exported)."""
        from hybridsearch.students.size import size_bytes

        p = self.predict(arch)
        return {"latency_ms": p.latency_ms, "speedup": p.speedup, "size_mb": size_bytes(arch) / 1e6,
                "latency_source": "predicted"}

    # -- storage --
    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> LatencyTable:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except FileNotFoundError:
            raise UserError(f"latency table {path} not found; build one with hybridsearch latency calibrate") from None
        except (OSError, ValueError, TypeError) as exc:
            raise UserError(f"latency table {path} is unreadable ({type(exc).__name__}); "
                            "rebuild it with hybridsearch latency calibrate --out FILE") from None


def load_explicit(path, here: dict) -> LatencyTable:
    """A table the user passed (`--latency-table FILE`); UserError when built elsewhere."""
    table = LatencyTable.load(path)
    diff = fingerprint_diff(table.fingerprint, here)
    if diff:
        raise UserError(f"latency table {path} was built for another setting ({'; '.join(diff)}); "
                        "run hybridsearch latency calibrate here, or drop --latency-table")
    return table


def cache_path(fp: dict, space_hash: str, cache_dir=None) -> Path:
    """Where the table for fingerprint `fp` and a space lives in the cache."""
    from hybridsearch.paths import cache_dir as _cache_dir

    return _cache_dir(cache_dir) / "latency" / f"{fingerprint_hash(fp)}-{space_hash}.json"


def cached_table(fp: dict, space_hash: str, cache_dir=None) -> LatencyTable | None:
    """The cached table for exactly this fingerprint and space, or None (missing, stale or unreadable)."""
    path = cache_path(fp, space_hash, cache_dir)
    if not path.is_file():
        return None
    try:
        table = LatencyTable.load(path)
    except UserError:
        return None
    return table if not fingerprint_diff(table.fingerprint, fp) and table.space == space_hash else None


def get_table(teacher, space, shape=(1, 64), threads: int | None = None, device: str = "cpu", cache_dir=None,
              table_path=None, rebuild: bool = False, log=print, dtype: str = "float32",
              **calibrate_kw) -> tuple[LatencyTable, Path, bool]:
    """(table, path, built): the explicit table (`table_path`, refused if foreign), else the cached one
    for this fingerprint and space, else a new one measured now (`latency_calib.calibrate`) and cached.

    teacher: the transformers classifier (only its config is read unless a table is built).
    """
    from hybridsearch.measure.latency import resolve_latency_dtype

    dtype = resolve_latency_dtype(dtype)
    fp = current_fingerprint(teacher.config, shape, threads, device, dtype)
    if table_path:
        return load_explicit(table_path, fp), Path(table_path), False
    path = cache_path(fp, space.hash, cache_dir)
    table = None if rebuild else cached_table(fp, space.hash, cache_dir)
    if table is not None:
        return table, path, False
    from hybridsearch.measure.latency_calib import calibrate

    table = calibrate(teacher, space, shape=tuple(fp["shape"]), threads=fp["threads"], device=device, log=log,
                      dtype=dtype, **calibrate_kw)
    return table, table.save(path), True
