"""What the transfer set and Tang-style augmentation add to a small distilled student.

One small student (2 transformer layers from uniformly mapped teacher layers, KD-OL),
four data conditions with the same step budget and seed: train only, + transfer set
(mr: pang&lee1 sentences, teacher-labelled), + augmented copies of train, + both.
Prints a markdown table (dev / test accuracy with standard errors, McNemar p vs the
train-only student on test) and writes it to --out as JSON.

    flock /tmp/hs-heavy.lock python experiments/distill/transfer_augment.py --steps 400 --transfer-limit 8000
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="mr")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=2e-4, help="2e-4: layer-dropped students learn slowly at 5e-5")
    p.add_argument("--transfer-limit", type=int, default=8000, help="transfer sentences (0 = all ~48k)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--augment", type=int, default=2, help="augmented copies per train sentence")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="experiments/distill/transfer_augment.json")
    p.add_argument("--cache-dir", default=None)
    args = p.parse_args()

    import numpy as np
    import torch

    from hybridsearch.data import load_task
    from hybridsearch.data.metrics import mcnemar
    from hybridsearch.distill.evaluate import EvalContext, evaluate
    from hybridsearch.distill.recipe import DistillRecipe
    from hybridsearch.distill.trainer import predict
    from hybridsearch.students import arch_from_teacher_config
    from hybridsearch.teacher import ensure_teacher, teacher_logits

    task = load_task(args.task, cache_dir=args.cache_dir)
    teacher = ensure_teacher(task, cache_dir=args.cache_dir)
    logits = teacher_logits(teacher, task, cache_dir=args.cache_dir)
    ctx = EvalContext(task=task, teacher=teacher, logits=logits, cache_dir=args.cache_dir, measure_speed=False)
    arch = arch_from_teacher_config(teacher.model.config, teacher.tokenizer)
    L = len(arch.layers)
    picks = [max(0, round((i + 1) * L / args.layers) - 1) for i in range(args.layers)]
    arch.layers = [replace(arch.layers[t], teacher_layer=t) for t in picks]
    base = DistillRecipe(losses=["kd_ol"], alpha=0.5, temperature=2.0, steps=args.steps, lr=args.lr,
                         eval_every=max(1, args.steps // 4), seed=args.seed)
    conditions = {
        "train only": base,
        "+ transfer": replace(base, transfer=True, transfer_limit=args.transfer_limit),
        f"+ augment x{args.augment}": replace(base, augment=args.augment),
        f"+ transfer + augment x{args.augment}": replace(base, transfer=True, transfer_limit=args.transfer_limit,
                                                                     augment=args.augment),
    }
    test_labels = task.labels("test")
    results, ref_correct = {}, None
    for name, recipe in conditions.items():
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        res = evaluate(arch, recipe, ctx, test=True)
        m = res.metrics
        pred = predict(res.student, ctx.encoded("test", recipe.max_length)).argmax(-1)
        correct = pred == test_labels
        ref_correct = correct if ref_correct is None else ref_correct
        results[name] = {
            "dev": m.dev_score, "dev_se": m.dev_se, "test": m.test_score, "test_se": m.test_se,
            "p_vs_train_only": float(mcnemar(correct, ref_correct)), "p_vs_teacher": m.p_vs_teacher,
            "rows": m.extra.get("train_rows"), "failure": m.failure, "wall_s": round(time.perf_counter() - start, 1),
        }
        print(name, json.dumps(results[name]), flush=True)
    teacher_test = float(np.mean(ctx.teacher_preds("test") == test_labels))
    out = {"task": args.task, "steps": args.steps, "lr": args.lr, "transfer_limit": args.transfer_limit, "student_layers": picks, "teacher_test": teacher_test,
           "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"\nteacher test accuracy {100 * teacher_test:.1f}\n")
    print("| data | train rows | dev % | test % (± se) | p vs train only |\n|---|---|---|---|---|")
    for name, r in results.items():
        if r["failure"]:
            print(f"| {name} | — | — | failed: {r['failure']} | — |")
            continue
        rows = sum((r["rows"] or {}).values())
        print(f"| {name} | {rows} | {100 * r['dev']:.1f} | {100 * r['test']:.1f} ± {100 * r['test_se']:.1f} "
              f"| {r['p_vs_train_only']:.3f} |")


if __name__ == "__main__":
    main()
