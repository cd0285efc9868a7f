"""`hybridsearch search --backend ray`, until the CLI has that flag: the same `search` command with
its Optuna loop swapped for `run_backend("ray", ...)` (same objective, study, run directory, report).

    flock /tmp/hs-heavy.lock python experiments/search/ray_default.py --concurrency 2 --trials 6 --out RUN_DIR

Flags of this script: --concurrency, --cpus-per-trial; everything else goes to `hybridsearch search`.
Use a fresh --out: the default RUN_DIR of the same task / teacher / space is the Optuna run's.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--cpus-per-trial", type=float, default=1.0)
    ours, rest = parser.parse_known_args(argv)

    import hybridsearch.search.optuna_backend as optuna_backend
    from hybridsearch.cli import main as cli
    from hybridsearch.search.backends import run_backend

    def ray_search(space, objective, storage_url, settings, *, study_name, metadata=None, on_trial=None, **_):
        if not storage_url.startswith("sqlite:///"):
            raise SystemExit("this script derives RUN_DIR from the default SQLite storage; drop --storage")
        from pathlib import Path

        run_dir = Path(storage_url[len("sqlite:///"):]).parent
        return run_backend("ray", space, objective, storage_url, settings, run_dir, study_name=study_name,
                           metadata=metadata, concurrency=ours.concurrency, cpus_per_trial=ours.cpus_per_trial)

    optuna_backend.run_search = ray_search  # `search` imports it at call time
    return cli(["search", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
