"""Trials -> rows, the Pareto front, `--best` selection, pareto.csv.

A row is a plain dict: trial, state, seeded, reason, params, and the metrics
(dev_score, test_score, score, metric, latency_ms, speedup, size_mb, ...).
`score` in pareto.csv is the test score when it was measured, else the dev score;
selection uses only `dev_score` (dev picks, test reports).

The front: COMPLETE trials meeting the budgets, not dominated on
(dev_score up, latency_ms down, size_mb down).
`select_best`: with a budget, the highest-dev-score front member meeting it; with
none, the fastest front member within 1 point of the teacher's dev score (scores
are fractions, so 1 point = 0.01), else the highest-dev-score member.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

CSV_COLUMNS = ("trial", "role", "score", "dev_score", "test_score", "metric", "latency_ms", "speedup", "size_mb",
               "p_vs_teacher", "seeded", "seed_name", "params")
ONE_POINT = 0.01


def fmt(v, spec=".4f") -> str:
    """A table cell: "—" for None, numbers by `spec`, anything else as text."""
    return "—" if v is None else format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def trial_rows(study) -> list[dict]:
    """One row per trial of the study (any state)."""
    from hybridsearch.search.trial import RETRY_OF_KEY, SEED_NAME_KEY, SEEDED_KEY, STALE_PREFIX, read_outcome

    rows = []
    for t in study.get_trials(deepcopy=False):
        o = read_outcome(t)
        m = dict((o.metrics if o else None) or {})
        reason = (o.reason if o else None) or study.user_attrs.get(f"{STALE_PREFIX}{t.number}")
        row = {"trial": t.number, "state": t.state.name, "seeded": bool(t.user_attrs.get(SEEDED_KEY, False)),
               "seed_name": t.user_attrs.get(SEED_NAME_KEY), "retry_of": t.user_attrs.get(RETRY_OF_KEY),
               "reason": reason, "params": dict(t.params), "precheck": o.precheck if o else None,
               "constraints": o.constraints if o else None, "latency_source": o.latency_source if o else None}
        for key in ("dev_score", "test_score", "metric", "latency_ms", "speedup", "size_mb", "p_vs_teacher",
                    "teacher_latency_ms", "params_count"):
            row[key] = m.get(key)
        row["score"] = m.get("test_score") if m.get("test_score") is not None else m.get("dev_score")
        row["steps"] = m.get("steps")
        row["promoted_steps"] = ((o.promoted if o else None) or {}).get("extra_steps")  # `search.promotion`
        rows.append(row)
    return rows


def steps_text(row: dict) -> str:
    """A row's distillation steps: "400", or "400+400" for a promoted trial; "" when it did not train."""
    steps, extra = row.get("steps"), row.get("promoted_steps")
    if not steps:
        return ""
    return f"{steps - extra}+{extra}" if extra else str(steps)


def meets(row: dict, max_latency_ms: float | None = None, max_size_mb: float | None = None) -> bool:
    if max_latency_ms is not None and (row.get("latency_ms") is None or row["latency_ms"] > max_latency_ms):
        return False
    if max_size_mb is not None and (row.get("size_mb") is None or row["size_mb"] > max_size_mb):
        return False
    return True


def _dominates(a: dict, b: dict) -> bool:
    ge = a["dev_score"] >= b["dev_score"] and a["latency_ms"] <= b["latency_ms"] and a["size_mb"] <= b["size_mb"]
    gt = a["dev_score"] > b["dev_score"] or a["latency_ms"] < b["latency_ms"] or a["size_mb"] < b["size_mb"]
    return ge and gt


def front(rows: list[dict], max_latency_ms: float | None = None, max_size_mb: float | None = None) -> list[dict]:
    """Non-dominated COMPLETE rows meeting the budgets, fastest first."""
    ok = [r for r in rows if r["state"] == "COMPLETE" and meets(r, max_latency_ms, max_size_mb)
          and all(r.get(k) is not None for k in ("dev_score", "latency_ms", "size_mb"))]
    out = [r for r in ok if not any(_dominates(o, r) for o in ok if o is not r)]
    return sorted(out, key=lambda r: (r["latency_ms"], -r["dev_score"]))


def select_best(front_rows: list[dict], teacher: dict | None = None, max_latency_ms: float | None = None,
                max_size_mb: float | None = None) -> dict | None:
    """The `--best` row of the module docstring; None when no front member meets the budgets."""
    cands = [r for r in front_rows if meets(r, max_latency_ms, max_size_mb)]
    if not cands:
        return None
    if max_latency_ms is None and max_size_mb is None and teacher and teacher.get("dev_score") is not None:
        close = [r for r in cands if r["dev_score"] >= teacher["dev_score"] - ONE_POINT]
        if close:
            return min(close, key=lambda r: (r["latency_ms"], -r["dev_score"]))
    return max(cands, key=lambda r: (r["dev_score"], -r["latency_ms"]))


def teacher_row(study) -> dict | None:
    """The teacher's metrics stored on the study (user attr `teacher`), as a row."""
    from hybridsearch.search.trial import TEACHER_KEY

    m = study.user_attrs.get(TEACHER_KEY)
    if not m:
        return None
    row = {k: m.get(k) for k in ("dev_score", "test_score", "metric", "latency_ms", "speedup", "size_mb",
                                 "p_vs_teacher")}
    row.update(trial="teacher", state="COMPLETE", seeded=False, seed_name=None, params={}, role="teacher")
    row["score"] = m.get("test_score") if m.get("test_score") is not None else m.get("dev_score")
    return row


def write_pareto_csv(path, front_rows: list[dict], teacher: dict | None = None) -> Path:
    """pareto.csv: the teacher's row (role=teacher) then one row per front member (role=front)."""
    path = Path(path)
    rows = ([dict(teacher, role="teacher")] if teacher else []) + [dict(r, role="front") for r in front_rows]
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            out = {k: r.get(k) for k in CSV_COLUMNS}
            out["params"] = json.dumps(r.get("params") or {}, sort_keys=True)
            for k in ("score", "dev_score", "test_score", "latency_ms", "speedup", "size_mb"):
                if isinstance(out[k], float):
                    out[k] = round(out[k], 5)
            w.writerow(out)
    return path
