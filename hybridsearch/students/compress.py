"""Which tensor of a HybridStudent gets which bit-width and sparsity, and QAT set-up.

The plan is derived from the model's module tree and its `StudentArch` only
(`HybridStudent` layout: `embeddings.*`, `layers.<i>.*`, `pooler`, `classifier`):

- compressible tensors: the weight matrices of `nn.Linear`, `nn.Conv1d`,
  `nn.Embedding` and `nn.LSTM` (`weight_ih_l*`, `weight_hh_l*`);
- under `embeddings.` (word / position / segment tables and the E -> hidden
  projection): `arch.embedding.weight_bits`, no sparsity;
- under `layers.<i>.` (including the residual projection): layer i's
  `weight_bits` and `sparsity` (shared layers exist once, under their group's
  first index, and validation makes group members' compression identical);
- `pooler` / `classifier` and every bias / LayerNorm / buffer: kept in float32.
- the dynamic int8 path (activations quantized at run time): `nn.Linear` and
  `nn.LSTM` modules of layers with weight_bits == 8 and act_bits == 8. act_bits=8
  has no effect on layers with other weight bit-widths (their weights run
  dequantized, no int8 kernel exists for them).

`prepare(student)` = prune to each layer's sparsity (masks) + fake quantization:
what a student trains with (QAT). The same plan drives export and size accounting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn
from torch.nn.utils import parametrize


@dataclass
class PlanEntry:
    """One compressible weight tensor."""

    name: str  # state-dict style name, e.g. "layers.3.mixer.query.weight"
    module: Any  # the owning nn.Module
    param: str  # attribute on module, e.g. "weight" or "weight_ih_l0"
    shape: tuple[int, ...]
    bits: int
    sparsity: float
    int8_kernel: bool  # runs through dynamic int8 at deployment

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def pruned(self) -> int:
        """Number of weights the mask zeroes: floor(sparsity * numel) (what NNI's LevelPruner does)."""
        return int(self.sparsity * self.numel + 1e-9)


@dataclass
class CompressionPlan:
    entries: list[PlanEntry]
    int8_modules: dict[str, Any] = field(default_factory=dict)  # qualified name -> Linear / LSTM module
    # other tensors, stored as they are: name -> (shape, dtype, is_parameter)
    other: dict[str, tuple[tuple[int, ...], Any, bool]] = field(default_factory=dict)

    def entry(self, name: str) -> PlanEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)


def _weight_params(module) -> list[str]:
    """Names of a compressible module's weight matrices."""
    if _is_lstm(module):
        return [n for n in module._flat_weights_names if n.startswith("weight_")]
    return ["weight"]


def _is_lstm(module) -> bool:
    return isinstance(module, nn.LSTM)


def _is_compressible(module) -> bool:
    return isinstance(module, (nn.Linear, nn.Conv1d, nn.Embedding, nn.LSTM))


def _param_shape(module, pname: str) -> tuple[int, ...]:
    if parametrize.is_parametrized(module, pname):
        # the parametrized value has the original's shape (our parametrizations keep shapes)
        return tuple(module.parametrizations[pname].original.shape)
    return tuple(getattr(module, pname).shape)


def build_plan(model, arch=None) -> CompressionPlan:
    """The compression plan of a HybridStudent (or anything with its layout) and its arch."""
    arch = arch or model.arch
    entries, int8 = [], {}
    compressed_names = set()
    for mname, module in model.named_modules():
        if not _is_compressible(module):
            continue
        head = mname.split(".")
        if head[0] == "embeddings":
            bits, sparsity, int8_kernel = arch.embedding.weight_bits, 0.0, False
        elif head[0] == "layers" and len(head) > 1:
            spec = arch.layers[int(head[1])]
            bits, sparsity = spec.weight_bits, float(spec.sparsity)
            int8_kernel = spec.weight_bits == 8 and spec.act_bits == 8 and not _is_conv_or_emb(module)
        else:
            continue  # pooler / classifier stay float32
        if int8_kernel:
            int8[mname] = module
        for pname in _weight_params(module):
            full = f"{mname}.{pname}"
            compressed_names.add(full)
            entries.append(PlanEntry(full, module, pname, _param_shape(module, pname), bits, sparsity, int8_kernel))
    other = {}
    for name, (t, is_param) in plain_state(model).items():
        if name not in compressed_names:
            other[name] = (tuple(t.shape), t.dtype, is_param)
    return CompressionPlan(entries, int8, other)


def _is_conv_or_emb(module) -> bool:
    return isinstance(module, (nn.Conv1d, nn.Embedding))


def plain_state(model) -> dict:
    """{name: (tensor, is_parameter)}: the model's persistent tensors under their plain names
    (a parametrized tensor appears as `<module>.<param>` with its unparametrized original;
    the parametrizations' own buffers, such as masks, are dropped)."""
    out = {}
    for mname, module in model.named_modules():
        prefix = f"{mname}." if mname else ""
        plist = getattr(module, "parametrizations", None)
        for pname, p in module.named_parameters(recurse=False):
            out[prefix + pname] = (p, True)
        for bname, b in module.named_buffers(recurse=False):
            if bname not in getattr(module, "_non_persistent_buffers_set", set()):
                out[prefix + bname] = (b, False)
        if plist is not None:
            for pname in plist.keys():
                out[prefix + pname] = (plist[pname].original, True)
    # drop the parametrization containers' own entries ("...parametrizations.weight.original", masks)
    return {k: v for k, v in out.items() if ".parametrizations." not in k}


def plan_for(model) -> CompressionPlan:
    """Plan of `model` (a HybridStudent), from `model.arch`."""
    return build_plan(model, model.arch)


def prepare(student, prune_backend: str = "auto"):
    """Make `student` ready for compression-aware training, in place; returns it.

    Order: magnitude masks at each layer's sparsity (`sparsity.prune_to_arch`),
    then weight fake quantization at each tensor's bit-width and activation
    fake quantization on the int8 path (`quant.prepare_qat`).
    """
    from hybridsearch.students.quant import prepare_qat
    from hybridsearch.students.sparsity import prune_to_arch

    plan = plan_for(student)
    prune_to_arch(student, plan, backend=prune_backend)
    prepare_qat(student, plan)
    return student


def clone(student):
    """An independent copy of a (possibly prepared) HybridStudent: same masks, fake quantization,
    activation hooks and weights. (`copy.deepcopy` is unsafe here: torch's parametrized
    modules share a generated class, and folding the copy's parametrizations would strip
    the original's.)"""
    from hybridsearch.students.model import HybridStudent
    from hybridsearch.students.quant import ACT_HOOK_ATTR, add_act_quant, add_weight_quant, is_fake_quant
    from hybridsearch.students.sparsity import apply_masks, get_mask

    src_plan = plan_for(student)
    new = HybridStudent(student.arch).to(next(student.parameters()).device)
    plan = plan_for(new)
    masks = {e.name: get_mask(e.module, e.param) for e in src_plan.entries}
    apply_masks(plan, {k: m.clone() for k, m in masks.items() if m is not None})
    src_modules = dict(student.named_modules())
    for e, src in zip(plan.entries, src_plan.entries):
        plist = getattr(src.module, "parametrizations", None)
        if plist is not None and src.param in plist:
            for p in plist[src.param]:
                if is_fake_quant(p):
                    add_weight_quant(e.module, e.param, p.bits)
    for name, module in new.named_modules():
        if getattr(src_modules.get(name), ACT_HOOK_ATTR, None) is not None:
            add_act_quant(module)
    new.load_state_dict(student.state_dict())
    return new.train(student.training)
