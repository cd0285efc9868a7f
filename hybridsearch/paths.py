"""Where things live on disk.

- cache directory: downloads, fine-tuned teachers and teacher-output caches.
  Resolution order: explicit argument (`--cache-dir`), `$HYBRIDSEARCH_CACHE`,
  `$XDG_CACHE_HOME/hybridsearch`, `~/.cache/hybridsearch`.
- run directories: one per search run, under the run root (`./runs` by default,
  `$HYBRIDSEARCH_RUNS` to override). Kept apart from the cache on purpose: a
  cache can be deleted at any time, a run directory holds results.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "HYBRIDSEARCH_CACHE"
RUNS_ENV = "HYBRIDSEARCH_RUNS"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache directory (created if missing)."""
    if override:
        path = Path(override)
    elif os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "hybridsearch"
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_root(override: str | os.PathLike | None = None) -> Path:
    """The root under which default run directories are made (not created here)."""
    if override:
        return Path(override).expanduser().resolve()
    return Path(os.environ.get(RUNS_ENV, "runs")).expanduser().resolve()
