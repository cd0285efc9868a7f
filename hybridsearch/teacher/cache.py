"""Teacher-output cache: logits of every split, once per (teacher, task, max length).

File: `<cache>/logits/<teacher fp[:16]>-<task fp[:16]>-L<max_length>.safetensors`, one
float32 tensor (N, C) per split, with the full fingerprints, max length and a sha256 of
the tensors in its metadata. A file that cannot be parsed, belongs to other inputs or
fails its checksum is reported with a warning and rebuilt, never used. A teacher whose named
labels differ from the task's is refused (`load.check_teacher_labels`).
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

from hybridsearch.data.fileio import atomic_write_bytes, warn
from hybridsearch.data.task import SPLITS
from hybridsearch.errors import UserError

FORMAT = "hybridsearch-logits-1"


def logits_path(teacher_fp: str, task_fp: str, max_length: int, cache_dir=None) -> Path:
    from hybridsearch import paths

    return paths.cache_dir(cache_dir) / "logits" / f"{teacher_fp[:16]}-{task_fp[:16]}-L{int(max_length)}.safetensors"


def _checksum(arrays: dict) -> str:
    h = hashlib.sha256()
    for name in SPLITS:
        a = arrays[name]
        h.update(f"{name}:{a.dtype}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read(path: Path, meta_expected: dict, sizes: dict[str, int], num_labels: int) -> dict:
    """The cached arrays, or ValueError saying why the file cannot be used."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as fh:
            meta = fh.metadata() or {}
            arrays = {name: fh.get_tensor(name) for name in SPLITS}
    except Exception as exc:
        raise ValueError(f"unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    for key, value in meta_expected.items():
        if meta.get(key) != value:
            raise ValueError(f"metadata {key}={meta.get(key)!r}, expected {value!r}")
    for name in SPLITS:
        if arrays[name].shape != (sizes[name], num_labels):
            raise ValueError(f"split {name} has shape {arrays[name].shape}, expected {(sizes[name], num_labels)}")
    if meta.get("sha256") != _checksum(arrays):
        raise ValueError("checksum mismatch")
    return arrays


def teacher_logits(teacher, task, max_length: int = 64, cache_dir=None, batch_size: int = 64,
                   verbose: bool = True, device: str = "cpu") -> dict:
    """{"train"|"dev"|"test": float32 numpy (N, C)}: from the cache, else computed on `device` and
    saved (the teacher model is left on CPU)."""
    import numpy as np
    from safetensors.numpy import save

    from hybridsearch.teacher.load import check_teacher_labels, predict_logits

    num_labels = task.spec.num_labels
    check_teacher_labels(teacher.model.config.id2label, task, teacher.path)
    if teacher.model.config.num_labels != num_labels:
        raise UserError(f"teacher {teacher.path} has {teacher.model.config.num_labels} labels but task "
                        f"{task.spec.name} has {num_labels}; fine-tune a teacher for this task")
    path = logits_path(teacher.fingerprint, task.fingerprint, max_length, cache_dir)
    expected = {"format": FORMAT, "teacher": teacher.fingerprint, "task": task.fingerprint,
                "max_length": str(int(max_length))}
    sizes = {name: len(task.splits[name]) for name in SPLITS}
    if path.exists():
        try:
            arrays = _read(path, expected, sizes, num_labels)
            if verbose:
                print(f"teacher outputs loaded from cache {path}", file=sys.stderr)
            return arrays
        except ValueError as exc:
            warn(f"teacher-output cache {path} is corrupt ({exc}); rebuilding it")
            path.unlink(missing_ok=True)
    start = time.perf_counter()
    arrays = {}
    for name in SPLITS:
        texts, pairs = task.texts(name)
        arrays[name] = np.ascontiguousarray(predict_logits(
            teacher.model, teacher.tokenizer, texts, pairs, max_length, batch_size,
            desc=f"teacher logits {name}" if verbose else None, device=device), dtype=np.float32)  # (N, C)
    teacher.model.to("cpu")
    meta = dict(expected, sha256=_checksum(arrays))
    atomic_write_bytes(path, save(arrays, metadata=meta))
    if verbose:
        print(f"teacher outputs computed in {time.perf_counter() - start:.1f}s, cached at {path}", file=sys.stderr)
    return arrays
