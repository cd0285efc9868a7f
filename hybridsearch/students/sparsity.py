"""Element-wise magnitude pruning to each layer's sparsity; masks persist through training.

Rule: in every compressible weight tensor of layer i (see `compress.build_plan`),
the floor(sparsity_i * numel) weights of smallest |w| are zeroed (per tensor,
unstructured, one shot at the start of training).

Who computes the masks: NNI 3.0's `LevelPruner` (exactly this rule) for
`nn.Linear`, `nn.Conv1d` and `nn.Embedding`; NNI 3.0 registers no pruning
setting for `nn.LSTM` ("LSTM is not registered"), so LSTM weight matrices get the
same rule in plain torch (top-k of |w|). backend="torch" computes every mask in
torch (no NNI import, ~4 s faster to start; same masks up to ties). NNI's
L1NormPruner is structured (whole output channels), so it does not serve here;
head / FFN-neuron removal is physical and lives in `students.init`.

How masks are applied: not through NNI's module wrappers (which rename modules
and do not compose with fake quantization or export) but as a `Mask`
parametrization from `torch.nn.utils.parametrize`: the layer computes with
`original * mask`, pruned entries receive zero gradient and stay zero, the
module keeps its names. `make_permanent(model)` folds every parametrization
(masks, and fake quantization if present) into plain weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from hybridsearch.errors import UserError

BACKENDS = ("auto", "nni", "torch")


class Mask(nn.Module):
    """Parametrization: w -> w * mask (mask: bool buffer, same shape as w)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool))

    def forward(self, w):
        return w * self.mask

    def extra_repr(self) -> str:
        return f"sparsity={1.0 - self.mask.float().mean().item():.3f}"


def magnitude_mask(w: torch.Tensor, pruned: int) -> torch.Tensor:
    """Bool mask keeping all but the `pruned` smallest-|w| entries of `w`."""
    flat = w.detach().abs().reshape(-1)
    mask = torch.ones_like(flat, dtype=torch.bool)
    if pruned > 0:
        mask[torch.topk(flat, pruned, largest=False).indices] = False
    return mask.reshape(w.shape)


def _nni_masks(model, entries) -> dict:
    """Masks from NNI's LevelPruner for Linear / Conv1d / Embedding entries."""
    from nni.compression.pruning import LevelPruner

    name_of = {id(m): n for n, m in model.named_modules()}
    config = [
        {"op_names": [name_of[id(e.module)]], "target_names": [e.param], "sparse_ratio": float(e.sparsity)}
        for e in entries
    ]
    pruner = LevelPruner(model, config)
    try:
        _, masks = pruner.compress()
    finally:
        pruner.unwrap_model()
    out = {}
    for e in entries:
        out[e.name] = masks[name_of[id(e.module)]][e.param].detach().to("cpu").bool()
    return out


def compute_masks(model, plan, backend: str = "auto") -> dict:
    """{tensor name: bool mask} for every plan entry with a non-zero pruned count."""
    if backend not in BACKENDS:
        raise UserError(f"pruning backend {backend!r} unknown; use one of {list(BACKENDS)}")
    todo = [e for e in plan.entries if e.pruned > 0]
    if backend == "auto":
        try:
            import nni.compression.pruning  # noqa: F401

            backend = "nni"
        except ImportError:
            backend = "torch"
    masks = {}
    nni_entries = [e for e in todo if backend == "nni" and not isinstance(e.module, nn.LSTM)]
    if nni_entries:
        masks.update(_nni_masks(model, nni_entries))
    for e in todo:
        if e.name not in masks:
            masks[e.name] = magnitude_mask(getattr(e.module, e.param), e.pruned)
    return masks


def apply_masks(plan, masks: dict) -> None:
    """Register a Mask parametrization on each masked tensor (before any fake quantization)."""
    for e in plan.entries:
        if e.name in masks and get_mask(e.module, e.param) is None:
            parametrize.register_parametrization(e.module, e.param, Mask(masks[e.name]))


def get_mask(module, pname: str):
    """The bool mask on `module.<pname>`, or None."""
    plist = getattr(module, "parametrizations", None)
    if plist is None or pname not in plist:
        return None
    for p in plist[pname]:
        if hasattr(p, "mask"):
            return p.mask
    return None


def prune_to_arch(model, plan=None, backend: str = "auto") -> dict:
    """Compute and apply masks at each layer's sparsity; returns the masks."""
    from hybridsearch.students.compress import plan_for

    plan = plan or plan_for(model)
    masks = compute_masks(model, plan, backend)
    apply_masks(plan, masks)
    return masks


def make_permanent(model) -> nn.Module:
    """Fold every parametrization (masks, fake quantization) into plain weights, in place."""
    for module in list(model.modules()):
        plist = getattr(module, "parametrizations", None)
        if plist is None:
            continue
        for pname in list(plist.keys()):
            parametrize.remove_parametrizations(module, pname, leave_parametrized=True)
    return model
