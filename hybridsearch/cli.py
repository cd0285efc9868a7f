"""The `hybridsearch` console command: one entry point, one subcommand per module.

Bad input (`UserError`) becomes one line on stderr and exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from hybridsearch import __version__
from hybridsearch.commands import COMMAND_MODULES
from hybridsearch.errors import UserError


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every subcommand accepts."""
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="cache for downloads, teachers and teacher outputs "
        "(default: $HYBRIDSEARCH_CACHE or ~/.cache/hybridsearch)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridsearch",
        description="Find small, fast heterogeneous students of a BERT teacher for a task and a device.",
    )
    parser.add_argument("--version", action="version", version=f"hybridsearch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        add_common_arguments(cmd)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser



def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        code = args._run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and the next run resumes from it", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
