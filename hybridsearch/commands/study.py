"""`hybridsearch study show RUN_DIR`: the trials, the Pareto front and the best per budget."""

from __future__ import annotations

import argparse

NAME = "study"
HELP = "inspect a search run: trials (params, metrics, state, reason), Pareto front, best per budget"
EPILOG = """examples:
  hybridsearch study show runs/mr-1a2b3c4d5e
  optuna-dashboard sqlite:///runs/mr-1a2b3c4d5e/study.db   # the same study in a browser"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("action", choices=("show",), help="show: print the study")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by hybridsearch search")
    parser.add_argument("--max-latency-ms", type=float, default=None, help="also show the best under this latency")
    parser.add_argument("--max-size-mb", type=float, default=None, help="also show the best under this size")


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from hybridsearch.report import describe
    from hybridsearch.search.pareto import fmt, front, select_best, steps_text, teacher_row, trial_rows
    from hybridsearch.search.results import load_study, print_front
    from hybridsearch.search.rundir import load_run

    run = load_run(args.run_dir)
    study = load_study(run)
    rows = trial_rows(study)
    table = Table(title=f"trials of {run.path}")
    for col in ("trial", "state", "dev", "latency ms", "size MB", "steps", "seeded", "reason",
                "architecture ; choices"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["trial"]), r["state"].lower(), fmt(r.get("dev_score")), fmt(r.get("latency_ms"), ".2f"),
                      fmt(r.get("size_mb"), ".1f"), steps_text(r), "yes" if r["seeded"] else "", r.get("reason") or "",
                      describe(r["params"]))
    Console().print(table)
    teacher = teacher_row(study)
    fr = front(rows)
    print_front(fr, teacher)
    budgets = [("no budget", None, None)]
    if args.max_latency_ms or args.max_size_mb:
        budgets.append((f"latency <= {args.max_latency_ms} ms, size <= {args.max_size_mb} MB",
                        args.max_latency_ms, args.max_size_mb))
    for name, lat, size in budgets:
        best = select_best(front(rows, lat, size), teacher, lat, size)
        print(f"best ({name}): " + (f"trial {best['trial']} dev {fmt(best['dev_score'])} "
                                     f"x{fmt(best.get('speedup'), '.2f')}" if best else "none"))
    return 0
