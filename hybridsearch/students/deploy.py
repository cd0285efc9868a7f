"""`for_deployment(student)`: the module latency is measured on.

From a trained (prepared) student, on a copy:
- masks and fake quantization are folded into plain float weights
  (`sparsity.make_permanent`): pruned weights are zeros in dense matrices, so
  element-wise sparsity brings no speed-up on CPU (none is claimed);
- weights under 8 bits run dequantized in float32 (no speed-up claimed);
- layers at 8-bit weights and 8-bit activations run torch's eager dynamic int8
  kernels (`torch.ao.quantization.quantize_dynamic`, deprecated but present in
  torch 2.13): their `nn.Linear`s get exactly the exported int8 codes and
  per-channel scales; their `nn.LSTM`s are quantized by torch (per-tensor);
- structured compression (fewer heads, narrower FFNs, dropped layers) is already
  physical in the student's shapes.
"""

from __future__ import annotations

import warnings


def _exact_int8_linear(qlinear, q, scale, bias) -> None:
    """Give a dynamic-quantized Linear our int8 codes q (out, in) and per-channel scales (out,)."""
    import torch

    zero = torch.zeros(scale.shape[0], dtype=torch.long)
    qweight = torch._make_per_channel_quantized_tensor(q.to(torch.int8), scale.to(torch.double), zero, 0)
    qlinear.set_weight_bias(qweight, bias)


def for_deployment(student, int8: bool = True):
    """A deployable copy of `student` (eval mode). int8=False keeps every layer in float32
    (weights dequantized), e.g. to time the float path of the same student."""
    import torch
    from torch import nn

    from hybridsearch.students.compress import build_plan, clone
    from hybridsearch.students.export import pre_quant_weight
    from hybridsearch.students.quant import quantize, remove_act_quant
    from hybridsearch.students.sparsity import make_permanent

    model = clone(student).eval()
    plan = build_plan(model, model.arch)
    codes = {}
    if int8:
        for e in plan.entries:
            if e.int8_kernel and isinstance(e.module, nn.Linear) and e.bits == 8:
                codes[e.name.rsplit(".", 1)[0]] = quantize(pre_quant_weight(e.module, e.param), 8)
    make_permanent(model)
    remove_act_quant(model)
    if not int8 or not plan.int8_modules:
        return model
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    spec = {
        name: (per_channel_dynamic_qconfig if isinstance(m, nn.Linear) else default_dynamic_qconfig)
        for name, m in plan.int8_modules.items()
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = quantize_dynamic(model, qconfig_spec=spec, dtype=torch.qint8, inplace=True)
    for name, (q, scale) in codes.items():
        module = model.get_submodule(name)
        _exact_int8_linear(module, q, scale, module.bias())
    return model
