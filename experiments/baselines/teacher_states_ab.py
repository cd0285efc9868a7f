"""Stored teacher hidden states vs a live teacher forward per step, one process, interleaved.

    python experiments/baselines/teacher_states_ab.py [--steps 60] [--reps 2] [--fp32]

The table's kd-eo student (teacher layers 2, 4, 6; KD-OL + KD-EO), int8 QAT unless --fp32,
dropout 0 (as the hybrid space distils), distilled from the same initial weights for --steps
steps, alternating live / stored --reps times; prints seconds per step (one dev pass included).
Uses the cached fine-tuned teacher (HYBRIDSEARCH_CACHE); the first call stores the states.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import replace


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--fp32", action="store_true")
    args = p.parse_args()

    from hybridsearch.baselines import baseline_specs
    from hybridsearch.data import load_task, load_transfer_texts
    from hybridsearch.distill.evaluate import EvalContext, _importance_batch
    from hybridsearch.distill.trainer import distill
    from hybridsearch.students import init_from_teacher
    from hybridsearch.students.compress import prepare
    from hybridsearch.teacher import ensure_teacher, teacher_logits

    task = load_task("mr")
    teacher = ensure_teacher(task)
    ctx = EvalContext(task=task, teacher=teacher, logits=teacher_logits(teacher, task), measure_speed=False,
                      progress=False)
    specs = baseline_specs(teacher.model.config, task, args.steps, teacher.tokenizer, load_transfer_texts(task, None))
    b = {x.name: x for x in specs}["kd-eo"]
    arch = copy.deepcopy(b.arch)
    arch.dropout = arch.attn_dropout = 0.0
    if not args.fp32:
        arch.layers = [replace(x, weight_bits=8, act_bits=8) for x in arch.layers]
        arch.embedding.weight_bits = 8
    recipe = replace(b.recipe, steps=args.steps, eval_every=10**9, eval_at_start=False)
    enc, labels, logits, _ = ctx.train_rows(recipe)
    states = ctx.teacher_states(recipe)
    start = prepare(init_from_teacher(arch, teacher.model, batch=_importance_batch(ctx, recipe)))
    for _ in range(args.reps):
        for mode in ("live", "stored"):
            student = copy.deepcopy(start)
            t0 = time.perf_counter()
            distill(student, recipe, enc, labels, logits, ctx.encoded("dev", recipe.max_length), task.labels("dev"),
                    task.spec.metric, progress=False, teacher_model=teacher.model,
                    teacher_states=states if mode == "stored" else None)
            kind = "fp32" if args.fp32 else "int8"
            print(f"{mode:6s} {kind}: {(time.perf_counter() - t0) / args.steps:.3f} s/step (one dev pass included)",
                  flush=True)


if __name__ == "__main__":
    main()
