"""CLI subcommands, one module each.

Each module defines:
    NAME: str                               # the subcommand name
    HELP: str                               # one line for `hybridsearch --help`
    def add_arguments(parser) -> None       # fills its argparse parser
    def run(args) -> int | None             # does the work; returns an exit code

and is listed in `COMMAND_MODULES` below, in the order `--help` shows them.
Modules are imported when the CLI starts, so keep their top-level imports light:
import torch / transformers inside `run`.
"""

COMMAND_MODULES = [
    # add one line per subcommand module, in --help order
    "hybridsearch.commands.data",
    "hybridsearch.commands.teacher",
    "hybridsearch.commands.profile",
    "hybridsearch.commands.baselines",
    "hybridsearch.commands.search",
    "hybridsearch.commands.study",
    "hybridsearch.commands.export",
    "hybridsearch.commands.retrain",
    "hybridsearch.commands.report",
    "hybridsearch.commands.latency",
]
