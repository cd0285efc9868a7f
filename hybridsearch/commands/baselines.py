"""`hybridsearch baselines`: the survey's compression methods on one teacher and task -> Table 2."""

from __future__ import annotations

import argparse
import time

from hybridsearch.commands.data import add_task_arguments, task_from_args

NAME = "baselines"
HELP = "run the survey's compression methods as fixed recipes; write its Table 2 and a Pareto plot"
DESCRIPTION = """Runs every baseline method (DQ, EP, SP, KD-OL, KD-EO, KD-EO+AM, PS, EMC, AD) on the same
teacher and task with the same step budget, measures each against the teacher in the same
run (latency interleaved), and writes DIR/table.md, DIR/table.csv and DIR/pareto.png.
Finished rows are kept in DIR/rows/ and reused when the run is repeated (--fresh redoes them).
Methods: see hybridsearch/baselines.py."""

EPILOG = """examples:
  hybridsearch baselines --task mr --out runs/baselines
  hybridsearch baselines --task mr --out runs/b --steps 100 --methods dq8,kd-eo
  hybridsearch baselines --task data.csv --teacher path/to/classifier --out runs/b"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_task_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory for the table and plot")
    parser.add_argument("--steps", type=int, default=400, help="distillation steps per method (default: 400; the mr table takes just under an hour on 2 cores)")
    parser.add_argument("--methods", default="all", help="comma-separated subset of the methods (default: all)")
    parser.add_argument("--teacher", default=None, metavar="NAME|DIR",
                        help="a ready classifier to use as teacher (default: fine-tune --backbone once, reused)")
    parser.add_argument("--backbone", default="default", help="backbone for the fine-tuned teacher (default: default)")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per example (default: 64)")
    parser.add_argument("--shape", default="1x64", help="latency input shape BATCHxSEQ (default: 1x64)")
    parser.add_argument("--dtype", default="float32", help="latency compute dtype: float32 (default), or float16 / "
                        "bfloat16 with --device cuda (teacher and students alike; int8 layers run dequantized)")
    parser.add_argument("--threads", type=int, default=None, help="threads for latency (default: all cores)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per model (default: 30)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--fresh", action="store_true", help="recompute rows already in DIR/rows/")


def run(args) -> int:
    from hybridsearch.baselines import run_baselines, select_methods
    from hybridsearch.distill.evaluate import EvalContext
    from hybridsearch.errors import UserError
    from hybridsearch.measure.latency import cli_latency_dtype, parse_shape, resolve_device

    start = time.perf_counter()
    methods = select_methods(args.methods)
    if args.steps <= 0:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    shape = parse_shape(args.shape)
    resolve_device(args.device)
    dtype = cli_latency_dtype(args.device, args.dtype)
    from hybridsearch.teacher import ensure_teacher, load_teacher, teacher_logits

    task = task_from_args(args)
    teacher = load_teacher(args.teacher) if args.teacher else ensure_teacher(
        task, backbone=args.backbone, cache_dir=args.cache_dir, device=args.device)
    logits = teacher_logits(teacher, task, max_length=args.max_length, cache_dir=args.cache_dir, device=args.device)
    context = EvalContext(task=task, teacher=teacher, logits=logits, device=args.device, shape=shape, dtype=dtype,
                          threads=args.threads, repeats=args.repeats, cache_dir=args.cache_dir)
    rows = run_baselines(context, args.out, methods, steps=args.steps, fresh=args.fresh)
    _print_table(rows)
    print(f"wrote {args.out}/table.md, table.csv, pareto.png; wall time {time.perf_counter() - start:.0f}s")
    return 0


def _print_table(rows) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="survey baselines")
    for col in ("method", "size %", "speed-up", "score", "± se", "p vs teacher", "status"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(r.get(k)) if r.get(k) is not None else "—"
                        for k in ("method", "size_pct", "speedup", "score", "score_se", "p_vs_teacher", "status")))
    Console().print(table)
