"""Teachers: load a BERT-family classifier, fine-tune it once, cache its outputs.

    from hybridsearch.teacher import load_teacher, ensure_teacher, teacher_logits, encode
    t = ensure_teacher(task)                      # fine-tunes the default MiniLM once, reuses later
    logits = teacher_logits(t, task, max_length=64)   # {"train"|"dev"|"test": np (N, C) float32}

See docs/architecture.md (teacher/). torch / transformers load inside the functions.
"""

from hybridsearch.teacher.cache import logits_path, teacher_logits
from hybridsearch.teacher.finetune import FinetuneConfig, ensure_teacher, teacher_dir
from hybridsearch.teacher.load import (
    DEFAULT_BACKBONE,
    Teacher,
    check_teacher_labels,
    default_backbone_dir,
    encode,
    load_teacher,
    predict_logits,
    teacher_fingerprint,
)

__all__ = [
    "DEFAULT_BACKBONE",
    "FinetuneConfig",
    "Teacher",
    "check_teacher_labels",
    "default_backbone_dir",
    "encode",
    "ensure_teacher",
    "load_teacher",
    "logits_path",
    "predict_logits",
    "teacher_dir",
    "teacher_fingerprint",
    "teacher_logits",
]
