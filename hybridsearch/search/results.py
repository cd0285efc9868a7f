"""After a search: pareto.csv, weights of front members only, the report, RUN_DIR/best/; and export.

`export_trial` copies the saved weights of a front member; another trial is re-distilled
in this process with its recorded sample (the recipe's seed is part of it).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hybridsearch.errors import UserError


def load_study(run):
    import optuna

    from hybridsearch.search.study import make_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        return optuna.load_study(study_name=run.study_name, storage=make_storage(run.storage))
    except KeyError:
        raise UserError(f"{run.path} has no study yet; run hybridsearch search --out {run.path}") from None


def prune_weights(run, front_rows: list[dict], study) -> None:
    """Keep saved students of current front members only."""
    from hybridsearch.search.distill_objective import sample_key

    keep = {sample_key(t.params) for t in study.get_trials(deepcopy=False) if t.number in {r["trial"] for r in front_rows}}
    wdir = run.path / "weights"
    if wdir.is_dir():
        for d in wdir.iterdir():
            if d.is_dir() and d.name not in keep:
                shutil.rmtree(d, ignore_errors=True)


def export_trial(run, study, number: int, to, objective=None) -> Path:
    """Write trial `number`'s student to `to` (HF-loadable dir); re-distils when its weights are gone."""
    from hybridsearch.search.distill_objective import DistillObjective, sample_key
    from hybridsearch.search.trial import read_outcome

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise UserError(f"trial {number} is not in {run.path}; see hybridsearch study show {run.path}")
    t = trials[number]
    if t.state.name != "COMPLETE":
        outcome = read_outcome(t)
        raise UserError(f"trial {number} is {t.state.name.lower()} ({outcome.reason if outcome else 'unfinished'}); "
                        "export a complete trial")
    to = Path(to)
    src = run.path / "weights" / sample_key(t.params)
    if to.exists():
        shutil.rmtree(to)
    if src.is_dir():
        shutil.copytree(src, to)
        return to
    if objective is None:
        state = run.meta.get("objective")
        if not isinstance(state, dict) or "space_path" not in state:
            raise UserError(f"{run.path}/run.json does not say how trials were distilled; re-run the search")
        objective = DistillObjective.from_state(state)
    from hybridsearch.distill import NO_HOOKS

    objective.weights_dir = str(run.path / "weights")
    objective.setup()
    m = objective.evaluate(dict(t.params), NO_HOOKS)
    if m.failure:
        raise RuntimeError(f"re-distilling trial {number} failed: {m.failure}")
    shutil.copytree(src, to)
    return to


def finish_run(run, study, max_latency_ms=None, max_size_mb=None, objective=None) -> str:
    """Front -> pareto.csv, front table on the terminal, report, best/. Returns a one-line summary."""
    from hybridsearch.report import write_report
    from hybridsearch.search.pareto import front, select_best, teacher_row, trial_rows, write_pareto_csv

    rows = trial_rows(study)
    fr = front(rows, max_latency_ms, max_size_mb)
    teacher = teacher_row(study)
    write_pareto_csv(run.path / "pareto.csv", fr, teacher)
    prune_weights(run, front(rows), study)
    print_front(fr, teacher)
    print("[hybridsearch] 4/5 report", flush=True)
    write_report(run.path, study)
    print("[hybridsearch] 5/5 export the best student", flush=True)
    best = select_best(fr, teacher, max_latency_ms, max_size_mb)
    if best is None:
        return "no complete trial meets the budgets; nothing exported"
    export_trial(run, study, best["trial"], run.path / "best", objective=None)
    return (f"best: trial {best['trial']} (dev {best['dev_score']:.4f}, x{best.get('speedup') or 0:.2f}) "
            f"-> {run.path / 'best'}; report {run.path / 'report.md'}")


def print_front(front_rows: list[dict], teacher: dict | None) -> None:
    from rich.console import Console
    from rich.table import Table

    from hybridsearch.search.pareto import fmt

    table = Table(title="Pareto front (dev score up, latency down, size down)")
    for col in ("trial", "dev", "test", "latency ms", "speed-up", "size MB", "p vs teacher", "seeded"):
        table.add_column(col)
    for r in ([teacher] if teacher else []) + front_rows:
        table.add_row(str(r["trial"]), fmt(r.get("dev_score")), fmt(r.get("test_score")), fmt(r.get("latency_ms"), ".2f"),
                      fmt(r.get("speedup"), ".2f"), fmt(r.get("size_mb"), ".1f"), fmt(r.get("p_vs_teacher"), ".3f"),
                      "yes" if r.get("seeded") else "")
    Console().print(table)
