"""One entry point for every search backend: `run_backend(name, ...)`, plus its CLI flags.

`add_backend_arguments(parser)` adds --backend, --concurrency, --cpus-per-trial, --gpus-per-trial,
--address, --node-type and --nni-algorithm; `run_backend(args.backend, space, objective, run.storage, settings,
run.path, study_name=..., metadata=..., on_trial=..., **backend_options(args))` runs (or resumes)
the search and returns the Optuna study. Flags that only one backend understands are refused for
the others with a one-line `UserError`.
"""

from __future__ import annotations

import argparse

from hybridsearch.errors import UserError

BACKENDS = ("optuna", "ray", "nni")


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    from hybridsearch.search.ray_backend import ASHA_HELP

    parser.add_argument("--backend", default="optuna", help="optuna (default, this process), ray (Ray Tune: "
                        "local or --address cluster; " + ASHA_HELP + "), or nni (an NNI tuner, scalarized "
                        "on the dev score)")
    parser.add_argument("--concurrency", type=int, default=1, help="trials at once (--backend ray; default: 1)")
    parser.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per Ray trial (default: 1)")
    parser.add_argument("--gpus-per-trial", type=float, default=0.0,
                        help="GPU share per Ray trial, fractions allowed, e.g. 0.5 (default: 0)")
    parser.add_argument("--address", default=None, metavar="HOST:PORT",
                        help="join this Ray cluster (default: start a local Ray for the search and stop it after)")
    parser.add_argument("--node-type", default=None, metavar="RESOURCE",
                        help="run Ray trials (and so measure latency) only on nodes started with this custom "
                        "resource, e.g. ray start --resources='{\"rpi4\": 1}' (default: any node)")
    parser.add_argument("--nni-algorithm", default="tpe", choices=("tpe", "random"),
                        help="NNI tuner for --backend nni (default: tpe)")


def backend_options(args) -> dict:
    """The backend flags of parsed `args`, as keyword arguments of `run_backend`."""
    return {k: getattr(args, k) for k in ("concurrency", "cpus_per_trial", "gpus_per_trial", "address", "node_type",
                                          "nni_algorithm") if hasattr(args, k)}


def check_backend(name: str, *, concurrency: int = 1, cpus_per_trial: float = 1.0, gpus_per_trial: float = 0.0,
                  address: str | None = None, node_type: str | None = None, **_ignored) -> None:
    """Refuse an unknown backend or flags the backend does not understand (cheap: call before any work)."""
    if name not in BACKENDS:
        raise UserError(f"unknown --backend {name!r}; use one of {', '.join(BACKENDS)}")
    ray_only = {"--cpus-per-trial": cpus_per_trial != 1.0, "--gpus-per-trial": gpus_per_trial != 0.0,
                "--address": address is not None, "--node-type": node_type is not None}
    if name != "ray":
        used = [flag for flag, on in ray_only.items() if on] + (["--concurrency"] if concurrency != 1 else [])
        if used:
            raise UserError(f"{', '.join(used)} need --backend ray; add it or drop them")


def run_backend(name: str, space, objective, storage_url: str | None, settings, run_dir, *, study_name: str,
                metadata: dict | None = None, on_trial=None, concurrency: int = 1, cpus_per_trial: float = 1.0,
                gpus_per_trial: float = 0.0, address: str | None = None, node_type: str | None = None,
                nni_algorithm: str = "tpe",
                ray_verbose: int = 1):
    """Run or resume the search of `run_dir` with backend `name`; the Optuna study."""
    check_backend(name, concurrency=concurrency, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                  address=address, node_type=node_type)
    if name == "optuna":
        from hybridsearch.search.optuna_backend import run_search

        return run_search(space, objective, storage_url, settings, study_name=study_name, metadata=metadata,
                          on_trial=on_trial)
    if name == "nni":
        from hybridsearch.search.nni_backend import run_nni_search

        return run_nni_search(space, objective, storage_url, settings, run_dir, algorithm=nni_algorithm,
                              study_name=study_name, metadata=metadata, on_trial=on_trial)
    from hybridsearch.search.ray_backend import RaySettings, run_ray_search

    rs = RaySettings(concurrency=concurrency, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                     address=address, node_type=node_type, verbose=ray_verbose)
    return run_ray_search(space, objective, storage_url, settings, run_dir, rs, study_name=study_name,
                          metadata=metadata, on_trial=on_trial)
