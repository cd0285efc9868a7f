"""`hybridsearch export RUN_DIR --trial N | --best [--max-latency-ms X] --to DIR`."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "export a trial's student (or the best) of a search run as a transformers-loadable directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by hybridsearch search")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--trial", type=int, help="trial number (see hybridsearch study show)")
    which.add_argument("--best", action="store_true",
                       help="highest dev score within the budgets; with none, the fastest within 1 point of the teacher")
    parser.add_argument("--max-latency-ms", type=float, default=None)
    parser.add_argument("--max-size-mb", type=float, default=None)
    parser.add_argument("--to", required=True, metavar="DIR", help="output directory")


def run(args) -> int:
    from hybridsearch.errors import UserError
    from hybridsearch.search.pareto import front, select_best, teacher_row, trial_rows
    from hybridsearch.search.results import export_trial, load_study
    from hybridsearch.search.rundir import load_run

    run = load_run(args.run_dir)
    study = load_study(run)
    number = args.trial
    if args.best:
        rows = trial_rows(study)
        best = select_best(front(rows, args.max_latency_ms, args.max_size_mb), teacher_row(study),
                           args.max_latency_ms, args.max_size_mb)
        if best is None:
            raise UserError("no complete trial meets the budgets; relax --max-latency-ms / --max-size-mb")
        number = best["trial"]
    out = export_trial(run, study, number, args.to)
    print(f"exported trial {number} to {out}")
    return 0
