"""Search vs random: hypervolume of the (dev score, speed-up) front after N trials, per sampler and seed.

    python experiments/search_quality/search_vs_random.py --trials 8 --seeds 3 --steps 60 \
        --out /tmp/hs-runs/svr [--samplers nsga2,random] [-- extra `hybridsearch search` flags]

Runs `hybridsearch search --sampler S --seed K --no-seeds --trials N --steps STEPS --out OUT/S-sK`
for every sampler and seed (a finished run is resumed, i.e. skipped; an interrupted one goes on),
then writes OUT/hypervolume.csv and prints a markdown table. Seeds (the space's known-good points)
are off so that both samplers start from nothing. The hypervolume is Optuna's
(`optuna._hypervolume.compute_hypervolume`) over COMPLETE trials, both axes maximized, reference
point (--reference-score = chance accuracy, speed-up 1.0): only students faster than the teacher and better than
chance add area.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
from pathlib import Path


def hypervolume(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by `points` (both coordinates maximized) above `reference`."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    kept = [(s, v) for s, v in points if s > reference[0] and v > reference[1]]
    if not kept:
        return 0.0
    return float(compute_hypervolume(-np.asarray(kept, dtype=float), -np.asarray(reference, dtype=float)))


def run_points(run_dir: Path) -> tuple[list[tuple[float, float]], int]:
    """(dev score, speed-up) of COMPLETE trials and the number of finished trials."""
    from hybridsearch.search.pareto import trial_rows
    from hybridsearch.search.results import load_study
    from hybridsearch.search.rundir import load_run

    run = load_run(run_dir)
    study = load_study(run)
    rows = trial_rows(study)
    pts = [(r["dev_score"], r["speedup"]) for r in rows
           if r["state"] == "COMPLETE" and r.get("dev_score") is not None and r.get("speedup")]
    return pts, sum(r["state"] in ("COMPLETE", "FAIL", "PRUNED") for r in rows)


def main(argv: list[str]) -> int:
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    else:
        extra = []
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=60, help="distillation steps per trial")
    p.add_argument("--samplers", default="nsga2,random")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--reference-score", type=float, default=0.5, help="chance level of the task (mr: 0.5)")
    p.add_argument("--report-only", action="store_true", help="do not run searches; summarize OUT")
    args = p.parse_args(argv)
    samplers = args.samplers.split(",")
    rows = []
    for seed in range(args.seeds):  # seed-major: an interrupted run still has paired samplers
        for sampler in samplers:
            run_dir = args.out / f"{sampler}-s{seed}"
            if not args.report_only:
                cmd = ["hybridsearch", "search", "--sampler", sampler, "--seed", str(seed), "--no-seeds",
                       "--trials", str(args.trials), "--steps", str(args.steps), "--out", str(run_dir), *extra]
                print("+", " ".join(cmd), flush=True)
                subprocess.run(cmd, check=True)
            if not (run_dir / "run.json").exists():
                continue
            pts, done = run_points(run_dir)
            hv = hypervolume(pts, (args.reference_score, 1.0))
            best = max(pts, default=(None, None))
            rows.append({"sampler": sampler, "seed": seed, "finished": done, "complete": len(pts),
                         "hypervolume": round(hv, 5), "best_dev": best[0],
                         "max_speedup": max((v for _, v in pts), default=None)})
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "hypervolume.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["sampler"])
        writer.writeheader()
        writer.writerows(rows)
    print("| sampler | seed | finished | complete | hypervolume | best dev | max speed-up |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sampler']} | {r['seed']} | {r['finished']} | {r['complete']} | {r['hypervolume']} | "
              f"{r['best_dev']} | {r['max_speedup']} |")
    for sampler in samplers:
        hvs = [r["hypervolume"] for r in rows if r["sampler"] == sampler]
        if hvs:
            print(f"{sampler}: median hypervolume {statistics.median(hvs):.5f} over {len(hvs)} seeds {hvs}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
