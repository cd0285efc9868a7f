"""Latency of candidate >= 3x students of the hybrid space, untrained, timed interleaved with the teacher.

    python experiments/search/candidate_latency.py TEACHER_DIR     # shape 1x64, all cores, 30 calls each

Session 6 (2-core VM): teacher 20.55 ms; 3 teacher layers int8 3.54x; layers 1,2,4,6 with FFN 768 int8
3.59x (with 6 heads 4.19x); 4 full layers int8 2.96x; 6 layers int8 2.09x.
"""

import sys

import torch

from hybridsearch.measure.latency import example_inputs, measure_latency
from hybridsearch.search.freeze import FreezeBase
from hybridsearch.search.space import load_space
from hybridsearch.students import HybridStudent
from hybridsearch.students.deploy import for_deployment
from hybridsearch.teacher import load_teacher

space = load_space("search_spaces/hybrid.yaml")
teacher = load_teacher(sys.argv[1])
cfg = teacher.model.config
base = FreezeBase(vocab_size=cfg.vocab_size, num_labels=2, id2label={0: "neg", 1: "pos"}, max_positions=512,
                  type_vocab=2, unk_id=100, pad_id=0, task_tokens=None, teacher_layers=6, teacher_flops=None)
def sample(blocks, heads=12, ffn=1536, bits=8):
    s = {"arch.weight_bits": bits, "arch.sparsity": 0.0, "emb.size": 384, "emb.vocab": "full", "emb.weight_bits": bits,
         "recipe.losses": "kd_ol+kd_eo", "recipe.temperature": 2.0, "recipe.alpha": 0.5, "recipe.lr": 2e-4}
    for i, b in enumerate(blocks):
        s[f"layer_{i}.block"] = b
        if b == "transformer":
            s[f"layer_{i}.heads"] = heads
            s[f"layer_{i}.ffn"] = ffn
    return s
T, S = "transformer", "skip"
cands = {
 "3L full int8 (2,4,6)": sample([S, T, S, T, S, T]),
 "4L full int8": sample([T, T, S, T, S, T]),
 "4L ffn768 int8": sample([T, T, S, T, S, T], ffn=768),
 "4L ffn768 h6 int8": sample([T, T, S, T, S, T], heads=6, ffn=768),
 "5L ffn768 int8": sample([T, T, T, T, S, T], ffn=768),
 "6L ffn768 h6 int8": sample([T] * 6, heads=6, ffn=768),
 "6L ffn768 int8": sample([T] * 6, ffn=768),
 "3L ffn768 int8": sample([S, T, S, T, S, T], ffn=768),
 "6L full int8": sample([T] * 6),
}
models = {"teacher": teacher.model.eval()}
for name, s in cands.items():
    arch, _ = space.freeze(s, base)
    torch.manual_seed(0)
    models[name] = for_deployment(HybridStudent(arch).eval(), int8=True)
stats = measure_latency(models, shape=(1, 64), device="cpu", threads=None, repeats=30, warmup=5,
                        inputs=example_inputs((1, 64), cfg.vocab_size, "cpu"))
t = stats["teacher"].median_ms
for name, st in stats.items():
    print(f"{name:<24} {st.median_ms:7.2f} ms  x{t / st.median_ms:.2f}")
