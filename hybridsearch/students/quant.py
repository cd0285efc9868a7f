"""Quantization: fake quantization for QAT, integer codes for export, bit packing.

Weights (per-output-channel symmetric, "channel" = dim 0 of the tensor: a Linear's
output feature, a Conv's output channel, an Embedding's row, an LSTM gate row):

    qmax  = 2**(bits-1) - 1            # 127, 7, 3, 1 for 8, 4, 3, 2 bits
    scale = max(|w[c, :]|) / qmax      # float32, one per channel
    q     = clamp(round(w / scale), -qmax, qmax)     # integer code
    w_hat = q * scale

16 bits means a float16 round trip; 32 bits is untouched. The forward pass of
`fake_quant_weight` returns exactly `q * scale` (so a model reloaded from the
exported integer codes gives the same logits) and its backward is the identity
(straight-through estimator).

Activations (act_bits=8) are fake-quantized the way torch's dynamic int8 kernels
quantize a Linear's input at run time: per tensor, asymmetric, from the batch's
min / max (min clamped <= 0 <= max), onto ACT_LEVELS = 128 levels: the x86
(fbgemm) dynamic Linear runs with reduce_range=True, i.e. a 7-bit activation
range inside uint8 (so the int16 accumulation cannot overflow). `prepare_qat(model, plan)` wires
both into a model through `torch.nn.utils.parametrize` (weights) and forward
pre-hooks (activations), so parameter names and optimizers stay unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

QUANT_BITS = (8, 4, 3, 2)  # bit-widths stored as integer codes
ACT_LEVELS = 128  # activation grid of torch's x86 dynamic int8 Linear (uint8 with reduce_range)
ACT_HOOK_ATTR = "_hs_act_quant_hook"
QUANT_ON_ATTR = "_hs_quant_on"  # False on a hooked module: its activation fake quantization is off


def qmax(bits: int) -> int:
    """Largest integer code of a symmetric `bits`-bit grid (codes in [-qmax, qmax])."""
    return 2 ** (bits - 1) - 1


class _RoundSTE(torch.autograd.Function):
    """round() forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _HalfSTE(torch.autograd.Function):
    """float16 round trip forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        return x.to(torch.float16).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad


def channel_scales(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric scales of `w` (C, ...) -> (C,) float32; never zero."""
    flat = w.detach().reshape(w.shape[0], -1).abs().amax(dim=1).to(torch.float32)  # (C,)
    return (flat / qmax(bits)).clamp_min(torch.finfo(torch.float32).tiny)


def _bcast(scale: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return scale.reshape((-1,) + (1,) * (w.dim() - 1))  # (C, 1, ...)


def quantize(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer codes and scales: (q int8 same shape as w, scale float32 (C,))."""
    if bits not in QUANT_BITS:
        raise ValueError(f"quantize: bits must be one of {QUANT_BITS}, got {bits}")
    scale = channel_scales(w, bits)
    q = torch.clamp(torch.round(w.detach().float() / _bcast(scale, w)), -qmax(bits), qmax(bits))
    return q.to(torch.int8), scale


def dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """q * scale, float32, same shape as q."""
    return q.to(torch.float32) * _bcast(scale, q)


def fake_quant_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Forward: the value the exported weight will have; backward: identity (STE)."""
    if bits >= 32:
        return w
    if bits == 16:
        return _HalfSTE.apply(w)
    scale = channel_scales(w, bits)
    scale = _bcast(scale, w).to(w.dtype)
    q = torch.clamp(_RoundSTE.apply(w / scale), -qmax(bits), qmax(bits))
    return q * scale


def fake_quant_act(x: torch.Tensor, levels: int = ACT_LEVELS) -> torch.Tensor:
    """Dynamic per-tensor asymmetric fake quantization onto `levels` levels (what torch's
    dynamic int8 Linear does to its input); straight-through gradient."""
    if not x.is_floating_point() or x.numel() == 0:
        return x
    top = float(levels - 1)
    lo = x.detach().amin().clamp(max=0.0)
    hi = x.detach().amax().clamp(min=0.0)
    scale = ((hi - lo) / top).clamp_min(1e-8)
    zero = torch.round(-lo / scale)
    q = torch.clamp(_RoundSTE.apply(x / scale) + zero, 0.0, top)
    return (q - zero) * scale


class FakeQuantWeight(nn.Module):
    """Parametrization: weight -> fake_quant_weight(weight, bits); the identity while `enabled` is False."""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = int(bits)
        self.enabled = True  # `set_quantization` switches it

    def forward(self, w):
        return fake_quant_weight(w, self.bits) if self.enabled else w

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def is_fake_quant(module) -> bool:
    """Whether a parametrization module is a FakeQuantWeight."""
    return isinstance(module, FakeQuantWeight)


def _act_pre_hook(module, args):
    if not args or not getattr(module, QUANT_ON_ATTR, True):
        return None
    return (fake_quant_act(args[0]),) + tuple(args[1:])


def add_act_quant(module: nn.Module) -> None:
    """Fake-quantize `module`'s first input (8-bit dynamic) on every forward; idempotent."""
    if getattr(module, ACT_HOOK_ATTR, None) is None:
        setattr(module, ACT_HOOK_ATTR, module.register_forward_pre_hook(_act_pre_hook))
        setattr(module, QUANT_ON_ATTR, True)


def remove_act_quant(model: nn.Module) -> None:
    """Remove every activation fake-quant hook under `model`."""
    for m in model.modules():
        handle = getattr(m, ACT_HOOK_ATTR, None)
        if handle is not None:
            handle.remove()
            setattr(m, ACT_HOOK_ATTR, None)


def set_quantization(model: nn.Module, enabled: bool) -> None:
    """Switch every weight and activation fake quantization under `model` on or off, in place.

    Off, a prepared model computes its float function (the float phase of late QAT,
    `DistillRecipe.qat_from`); on, the function it will have once deployed. Masks,
    parameters and the exported integer codes do not depend on the switch.
    """
    for module in model.modules():
        if isinstance(module, FakeQuantWeight):
            module.enabled = bool(enabled)
        if getattr(module, ACT_HOOK_ATTR, None) is not None:
            setattr(module, QUANT_ON_ATTR, bool(enabled))


def add_weight_quant(module: nn.Module, name: str, bits: int) -> None:
    """Register a FakeQuantWeight parametrization on `module.<name>` (no-op at 32 bits)."""
    if bits >= 32:
        return
    parametrize.register_parametrization(module, name, FakeQuantWeight(bits))


def prepare_qat(model: nn.Module, plan=None) -> nn.Module:
    """Wrap `model`'s weights for quantization-aware training according to the arch.

    plan: a `compress.CompressionPlan` (default: built from `model.arch`).
    Weight tensors get a FakeQuantWeight parametrization at their bit-width
    (after any sparsity mask: call `sparsity.apply_masks` first so scales are
    computed over the surviving weights); the Linear / LSTM modules of layers at
    8-bit weights and 8-bit activations get an input fake-quant hook. In place; returns `model`.
    """
    from hybridsearch.students.compress import plan_for

    plan = plan or plan_for(model)
    for entry in plan.entries:
        if entry.bits < 32:
            add_weight_quant(entry.module, entry.param, entry.bits)
    for module in plan.int8_modules.values():
        add_act_quant(module)
    return model


# ---- bit packing (export) ---------------------------------------------------------


def pack_bits(values: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack unsigned integers < 2**bits (any shape, bits 1..8) into a flat uint8 bitstream, LSB
    first: value j's bit i is stream bit j*bits + i. Length ceil(N*bits/8)."""
    flat = values.reshape(-1).to(torch.int64)
    n = flat.numel()
    if bits == 8:
        return flat.to(torch.uint8)
    flat = torch.cat([flat, flat.new_zeros((-n) % 8)]).reshape(-1, 8)  # (G, 8): 8 values = `bits` bytes
    acc = (flat << (bits * torch.arange(8, dtype=torch.int64))).sum(dim=1)  # (G,) 8*bits <= 56 bits
    out = (acc[:, None] >> (8 * torch.arange(bits, dtype=torch.int64))) & 255  # (G, bits)
    return out.reshape(-1)[: (n * bits + 7) // 8].to(torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """Inverse of `pack_bits`: the first `count` values, int64 (count,)."""
    raw = packed.reshape(-1).to(torch.int64)
    if bits == 8:
        return raw[:count]
    raw = torch.cat([raw, raw.new_zeros((-raw.numel()) % bits)]).reshape(-1, bits)  # (G, bits)
    acc = (raw << (8 * torch.arange(bits, dtype=torch.int64))).sum(dim=1)  # (G,)
    vals = (acc[:, None] >> (bits * torch.arange(8, dtype=torch.int64))) & (2**bits - 1)  # (G, 8)
    return vals.reshape(-1)[:count]


def pack_codes(q: torch.Tensor, bits: int) -> torch.Tensor:
    """Signed codes in [-qmax, qmax] -> stored tensor: int8 as is at 8 bits, else packed uint8."""
    if bits == 8:
        return q.reshape(-1).to(torch.int8)
    return pack_bits(q.to(torch.int64) + 2 ** (bits - 1), bits)


def unpack_codes(stored: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    """Inverse of `pack_codes`: int8 (count,)."""
    if bits == 8:
        return stored.reshape(-1)[:count].to(torch.int8)
    return (unpack_bits(stored, bits, count) - 2 ** (bits - 1)).to(torch.int8)


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes `pack_codes` / `pack_bits` use for `count` values at `bits` bits."""
    return (count * bits + 7) // 8
