"""`hybridsearch latency calibrate | check`: build the latency model, and measure its error."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hybridsearch.errors import UserError

NAME = "latency"
HELP = "build the latency model for this device (calibrate) and measure its error on unseen students (check)"
DESCRIPTION = (
    "calibrate: time every block configuration the search space can produce (as deployed), the embeddings "
    "and head, and a few whole students, interleaved with the teacher; the table is cached per device, "
    "threads, input shape, dtype, library versions, teacher shape and space, and rebuilt when one changes. "
    "check: time N random students from the space that were not used for calibration, interleaved with "
    "the teacher, and print the model's median and worst relative error."
)


def _common(p) -> None:
    p.add_argument("--cache-dir", default=argparse.SUPPRESS, help="cache directory (as for every command)")
    p.add_argument("--teacher", default="default", help="teacher: 'default' (MiniLM-L6-H384), a local "
                   "Hugging Face directory or a hub name (default: default)")
    p.add_argument("--space", default="hybrid", help="search space name or YAML path (default: hybrid)")
    p.add_argument("--shape", default="1,64", help="input shape BATCH,SEQ (default 1,64)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores available)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--dtype", default="float32", help="compute dtype of every timed model, the teacher included: "
                   "float32 (default), or float16 / bfloat16 with --device cuda (int8 layers then run "
                   "dequantized: torch has no eager int8 GPU kernels)")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per model and group (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed warm-up calls per group (default 3)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="latency_command", metavar="ACTION")
    cal = sub.add_parser("calibrate", help="build (or reuse) the latency table for this device and space",
                         description="Build the latency table (cached; --force rebuilds).")
    _common(cal)
    cal.add_argument("--students", type=int, default=30, help="whole students timed to fit the correction "
                     "(default 30)")
    cal.add_argument("--force", action="store_true", help="rebuild even when a cached table matches")
    cal.add_argument("--out", default=None, metavar="FILE", help="also write the table to FILE "
                     "(pass it later with --latency-table FILE)")
    chk = sub.add_parser("check", help="relative error of the latency model on N unseen random students",
                         description="Time N random students from the space (disjoint from the calibration "
                         "set) interleaved with the teacher; print median and worst relative error.")
    _common(chk)
    chk.add_argument("--n", type=int, default=30, help="number of students (default 30)")
    chk.add_argument("--latency-table", default=None, metavar="FILE", help="use this table (refused when built "
                     "on another device, threads, shape or versions) instead of the cached one")
    chk.add_argument("--out", default=None, metavar="FILE", help="write the per-student results as JSON")


def _setup(args):
    from hybridsearch.measure.latency import cli_latency_dtype, parse_shape, resolve_device
    from hybridsearch.search.space import load_space
    from hybridsearch.teacher.load import load_teacher

    resolve_device(args.device)
    args.dtype = cli_latency_dtype(args.device, args.dtype)
    shape = parse_shape(args.shape)
    if args.threads is not None and args.threads <= 0:
        raise UserError(f"--threads must be positive, got {args.threads}")
    if args.repeats < 1 or args.warmup < 0:
        raise UserError("--repeats must be >= 1 and --warmup >= 0")
    space = load_space(args.space)
    teacher = load_teacher(args.teacher).model
    return shape, space, teacher


def run(args) -> int:
    if not getattr(args, "latency_command", None):
        raise UserError("say what to do: hybridsearch latency calibrate | check (see --help)")
    return _calibrate(args) if args.latency_command == "calibrate" else _check(args)


def _calibrate(args) -> int:
    from hybridsearch.measure.latency_model import get_table

    shape, space, teacher = _setup(args)
    if args.students < 0:
        raise UserError("--students must be >= 0")
    table, path, built = get_table(teacher, space, shape, args.threads, args.device, cache_dir=args.cache_dir,
                                   rebuild=args.force, repeats=args.repeats, warmup=args.warmup,
                                   n_students=args.students, progress=not args.no_progress, dtype=args.dtype)
    print(("built " if built else "reused cached ") + f"latency table {path}")
    _summary(table)
    if args.out:
        print(f"wrote {table.save(args.out)}")
    return 0


def _summary(table) -> None:
    fp = table.fingerprint
    print(f"device {fp['device']}, {fp['threads']} threads, shape {fp['shape'][0]}x{fp['shape'][1]}, "
          f"dtype {fp.get('dtype', 'float32')}, "
          f"torch {fp['torch']}, transformers {fp['transformers']}")
    from hybridsearch.measure.latency_calib import format_correction

    print(f"teacher {fp['teacher']}: {table.teacher_ms:.2f} ms; {len(table.entries)} parts; "
          f"correction {format_correction(table.correction)}")


def _check(args) -> int:
    from hybridsearch.measure.latency_calib import check
    from hybridsearch.measure.latency_model import current_fingerprint, get_table, load_explicit

    shape, space, teacher = _setup(args)
    if args.n < 1:
        raise UserError(f"--n must be >= 1, got {args.n}")
    if args.latency_table:
        table = load_explicit(args.latency_table,
                              current_fingerprint(teacher.config, shape, args.threads, args.device, args.dtype))
        print(f"using latency table {args.latency_table}")
    else:
        table, path, built = get_table(teacher, space, shape, args.threads, args.device, cache_dir=args.cache_dir,
                                       repeats=args.repeats, warmup=args.warmup, progress=not args.no_progress,
                                       dtype=args.dtype)
        print(("built " if built else "using cached ") + f"latency table {path}")
    _summary(table)
    result = check(table, teacher, space, n=args.n, repeats=args.repeats, warmup=args.warmup, device=args.device,
                   progress=not args.no_progress)
    _print_check(result)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"fingerprint": table.fingerprint, **result}, indent=1) + "\n")
        print(f"wrote {out}")
    return 0


def _print_check(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"latency model vs measurement ({result['n']} unseen students)")
    for col in ("seed", "student", "measured ms", "predicted ms", "measured ratio", "predicted ratio", "error"):
        t.add_column(col, justify="left" if col == "student" else "right")
    for r in result["rows"]:
        t.add_row(str(r["seed"]), r["layers"], f"{r['measured_ms']:.2f}", f"{r['predicted_ms']:.2f}",
                  f"{r['measured_ratio']:.3f}", f"{r['predicted_ratio']:.3f}", f"{100 * r['rel_error']:+.1f}%")
    Console().print(t)
    print(f"teacher: {result['teacher_ms_now']:.2f} ms now, {result['teacher_ms_calibration']:.2f} ms at calibration")
    print(f"relative error of the predicted ratio to the teacher: median {100 * result['median_rel_error']:.1f}%, "
          f"worst {100 * result['worst_rel_error']:.1f}% (mean signed {100 * result['mean_signed_error']:+.1f}%)")
    print(f"relative error in ms (vs this run's measurement): median {100 * result['median_ms_error']:.1f}%, "
          f"worst {100 * result['worst_ms_error']:.1f}%")
