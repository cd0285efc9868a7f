"""`hybridsearch data`: inspect tasks (registered names or local files).

Also home of the shared task flags: `add_task_arguments(parser)` and
`task_from_args(args)`, used by every command that takes a task.
"""

from __future__ import annotations

import argparse

NAME = "data"
HELP = "inspect tasks: sizes, label balance, examples"
DESCRIPTION = """Inspect a task. TASK is a registered name (mr: the offline default, fetched
once into the cache; sst2, mnli, qqp, qnli, mrpc, cola, rte: GLUE, needs network) or a
local .csv/.tsv/.jsonl/.parquet file, split 70/15/15 with a fixed seed unless
--dev-file and --test-file are given."""

EPILOG = """examples:
  hybridsearch data list
  hybridsearch data show mr
  hybridsearch data show reviews.csv --text-column review --label-column sentiment
  hybridsearch data show pairs.tsv --text-column q1 --text-pair-column q2 --label-column same"""


def add_task_arguments(parser: argparse.ArgumentParser, positional: bool = False, default: str = "mr") -> None:
    """The task and its local-file flags (column names, explicit split files)."""
    if positional:
        parser.add_argument("task", metavar="TASK", help="registered task name or path to a data file")
    else:
        parser.add_argument("--task", default=default, metavar="TASK",
                            help=f"registered task name or path to a data file (default: {default})")
    group = parser.add_argument_group("local files")
    group.add_argument("--text-column", default=None, help="column with the text (default: text/sentence/sentence1)")
    group.add_argument("--text-pair-column", default=None,
                       help="column with the second text of a pair (default: text_pair/sentence2 if present)")
    group.add_argument("--label-column", default=None, help="column with the labels, strings or ints (default: label)")
    group.add_argument("--dev-file", default=None, help="explicit dev split file (needs --test-file)")
    group.add_argument("--test-file", default=None, help="explicit test split file (needs --dev-file)")
    group.add_argument("--num-labels", type=int, default=None, help="expected number of classes (checked)")


def task_from_args(args):
    """Load the task named by `add_task_arguments` flags (absent flags count as unset)."""
    from hybridsearch.data import load_task

    opts = {k: getattr(args, k, None) for k in ("text_column", "text_pair_column", "label_column", "dev_file",
                                                "test_file", "num_labels")}
    return load_task(args.task, cache_dir=getattr(args, "cache_dir", None), **opts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="sizes, label balance and examples of a task", description=DESCRIPTION,
                          epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_task_arguments(show, positional=True)
    show.add_argument("--examples", type=int, default=3, help="examples shown per split (default: 3)")
    show.add_argument("--cache-dir", default=argparse.SUPPRESS, help="cache directory (as for the parent command)")
    sub.add_parser("list", help="registered task names")


def run(args) -> int:
    from rich.console import Console

    console = Console()
    if args.data_command == "list":
        from hybridsearch.data import list_tasks

        for name, desc in list_tasks().items():
            console.print(f"[bold]{name:6}[/bold] {desc}", highlight=False)
        return 0
    show(task_from_args(args), args, console)
    return 0


def show(task, args, console) -> None:
    """Print a task's spec, split sizes, label balance and a few examples."""
    import random
    from collections import Counter

    from rich.table import Table

    from hybridsearch.data import load_transfer_texts

    spec = task.spec
    console.print(f"[bold]{spec.name}[/bold]: {'sentence pair' if spec.is_pair else 'single sentence'}, "
                  f"{spec.num_labels} labels, metric {spec.metric}", highlight=False)
    console.print(f"source: {task.source}", highlight=False)
    console.print(f"fingerprint: {task.fingerprint[:16]}", highlight=False)
    table = Table(title="splits")
    table.add_column("split")
    table.add_column("size", justify="right")
    for lab in spec.id2label.values():
        table.add_column(f"{lab}", justify="right")
    for name, ds in task.splits.items():
        counts = Counter(ds["label"])
        table.add_row(name, str(len(ds)), *[f"{counts.get(i, 0)} ({100 * counts.get(i, 0) / len(ds):.0f}%)"
                                            for i in spec.id2label])
    console.print(table)
    if task.transfer is not None:
        console.print(f"transfer sentences (unlabeled, deduped): {len(load_transfer_texts(task, args.cache_dir))}",
                      highlight=False)
    examples = Table(title="examples", show_lines=False)
    examples.add_column("split")
    examples.add_column("label")
    examples.add_column("text")
    if spec.is_pair:
        examples.add_column("text_pair")
    for name, ds in task.splits.items():
        pick = sorted(random.Random(0).sample(range(len(ds)), min(args.examples, len(ds))))
        for row in ds.select(pick):
            cells = [name, spec.id2label[row["label"]], _short(row["text"])]
            if spec.is_pair:
                cells.append(_short(row["text_pair"]))
            examples.add_row(*cells)
    console.print(examples)


def _short(text: str, width: int = 100) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
