"""`hybridsearch search`: the main job — teacher, quick Optuna search, Pareto front, report, best student."""

from __future__ import annotations

import argparse
import time

from hybridsearch.commands.data import add_task_arguments, task_from_args

NAME = "search"
HELP = "search hybrid students of a teacher (the main job; no arguments = mr, default teacher, 12 trials)"
DESCRIPTION = """Fetches the task, fine-tunes (or reuses) the teacher, runs an Optuna study over the search
space (each trial distils and measures one student in a worker process), then prints the Pareto
front and writes RUN_DIR/pareto.csv, the report (report.md, pareto.png, arch.png) and the best
student (RUN_DIR/best/). Re-running the same command resumes the same run."""
EPILOG = """examples:
  hybridsearch search
  hybridsearch search --task sst2 --trials 30 --max-latency-ms 5
  hybridsearch search --task data.csv --text-column review --label-column stars --out runs/mine
  hybridsearch search --storage postgresql://user:pw@host/db --out runs/shared   # several machines"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_task_arguments(parser)
    parser.add_argument("--teacher", default=None, metavar="NAME|DIR",
                        help="a ready classifier as teacher (default: fine-tune --backbone once, reused)")
    parser.add_argument("--backbone", default="default", help="backbone of the fine-tuned teacher (default: default)")
    parser.add_argument("--space", default="hybrid", help="search space name or YAML path (default: hybrid)")
    parser.add_argument("--trials", type=int, default=12, help="finished trials in the study (default: 12)")
    parser.add_argument("--timeout", type=float, default=None, help="wall-clock limit of the search in seconds")
    parser.add_argument("--objective", default="multi", choices=("multi", "score"),
                        help="multi: score up, latency and size down (default); score: dev score only, pruned")
    parser.add_argument("--sampler", default=None, choices=("nsga2", "tpe", "random"),
                        help="default: nsga2 for multi, tpe for score")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default: 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--shape", default="1x64", help="latency input shape BATCHxSEQ (default: 1x64)")
    parser.add_argument("--dtype", default="float32", help="latency compute dtype: float32 (default), or float16 / "
                        "bfloat16 with --device cuda (teacher and students alike; int8 layers run dequantized)")
    parser.add_argument("--threads", type=int, default=None, help="threads for latency (default: all cores)")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per model (default: 30)")
    parser.add_argument("--max-latency-ms", type=float, default=None, help="latency budget (a constraint)")
    parser.add_argument("--max-size-mb", type=float, default=None, help="size budget (a constraint)")
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="study database URL (default: sqlite in RUN_DIR; PostgreSQL for several machines)")
    parser.add_argument("--out", default=None, metavar="RUN_DIR",
                        help="run directory (default: runs/<task>-<hash of task, teacher, space>)")
    parser.add_argument("--steps", type=int, default=None, help="distillation steps per trial (default: the space's)")
    parser.add_argument("--latency-table", default=None, metavar="FILE|auto",
                        help="pre-check candidates with the latency model instead of timing them: 'auto' uses "
                        "this device's cached table (built by `hybridsearch latency calibrate`, or now), FILE an "
                        "explicit table (refused if built on another device / threads / shape)")
    parser.add_argument("--no-seeds", action="store_true", help="do not enqueue the space's known-good points")
    parser.add_argument("--no-promote", action="store_true",
                        help="never train a trial past its budget (default: as in ASHA, a trial in the top quarter "
                             "of those finished towards the --best choice trains its budget again)")
    parser.add_argument("--isolation", default="process", choices=("process", "inline"),
                        help="run trials in a worker process (default) or inline (debugging)")
    from hybridsearch.search.backends import add_backend_arguments

    add_backend_arguments(parser)


def run(args) -> int:
    from hybridsearch.distill.context import LatencyProtocol, TaskSource, TeacherSource
    from hybridsearch.errors import UserError
    from hybridsearch.measure.latency import cli_latency_dtype, parse_shape, resolve_device
    from hybridsearch.search.backends import backend_options, check_backend, run_backend
    from hybridsearch.search.distill_objective import DistillObjective
    from hybridsearch.search.rundir import default_run_dir, environment_info, open_run, update_run
    from hybridsearch.search.space import load_space
    from hybridsearch.search.study import SearchSettings

    start = time.perf_counter()
    check_backend(args.backend, **backend_options(args))  # before any work: a typo costs nothing
    space = load_space(args.space)
    shape = parse_shape(args.shape)
    resolve_device(args.device)
    dtype = cli_latency_dtype(args.device, args.dtype)
    if args.steps is not None and args.steps <= 0:
        raise UserError(f"--steps must be >= 1, got {args.steps}")
    settings = SearchSettings(
        trials=args.trials, timeout=args.timeout, objective=args.objective,
        sampler=args.sampler or ("nsga2" if args.objective == "multi" else "tpe"), seed=args.seed,
        max_latency_ms=args.max_latency_ms, max_size_mb=args.max_size_mb, isolation=args.isolation,
        enqueue_seeds=not args.no_seeds, promote=not args.no_promote).check()
    _step("1/5 task and teacher")
    from hybridsearch.teacher import ensure_teacher, load_teacher

    task = task_from_args(args)
    teacher = load_teacher(args.teacher) if args.teacher else ensure_teacher(
        task, backbone=args.backbone, cache_dir=args.cache_dir, device=args.device)
    task_id = f"{task.spec.name}:{task.fingerprint[:12]}"
    identity = {"task": task_id, "teacher_fingerprint": teacher.fingerprint, "space_hash": space.hash}
    out = args.out or default_run_dir(task.spec.name, teacher.fingerprint, space.hash)
    run = open_run(out, identity, storage=args.storage,
                   extra={"space": str(space.path), "teacher": str(teacher.path), "task_source": args.task})
    print(f"run directory: {run.path}")
    task_source = TaskSource.from_dict({k: getattr(args, k) for k in ("task", "text_column", "text_pair_column",
                                        "label_column", "dev_file", "test_file", "num_labels") if hasattr(args, k)})
    latency = LatencyProtocol(device=args.device, shape=shape, threads=args.threads,
                              repeats=args.repeats, dtype=dtype)
    objective = DistillObjective(
        str(space.path), task_source, TeacherSource(str(teacher.path)), latency, cache_dir=args.cache_dir,
        steps=args.steps, weights_dir=str(run.path / "weights"), latency_table=args.latency_table)
    update_run(run, objective=objective.state())
    metadata = {**identity, "space": space.name, "task_source": args.task, "teacher_path": str(teacher.path),
                "sampler_seed": args.seed, "shape": list(shape), "device": args.device, "dtype": dtype, **environment_info()}
    _step(f"2/5 search: {settings.trials} trials ({args.backend}, {settings.sampler}, objective {settings.objective})")
    del teacher  # the worker loads its own copy
    study = run_backend(args.backend, space, objective, run.storage, settings, run.path, study_name=run.study_name,
                        metadata=metadata, on_trial=_progress(settings.trials), **backend_options(args))
    _step("3/5 Pareto front")
    from hybridsearch.search.results import finish_run

    summary = finish_run(run, study, max_latency_ms=args.max_latency_ms, max_size_mb=args.max_size_mb,
                         objective=objective)
    print(f"wall time {time.perf_counter() - start:.0f}s; {summary}")
    return 0


def _step(text: str) -> None:
    print(f"[hybridsearch] {text}", flush=True)


def _progress(total: int):
    from hybridsearch.search.study import finished_count
    from hybridsearch.search.trial import read_outcome

    t0 = time.perf_counter()

    def on_trial(study, trial):
        outcome = read_outcome(trial)
        m = (outcome.metrics if outcome else None) or {}
        done = finished_count(study)
        what = (outcome.reason if outcome else None) or (
            f"dev {m.get('dev_score', 0):.4f}, {m.get('latency_ms') or 0:.2f} ms, x{m.get('speedup') or 0:.2f}, "
            f"{m.get('size_mb') or 0:.1f} MB, {m.get('steps') or 0} steps")
        promoted = outcome.promoted if outcome else None
        if promoted and not outcome.reason:
            what += f" (promoted at dev {promoted['dev']:.4f}: +{promoted['extra_steps']})"
        print(f"  trial {trial.number:3d} [{done}/{total}, {time.perf_counter() - t0:.0f}s] "
              f"{trial.state.name.lower()}: {what}", flush=True)

    return on_trial
