"""Hybrid students: the arch description, the block registry, the model, init from a teacher.

Torch loads lazily: `from hybridsearch.students import StudentArch` stays light; model
classes and functions import torch on first access.
"""

from __future__ import annotations

from hybridsearch.students.arch import EmbeddingSpec, LayerSpec, StudentArch

_LAZY = {
    "HybridStudent": "hybridsearch.students.model",
    "StudentOutput": "hybridsearch.students.model",
    "init_from_teacher": "hybridsearch.students.init",
    "arch_from_teacher_config": "hybridsearch.students.init",
    "size_bytes": "hybridsearch.students.size",
    "param_count": "hybridsearch.students.size",
    "for_deployment": "hybridsearch.students.deploy",
    "save_student": "hybridsearch.students.export",
    "load_student": "hybridsearch.students.export",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hybridsearch.students' has no attribute {name!r}")


__all__ = ["EmbeddingSpec", "LayerSpec", "StudentArch", *_LAZY]
