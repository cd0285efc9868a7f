"""Where an evaluation's task, teacher and latency protocol come from, as plain settings.

    ctx = build_context(TaskSource("my.csv", text_column="review"), TeacherSource("/path/teacher"),
                        LatencyProtocol(device="cpu", shape=(1, 64)), cache_dir=None, max_length=64)

The three dataclasses are picklable (a search worker process rebuilds its `EvalContext`
from them) and JSON-able (`asdict`: run.json keeps them so `export` can re-distil a trial).
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class TaskSource:
    """A task name or local file, and the column options of `data.load_task`."""

    task: str = "mr"
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    dev_file: str | None = None
    test_file: str | None = None
    num_labels: int | None = None

    def load(self, cache_dir=None):
        """The `data.Task` (fetched into the cache where needed)."""
        from hybridsearch.data import load_task

        opts = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "task"}
        return load_task(self.task, cache_dir=cache_dir, **opts)

    @classmethod
    def from_dict(cls, d: dict) -> TaskSource:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class TeacherSource:
    """A ready teacher: a local directory or a hub name (`teacher.load_teacher`)."""

    path: str

    def load(self):
        from hybridsearch.teacher import load_teacher

        return load_teacher(self.path)


@dataclass(frozen=True)
class LatencyProtocol:
    """How latency is measured: device, input shape (batch, seq), threads, timed calls, compute dtype."""

    device: str = "cpu"
    shape: tuple[int, int] = (1, 64)
    threads: int | None = None
    repeats: int = 30
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, d: dict) -> LatencyProtocol:
        names = {f.name for f in fields(cls)}
        out = {k: v for k, v in d.items() if k in names}
        if "shape" in out:
            out["shape"] = tuple(out["shape"])
        return cls(**out)


def build_context(task: TaskSource, teacher: TeacherSource, latency: LatencyProtocol, *, cache_dir=None,
                  max_length: int = 64, progress: bool = False):
    """Load task and teacher, read (or build) the teacher-logit cache; the `EvalContext` of one worker."""
    from hybridsearch.distill.evaluate import EvalContext
    from hybridsearch.teacher import teacher_logits

    t, tch = task.load(cache_dir), teacher.load()
    logits = teacher_logits(tch, t, max_length=max_length, cache_dir=cache_dir, device=latency.device)
    return EvalContext(task=t, teacher=tch, logits=logits, device=latency.device, shape=tuple(latency.shape),
                       threads=latency.threads, repeats=latency.repeats, dtype=latency.dtype, cache_dir=cache_dir,
                       progress=progress)
