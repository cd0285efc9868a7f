"""Run directories: where one search run keeps its study, front, report and best student.

RUN_DIR/run.json marks a run: {task, teacher_fingerprint, space, space_hash, storage,
study_name, created}. Re-running the same command finds the same default
directory (a hash of task, teacher fingerprint and space) and resumes; a run made
for another task / teacher / space is refused with a one-line `UserError`, and so
is a non-empty directory that is not a run.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from hybridsearch import paths
from hybridsearch.errors import UserError

RUN_FILE = "run.json"
STUDY_NAME = "hybridsearch"
IDENTITY_KEYS = ("task", "teacher_fingerprint", "space_hash")
DEFAULT_STORAGE = "run-dir"  # run.json's "storage" for the run directory's own study.db


@dataclass
class Run:
    path: Path
    meta: dict = field(default_factory=dict)

    @property
    def storage(self) -> str:
        """The study's URL: the run directory's own study.db unless the user gave another URL. A run
        directory that was copied or moved (from a GPU machine, say) reads its own study.db, not the
        one at the place where it was made (older run.json files name that place)."""
        url = self.meta.get("storage")
        local = default_storage(self.path)
        if not url or url == DEFAULT_STORAGE:
            return local
        if url != local and url.startswith("sqlite:///") and url.endswith("/study.db") and (self.path / "study.db").exists():
            return local
        return url

    @property
    def study_name(self) -> str:
        return self.meta.get("study_name", STUDY_NAME)

    def file(self, name: str) -> Path:
        return self.path / name


def default_storage(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve() / 'study.db'}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", Path(str(text)).stem if "/" in str(text) else str(text)).strip("-")[:32] or "task"


def default_run_dir(task: str, teacher_fingerprint: str, space_hash: str, root=None) -> Path:
    """Deterministic RUN_DIR for (task, teacher, space) under the run root."""
    key = hashlib.sha256(f"{task}|{teacher_fingerprint}|{space_hash}".encode()).hexdigest()[:10]
    return paths.runs_root(root) / f"{_slug(task)}-{key}"


def open_run(path, identity: dict, storage: str | None = None, extra: dict | None = None) -> Run:
    """Create or resume the run at `path`; `identity` holds task, teacher_fingerprint, space_hash (and space)."""
    path = Path(path).expanduser().resolve()
    marker = path / RUN_FILE
    if marker.is_file():
        run = load_run(path)
        for key in IDENTITY_KEYS:
            if key in identity and run.meta.get(key) != identity[key]:
                raise UserError(
                    f"{path} is a run for {key.replace('_', ' ')} {run.meta.get(key)!r}, not {identity[key]!r}; "
                    f"resume it with the same settings or pass another --out"
                )
        if storage and storage != run.storage:
            raise UserError(f"{path} keeps its study in {run.storage}; drop --storage or pass that URL")
        return run
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UserError(f"{path} is not a hybridsearch run (no {RUN_FILE}); pass a new or empty directory to --out")
    path.mkdir(parents=True, exist_ok=True)
    meta = {**identity, **(extra or {}), "storage": storage or DEFAULT_STORAGE, "study_name": STUDY_NAME,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    marker.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return Run(path, meta)


def update_run(run: Run, **values) -> None:
    """Add keys to run.json (e.g. the objective's settings, so export can re-distill a trial)."""
    run.meta.update(values)
    (run.path / RUN_FILE).write_text(json.dumps(run.meta, indent=2, sort_keys=True, default=str))


def load_run(path) -> Run:
    """An existing run (for study show / export / report); `UserError` if `path` is not one."""
    path = Path(path).expanduser().resolve()
    marker = path / RUN_FILE
    if not marker.is_file():
        raise UserError(f"{path} is not a hybridsearch run (no {RUN_FILE}); give the RUN_DIR a search wrote")
    try:
        meta = json.loads(marker.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{marker} is damaged ({exc}); restore it or start a new run") from None
    return Run(path, meta)


def environment_info() -> dict:
    """Package versions, code version, CPU / GPU model: stored with the study."""
    from importlib import metadata

    info = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("hybridsearch", "torch", "transformers", "optuna", "datasets", "numpy"):
        try:
            info[f"version.{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        root = Path(__file__).resolve().parents[2]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"], capture_output=True,
                               text=True, timeout=5)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    info["cpu"] = _cpu_model()
    try:
        import torch

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["gpu"] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
