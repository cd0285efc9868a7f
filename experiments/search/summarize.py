"""Summarise a search run for RESULTS.md: teacher, every complete trial, and the issue's target check.

Target: a front member from a sampled (not seeded) trial at least 3x faster than the teacher
(same-run, interleaved) within 2 points of its test accuracy; McNemar p vs the teacher on test.

    python experiments/search/summarize.py RUN_DIR
"""

from __future__ import annotations

import sys

from hybridsearch.report import describe
from hybridsearch.search.pareto import front, steps_text, teacher_row, trial_rows
from hybridsearch.search.results import load_study
from hybridsearch.search.rundir import load_run


def main(run_dir: str) -> None:
    run = load_run(run_dir)
    study = load_study(run)
    rows = trial_rows(study)
    teacher = teacher_row(study)
    on_front = {r["trial"] for r in front(rows)}
    print(f"teacher: dev {teacher['dev_score']:.4f} test {teacher['test_score']:.4f} "
          f"latency {teacher['latency_ms']:.2f} ms size {teacher['size_mb']:.1f} MB")
    print("| trial | state | seeded | front | dev | test | Δtest (pts) | p (McNemar) | speed-up | latency ms | size MB "
          "| steps | architecture ; choices |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    hits = []
    for r in rows:
        if r["state"] != "COMPLETE":
            print(f"| {r['trial']} | {r['state'].lower()} | {'yes' if r['seeded'] else ''} |  |  |  |  |  |  |  |  |  | "
                  f"{r.get('reason') or ''} |")
            continue
        delta = 100 * (r["test_score"] - teacher["test_score"])
        print(f"| {r['trial']} | complete | {'yes' if r['seeded'] else ''} | {'yes' if r['trial'] in on_front else ''} "
              f"| {r['dev_score']:.4f} | {r['test_score']:.4f} | {delta:+.1f} | {r['p_vs_teacher']:.3f} "
              f"| {r['speedup']:.2f} | {r['latency_ms']:.2f} | {r['size_mb']:.1f} | {steps_text(r)} "
              f"| {describe(r['params'])} |")
        if not r["seeded"] and r["trial"] in on_front and r["speedup"] >= 3 and delta >= -2:
            hits.append(r["trial"])
    print(f"\ntarget (sampled front member >= 3x, within 2 test points): {'met by trial(s) ' + str(hits) if hits else 'NOT met'}")


if __name__ == "__main__":
    main(sys.argv[1])
