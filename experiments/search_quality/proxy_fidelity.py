"""Proxy fidelity: does the search's short-budget dev score rank students like a long retrain's test score?

    python experiments/search_quality/proxy_fidelity.py RUN_DIR --n 10 --long-steps 600 --out DIR

For up to N COMPLETE trials of a finished search (RUN_DIR), with the trial's own sample:
- short budget (the search's steps) at recipe seeds 1 and 2 (seed 0 is the trial itself):
  the spread of the short-budget dev score over 3 seeds;
- long budget (`--long-steps`, the task's transfer data on, like `hybridsearch retrain`), seed 0:
  test score.
Prints Kendall tau (scipy) between the short-budget dev score (seed 0, and the 3-seed mean) and
the long-budget test score, and the per-trial seed spread. Every evaluation is saved to
DIR/rows/<trial>-<kind>-<seed>.json, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--long-steps", type=int, default=600)
    p.add_argument("--short-seeds", default="1,2", help="extra seeds at the search's budget")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)

    from scipy.stats import kendalltau

    from hybridsearch.distill.evaluate import evaluate
    from hybridsearch.search.distill_objective import DistillObjective
    from hybridsearch.search.results import load_study
    from hybridsearch.search.rundir import load_run

    run = load_run(args.run_dir)
    study = load_study(run)
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"][: args.n]
    objective = DistillObjective.__new__(DistillObjective)
    objective.__setstate__(dict(run.meta["objective"]))
    objective.weights_dir = None
    objective.setup()
    ctx = objective._ctx
    rows_dir = args.out / "rows"
    rows_dir.mkdir(parents=True, exist_ok=True)

    def measured(trial, kind: str, seed: int, recipe_changes: dict) -> dict:
        path = rows_dir / f"{trial.number}-{kind}-{seed}.json"
        if path.exists():
            return json.loads(path.read_text())
        arch, recipe = objective.freeze(dict(trial.params))
        recipe = replace(recipe, seed=seed, **recipe_changes)
        m = evaluate(arch, recipe, ctx, test=(kind == "long")).metrics
        row = {"trial": trial.number, "kind": kind, "seed": seed, "steps": recipe.steps, "dev": m.dev_score,
               "test": m.test_score, "failure": m.failure, "train_s": m.train_s}
        path.write_text(json.dumps(row))
        print(row, flush=True)
        return row

    ctx.measure_speed = False  # scores only: latency is the search's business
    table = []
    for t in trials:
        m0 = t.user_attrs.get("metrics") or {}
        shorts = [m0.get("dev_score")]
        for seed in [int(s) for s in args.short_seeds.split(",") if s]:
            shorts.append(measured(t, "short", seed, {})["dev"])
        _, base_recipe = objective.freeze(dict(t.params))
        long = measured(t, "long", 0, {"steps": args.long_steps, "eval_every": max(1, args.long_steps // 6),
                                        "transfer": bool(ctx.task.transfer)})
        ok = [s for s in shorts if s is not None]
        table.append({"trial": t.number, "short_dev_seed0": shorts[0], "short_dev_mean": statistics.mean(ok),
                      "short_dev_sd": statistics.stdev(ok) if len(ok) > 1 else None, "long_test": long["test"],
                      "short_steps": base_recipe.steps})
    good = [r for r in table if r["long_test"] is not None and r["short_dev_seed0"] is not None]
    tau0 = kendalltau([r["short_dev_seed0"] for r in good], [r["long_test"] for r in good])
    taum = kendalltau([r["short_dev_mean"] for r in good], [r["long_test"] for r in good])
    sds = [r["short_dev_sd"] for r in good if r["short_dev_sd"] is not None]
    summary = {"n": len(good), "kendall_tau_seed0": tau0.statistic, "p_seed0": tau0.pvalue,
               "kendall_tau_mean3": taum.statistic, "p_mean3": taum.pvalue,
               "median_seed_sd": statistics.median(sds) if sds else None, "long_steps": args.long_steps,
               "rows": table}
    (args.out / "proxy_fidelity.json").write_text(json.dumps(summary, indent=1))
    print("| trial | short dev (seed 0) | short dev mean ± sd (3 seeds) | long test |")
    print("|---|---|---|---|")
    for r in table:
        sd = f" ± {r['short_dev_sd']:.4f}" if r["short_dev_sd"] is not None else ""
        print(f"| {r['trial']} | {r['short_dev_seed0']} | {r['short_dev_mean']:.4f}{sd} | {r['long_test']} |")
    print(f"Kendall tau (seed 0 dev vs long test) {tau0.statistic:.3f} (p {tau0.pvalue:.3f}); "
          f"3-seed mean {taum.statistic:.3f} (p {taum.pvalue:.3f}); median seed sd {summary['median_seed_sd']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
