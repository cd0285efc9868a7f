"""Size accounting from the `StudentArch` alone, exactly as `export.save_student` stores it.

The tensor list comes from building the student on torch's "meta" device (no
memory, no weights, no files) and reading its compression plan
(`compress.build_plan`). Each tensor costs:

- compressible weights at b bits: values at b bits (32: float32, 16: float16,
  8: int8, 4 / 3 / 2: sub-byte codes packed into a bitstream), plus one float32
  scale per output channel when b <= 8;
- pruned weights (sparsity s, floor(s*n) zeros): the cheaper of
  dense (all n values) and bitmap (ceil(n/8) bytes of presence bits + the
  n - floor(s*n) non-zero values). A CSR-style index list needs at least one
  byte per non-zero, which only beats the bitmap above 87.5% sparsity (and by a
  hair at the 90% maximum), so it is not offered;
- everything else (biases, LayerNorms, pooler, classifier, the kept-vocabulary
  remap table as int32): 4 bytes per element.
Shared layers exist once in the model, so they are counted once; residual
projections, the embedding projection and the classifier head are included.
The safetensors header (about 100 bytes per stored tensor) is not counted.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TensorCost:
    name: str
    shape: tuple[int, ...]
    bits: int
    sparsity: float
    layout: str  # "dense" | "bitmap" (compressible weights) | "plain" (other parameters) | "buffer"
    nbytes: int
    stored_values: int  # values actually stored (non-zeros for bitmap layout)


def value_nbytes(count: int, bits: int) -> int:
    """Bytes for `count` weight values at `bits` bits (sub-byte widths packed)."""
    if bits >= 32:
        return 4 * count
    if bits == 16:
        return 2 * count
    return (count * bits + 7) // 8


def entry_layout(numel: int, pruned: int, bits: int) -> tuple[str, int]:
    """(layout, value+index bytes) of a weight tensor: the cheaper of dense and bitmap."""
    dense = value_nbytes(numel, bits)
    if pruned <= 0:
        return "dense", dense
    bitmap = math.ceil(numel / 8) + value_nbytes(numel - pruned, bits)
    return ("bitmap", bitmap) if bitmap < dense else ("dense", dense)


def entry_cost(entry) -> TensorCost:
    """Cost of one `compress.PlanEntry`."""
    layout, nbytes = entry_layout(entry.numel, entry.pruned, entry.bits)
    if entry.bits <= 8:
        nbytes += 4 * entry.shape[0]  # per-channel float32 scales
    stored = entry.numel - entry.pruned if layout == "bitmap" else entry.numel
    return TensorCost(entry.name, entry.shape, entry.bits, entry.sparsity, layout, nbytes, stored)


def meta_student(arch):
    """The HybridStudent of `arch` on the meta device (shapes only)."""
    import torch

    from hybridsearch.students.model import HybridStudent

    with torch.device("meta"):
        return HybridStudent(arch)


@functools.lru_cache(maxsize=256)
def _costs_cached(arch_json: str) -> tuple[TensorCost, ...]:
    from hybridsearch.students.arch import StudentArch
    from hybridsearch.students.compress import build_plan

    arch = StudentArch.from_json(arch_json)
    model = meta_student(arch)
    plan = build_plan(model, arch)
    costs = [entry_cost(e) for e in plan.entries]
    for name, (shape, _dtype, is_param) in plan.other.items():
        n = math.prod(shape)
        costs.append(TensorCost(name, shape, 32, 0.0, "plain" if is_param else "buffer", 4 * n, n))
    return tuple(costs)


def tensor_costs(arch) -> list[TensorCost]:
    """Per-tensor storage of `arch` as exported (compressible weights first)."""
    return list(_costs_cached(arch.to_json(indent=None)))


def size_bytes(arch) -> int:
    """Bytes of the exported weights (payload of the safetensors file, header excluded)."""
    return sum(c.nbytes for c in tensor_costs(arch))


def param_count(arch) -> int:
    """Parameters as exported: stored values of every parameter tensor (pruned zeros not
    counted; shared layers once; buffers such as the vocabulary remap excluded)."""
    return sum(c.stored_values for c in tensor_costs(arch) if c.layout != "buffer")
