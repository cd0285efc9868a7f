"""Save / load a HybridStudent as a Hugging Face-loadable directory; ONNX export.

Directory written by `save_student(student, dir, tokenizer)`:

    config.json         HybridStudentConfig (model_type "hybridsearch-student", the arch inside)
    arch.json           the StudentArch
    model.safetensors   the weights (no pickle anywhere), per `compress.build_plan`:
                          <w>            float32 (32 bits) / float16 (16 bits) values
                          <w>.q          integer codes: int8 at 8 bits, a packed uint8
                                         bitstream at 4 / 3 / 2 bits (LSB first, code + 2**(b-1))
                          <w>.scale      float32 per output channel (bits <= 8)
                          <w>.mask       packed presence bits (bitmap layout, see `size`):
                                         then <w> / <w>.q hold only the kept values, row-major
                        other parameters float32, the vocabulary remap int32.
    tokenizer files     the teacher's tokenizer (`tokenizer.save_pretrained`)

Which tensors are stored how is derived from the arch (shapes, bits, layout), so
the file carries no per-tensor metadata and its size follows `size.size_bytes`.
`load_student(dir)` rebuilds the student in its training form (masks, fake
quantization, activation fake-quant) with the dequantized weights, so it gives
the same logits as the student that was saved and can be trained further.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from hybridsearch.errors import UserError

WEIGHTS_NAME = "model.safetensors"
ARCH_NAME = "arch.json"
FORMAT = "hybridsearch-student-v1"


def pre_quant_weight(module, pname: str):
    """The weight after masks but before fake quantization (what the codes are computed from)."""
    from hybridsearch.students.quant import is_fake_quant

    plist = getattr(module, "parametrizations", None)
    if plist is None or pname not in plist:
        return getattr(module, pname).detach()
    w = plist[pname].original.detach()
    for p in plist[pname]:
        if not is_fake_quant(p):
            w = p(w)
    return w.detach()


def _has_fake_quant(module, pname: str, bits: int) -> bool:
    from hybridsearch.students.quant import is_fake_quant

    plist = getattr(module, "parametrizations", None)
    if plist is None or pname not in plist:
        return False
    return any(is_fake_quant(p) and p.bits == bits for p in plist[pname])


def encode_state(student) -> dict:
    """{name: tensor} as stored in model.safetensors (see module doc)."""
    import torch

    from hybridsearch.students.compress import build_plan, plain_state
    from hybridsearch.students.quant import pack_bits, pack_codes, quantize
    from hybridsearch.students.size import entry_layout
    from hybridsearch.students.sparsity import get_mask

    plan = build_plan(student, student.arch)
    out = {}
    for e in plan.entries:
        mask = get_mask(e.module, e.param)
        if (e.pruned > 0 and mask is None) or (e.bits < 32 and not _has_fake_quant(e.module, e.param, e.bits)):
            raise UserError(
                f"{e.name}: the student was not prepared for its compression (bits {e.bits}, "
                f"sparsity {e.sparsity}); call hybridsearch.students.compress.prepare(student) before training"
            )
        w = pre_quant_weight(e.module, e.param).to("cpu", torch.float32)
        layout, _ = entry_layout(e.numel, e.pruned, e.bits)
        keep = mask.reshape(-1).to("cpu") if layout == "bitmap" else None
        if keep is not None:
            out[e.name + ".mask"] = pack_bits(keep.to(torch.int64), 1)
        if e.bits <= 8:
            q, scale = quantize(w, e.bits)
            q = q.reshape(-1)
            out[e.name + ".q"] = pack_codes(q[keep] if keep is not None else q, e.bits)
            out[e.name + ".scale"] = scale.contiguous()
        else:
            dtype = torch.float16 if e.bits == 16 else torch.float32
            v = w.reshape(-1)
            out[e.name] = (v[keep] if keep is not None else v).to(dtype).contiguous()
    for name, (t, _is_param) in plain_state(student).items():
        if name in plan.other:
            t = t.detach().to("cpu")
            out[name] = (t.to(torch.float32) if t.is_floating_point() else t.to(torch.int32)).contiguous()
    return out


def decode_into(student, tensors: dict) -> None:
    """Load `encode_state` output into a student built from the same arch and prepared with
    `prepare_loaded` (masks already registered); sets every original weight in place."""
    import torch

    from hybridsearch.students.compress import build_plan, plain_state
    from hybridsearch.students.quant import dequantize, unpack_bits, unpack_codes

    plan = build_plan(student, student.arch)
    state = plain_state(student)
    for e in plan.entries:
        target, _ = state[e.name]
        mask = None
        if e.name + ".mask" in tensors:
            mask = unpack_bits(tensors[e.name + ".mask"], 1, e.numel).bool()  # (n,)
        count = int(mask.sum()) if mask is not None else e.numel
        if e.bits <= 8:
            codes = unpack_codes(tensors[e.name + ".q"], e.bits, count)
            scale = tensors[e.name + ".scale"].to(torch.float32)
            full = torch.zeros(e.numel, dtype=torch.int8)
            if mask is not None:
                full[mask] = codes
            else:
                full = codes
            w = dequantize(full.reshape(e.shape), scale)
        else:
            vals = tensors[e.name].to(torch.float32)
            full = torch.zeros(e.numel, dtype=torch.float32)
            if mask is not None:
                full[mask] = vals
            else:
                full = vals
            w = full.reshape(e.shape)
        with torch.no_grad():
            target.copy_(w)
    for name in plan.other:
        if name not in tensors:
            raise UserError(f"weights file lacks {name}; the directory does not match its arch.json")
        target, _ = state[name]
        with torch.no_grad():
            target.copy_(tensors[name].to(target.dtype))


def _masks_from_file(student, tensors: dict) -> dict:
    from hybridsearch.students.compress import build_plan
    from hybridsearch.students.quant import unpack_bits

    plan = build_plan(student, student.arch)
    return {
        e.name: unpack_bits(tensors[e.name + ".mask"], 1, e.numel).bool().reshape(e.shape)
        for e in plan.entries
        if e.name + ".mask" in tensors
    }


def save_student(student, directory: str | os.PathLike, tokenizer=None) -> Path:
    """Write config.json, arch.json, model.safetensors and (if given) the tokenizer to `directory`.

    tokenizer: a transformers tokenizer, or a path to a directory holding one (the teacher's).
    A student on a GPU is moved to CPU first (in place).
    """
    from safetensors.torch import save_file

    from hybridsearch.students.hf import config_from_arch

    student.to("cpu")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = encode_state(student)
    save_file(tensors, str(directory / WEIGHTS_NAME), metadata={"format": FORMAT})
    (directory / ARCH_NAME).write_text(student.arch.to_json())
    config_from_arch(student.arch).save_pretrained(directory)
    if tokenizer is not None:
        if isinstance(tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
        tokenizer.save_pretrained(str(directory))
    return directory


def read_arch(directory: str | os.PathLike):
    """The StudentArch of an exported directory (arch.json, else config.json's `arch`)."""
    from hybridsearch.students.arch import StudentArch

    directory = Path(directory)
    if (directory / ARCH_NAME).is_file():
        return StudentArch.from_json((directory / ARCH_NAME).read_text())
    if (directory / "config.json").is_file():
        arch = json.loads((directory / "config.json").read_text()).get("arch")
        if arch:
            return StudentArch.from_dict(arch)
    raise UserError(f"{directory} is not an exported student (no arch.json); export one with student.save(dir)")


def load_student(directory: str | os.PathLike):
    """Rebuild the HybridStudent saved in `directory` (training form, eval mode)."""
    from safetensors.torch import load_file

    from hybridsearch.students.compress import build_plan
    from hybridsearch.students.model import HybridStudent
    from hybridsearch.students.quant import prepare_qat
    from hybridsearch.students.sparsity import apply_masks, get_mask, magnitude_mask

    directory = Path(directory)
    arch = read_arch(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.is_file():
        raise UserError(f"{weights} missing; the directory holds no exported weights")
    tensors = load_file(str(weights))
    student = HybridStudent(arch)
    plan = build_plan(student, arch)
    apply_masks(plan, _masks_from_file(student, tensors))
    decode_into(student, tensors)
    # pruned tensors stored densely (cheaper at low bits) carry no mask: their pruned
    # weights are exact zeros, so the floor(s*n) smallest |w| give an equivalent mask
    dense = {e.name: magnitude_mask(getattr(e.module, e.param), e.pruned)
             for e in plan.entries if e.pruned > 0 and get_mask(e.module, e.param) is None}
    apply_masks(plan, dense)
    prepare_qat(student, plan)
    return student.eval()


def weights_nbytes(directory: str | os.PathLike) -> int:
    """Size on disk of the exported weights file."""
    return (Path(directory) / WEIGHTS_NAME).stat().st_size


# ---- ONNX -------------------------------------------------------------------------


def logits_only(model):
    """An nn.Module whose forward(input_ids, attention_mask, token_type_ids) returns logits only."""
    from torch import nn

    class LogitsOnly(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    return LogitsOnly(model)


def float_model(student, dtype=None):
    """A copy of `student` with plain float weights (masks and quantization folded in,
    activation fake-quant removed) in float32 or float16: what the ONNX export holds."""
    import torch

    from hybridsearch.students.compress import clone
    from hybridsearch.students.quant import remove_act_quant
    from hybridsearch.students.sparsity import make_permanent

    model = clone(student).eval()
    make_permanent(model)
    remove_act_quant(model)
    return model.to(dtype or torch.float32)


def export_onnx(student, path: str | os.PathLike, dtype: str = "fp32", seq_len: int = 16, opset: int = 17) -> Path:
    """Export the fp32 / fp16 float model (`float_model`) to ONNX with dynamic batch and
    sequence axes; inputs input_ids, attention_mask, token_type_ids (int64), output logits."""
    import torch

    if dtype not in ("fp32", "fp16"):
        raise UserError(f"ONNX dtype {dtype!r} not offered; use fp32 or fp16")
    model = logits_only(float_model(student, torch.float16 if dtype == "fp16" else torch.float32))
    ids = torch.ones(2, seq_len, dtype=torch.long)
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings():  # the TorchScript exporter's shape-inference chatter
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (ids, mask, types), str(path),
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "logits": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    return path


def onnx_logits(path: str | os.PathLike, input_ids, attention_mask=None, token_type_ids=None):
    """Run an exported ONNX student with onnxruntime (CPU); returns numpy logits (B, C)."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = np.asarray(input_ids, dtype=np.int64)
    feeds = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask, np.int64),
        "token_type_ids": np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids, np.int64),
    }
    return sess.run(["logits"], feeds)[0]


def onnx_parity(student, path: str | os.PathLike, inputs: dict, dtype: str = "fp32") -> float:
    """Max |logit difference| between onnxruntime on `path` and the float model it was
    exported from (`float_model(student)`), on `inputs` (input_ids, attention_mask, token_type_ids)."""
    import numpy as np
    import torch

    model = float_model(student, torch.float16 if dtype == "fp16" else torch.float32)
    ids = inputs["input_ids"]
    mask = inputs.get("attention_mask", torch.ones_like(ids))
    types = inputs.get("token_type_ids", torch.zeros_like(ids))
    with torch.no_grad():
        expect = model(ids, attention_mask=mask, token_type_ids=types).logits.float().numpy()
    got = onnx_logits(path, ids, mask, types).astype(np.float32)
    return float(np.abs(got - expect).max())
