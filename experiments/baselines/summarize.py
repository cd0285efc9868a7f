"""Check the issue's targets on a baselines table: python experiments/baselines/summarize.py [RUN_DIR].

- the 8-bit DQ row within 1 point of the teacher's test score at about 25% of its size;
- at least one KD row with a measured speed-up >= 2x within 2 points of the teacher.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def _f(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/baselines/run")
    rows = {r["method"]: r for r in csv.DictReader(open(run / "table.csv"))}
    teacher = _f(rows["teacher"]["score"])
    print(f"teacher test score {teacher}")
    dq = rows.get("dq8")
    if dq and _f(dq["score"]) is not None:
        drop, size = teacher - _f(dq["score"]), _f(dq["size_pct"])
        ok = drop <= 1.0 and size is not None and size <= 30
        print(f"dq8: drop {drop:+.2f} points at {size}% size, speed-up {dq['speedup']} -> {'MET' if ok else 'NOT MET'}")
    else:
        print("dq8: no score")
    kd = []
    for name, r in rows.items():
        if not r["family"].startswith("KD") or _f(r["score"]) is None or _f(r["speedup"]) is None:
            continue
        drop, speed = teacher - _f(r["score"]), _f(r["speedup"])
        kd.append((name, drop, speed, drop <= 2.0 and speed >= 2.0))
        print(f"{name}: drop {drop:+.2f} points, speed-up {speed}x, size {r['size_pct']}%")
    print("KD target (>= 2x within 2 points):", "MET by " + ", ".join(n for n, *_, ok in kd if ok)
          if any(k[-1] for k in kd) else "NOT MET")


if __name__ == "__main__":
    main()
