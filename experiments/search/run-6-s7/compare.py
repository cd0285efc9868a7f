"""Before/after comparison of default-search runs: samples by trial, scores, front, best front dev.

    python experiments/search/run-6-s7/compare.py RUNS_ROOT before after ray    # RUNS_ROOT/<name>/study.db
"""
import sys

import optuna

from hybridsearch.search.pareto import front, teacher_row, trial_rows

optuna.logging.set_verbosity(optuna.logging.ERROR)
out = {}
root = sys.argv[1]
for name in sys.argv[2:]:
    st = optuna.load_study(study_name="hybridsearch", storage=f"sqlite:///{root}/{name}/study.db")
    rows = trial_rows(st)
    fr = front(rows)
    best = max(fr, key=lambda r: r["dev_score"])
    t = teacher_row(st)
    out[name] = {"trials": [{"n": r["trial"], "state": r["state"], "seeded": r["seeded"], "dev": r["dev_score"],
                             "test": r["test_score"], "latency_ms": r["latency_ms"], "speedup": r["speedup"],
                             "steps": r["steps"], "promoted_steps": r["promoted_steps"], "params": r["params"]}
                            for r in rows],
                 "front": [r["trial"] for r in fr], "best_dev": best["dev_score"], "best_dev_se": None,
                 "teacher": t and {k: t.get(k) for k in ("dev_score", "test_score", "latency_ms")}}
names = list(out)
for n in names:
    o = out[n]
    print(f"## {n}: front {o['front']}, best front dev {o['best_dev']:.4f}, teacher {o['teacher']}")
    for r in o["trials"]:
        print(f"  {r['n']} {r['state']:8} seeded={r['seeded']!s:5} dev={r['dev']} test={r['test']} "
              f"lat={r['latency_ms'] and round(r['latency_ms'],2)} x{r['speedup'] and round(r['speedup'],2)} steps={r['steps']} +{r['promoted_steps']}")
if len(names) >= 2:
    a, b = out[names[0]]["trials"], out[names[1]]["trials"]
    same = [x["params"] == y["params"] for x, y in zip(a, b)]
    print("identical samples by trial:", same)
