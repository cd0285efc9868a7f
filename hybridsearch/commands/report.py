"""`hybridsearch report RUN_DIR [--baselines DIR]`: Pareto plot, front table, architecture picture."""

from __future__ import annotations

import argparse

NAME = "report"
HELP = "write a search run's report (pareto.png, arch.png, report.md) into RUN_DIR"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by hybridsearch search")
    parser.add_argument("--baselines", default=None, metavar="DIR", help="a hybridsearch baselines --out directory")


def run(args) -> int:
    from hybridsearch.report import write_report
    from hybridsearch.search.results import load_study
    from hybridsearch.search.rundir import load_run

    run = load_run(args.run_dir)
    out = write_report(run.path, load_study(run), args.baselines)
    print(f"wrote {out}, {run.path / 'pareto.png'}, {run.path / 'arch.png'}")
    return 0
