"""Seconds per distillation step of baseline rows, without evaluations or fixed costs.

    python experiments/baselines/step_cost.py --steps 30 --methods dq8,emc-vocab [--profile]
        [--live-teacher] [--bits 8] [--dropout 0]

For each method: distil the table's student for N and for 2N steps (no dev evaluations in
between) and print (t(2N) - t(N)) / N, so set-up, the final dev pass and import costs cancel.
`--profile` prints torch.profiler's top operators of the 2N-step run. Uses the cached
fine-tuned teacher (HYBRIDSEARCH_CACHE); run it on a quiet machine. KD-EO rows read the stored
teacher hidden states (`distill.teacher_states`, as `evaluate` does) unless `--live-teacher`;
`--bits 8` quantizes every layer and the embedding (QAT), `--dropout P` sets the student's dropout.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import replace


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--methods", default="dq8,emc-vocab")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--live-teacher", action="store_true", help="run the teacher every step (no stored states)")
    p.add_argument("--bits", type=int, default=None)
    p.add_argument("--dropout", type=float, default=None)
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
                      progress=False, store_teacher_states=not args.live_teacher)
    specs = {b.name: b for b in baseline_specs(teacher.model.config, task, args.steps, teacher.tokenizer,
                                               load_transfer_texts(task, None))}
    for method in args.methods.split(","):
        b, wall = specs[method], {}
        arch = copy.deepcopy(b.arch)
        if args.bits:
            arch.layers = [replace(x, weight_bits=args.bits, act_bits=args.bits) for x in arch.layers]
            arch.embedding.weight_bits = args.bits
        if args.dropout is not None:
            arch.dropout = args.dropout
        for steps in (args.steps, 2 * args.steps):
            recipe = replace(b.recipe, steps=steps, eval_every=10**9, eval_at_start=False)
            enc, labels, logits, _ = ctx.train_rows(recipe)
            student = prepare(init_from_teacher(arch, teacher.model, batch=_importance_batch(ctx, recipe)))
            call = dict(student=student, recipe=recipe, train_enc=enc, train_labels=labels, train_logits=logits,
                        dev_enc=ctx.encoded("dev", recipe.max_length), dev_labels=task.labels("dev"),
                        metric=task.spec.metric, progress=False,
                        teacher_model=teacher.model if recipe.needs_teacher_states() else None,
                        teacher_states=ctx.teacher_states(recipe))
            start = time.perf_counter()
            if args.profile and steps > args.steps:
                from torch.profiler import ProfilerActivity, profile

                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    distill(**call)
                print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
            else:
                distill(**call)
            wall[steps] = time.perf_counter() - start
        per_step = (wall[2 * args.steps] - wall[args.steps]) / args.steps
        print(f"{method}: {per_step:.3f} s/step  (runs: " + ", ".join(f"{k} steps {v:.1f} s" for k, v in wall.items())
              + ")", flush=True)


if __name__ == "__main__":
    main()
