"""Search backends: thin adapters that decide *which* sample runs next and *where*.

Everything else is shared: the study (`search.study`), the trial protocol with its
precheck, drift-free latency and promotion (`search.trial`), and the record of a trial's
outcome. A backend is one class, registered by name:

    @register_backend
    class MyBackend(Backend):
        name = "mine"
        help = "one line for --help"
        options = {"my_flag": None}            # flags only this backend understands, with defaults

        @classmethod
        def add_arguments(cls, parser): parser.add_argument("--my-flag", default=None)

        def run(self, job: SearchJob) -> optuna.Study: ...

`run_backend(name, space, objective, storage_url, settings, run_dir, study_name=..., metadata=...,
on_trial=..., **options)` runs (or resumes) a search; flags that another backend owns are refused
in one line (`check_backend`, cheap: call it before any work). The in-process ask/tell loop the
Optuna and NNI backends share is `search.backends.local.run_local`. docs/extending.md: a new backend.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from hybridsearch.errors import UserError
from hybridsearch.search.rundir import STUDY_NAME


@dataclass
class SearchJob:
    """What every backend runs: the space, the objective, the study and where the run lives."""

    space: Any
    objective: Any
    storage_url: str | None
    settings: Any  # search.study.SearchSettings
    run_dir: Any = None
    study_name: str = STUDY_NAME
    metadata: dict | None = None
    on_trial: Callable | None = None  # on_trial(study, frozen_trial), in this process, after each trial


class Backend(ABC):
    """One search backend; see the module docstring."""

    name: ClassVar[str]
    help: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options):
        unknown = set(options) - set(self.options)
        if unknown:
            raise TypeError(f"{self.name} backend: unknown options {sorted(unknown)}")
        self.opts = {**self.options, **options}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the flags of `options` to the search command's parser."""
        return None

    def check(self) -> None:
        """Refuse bad option values (UserError), before any work."""
        return None

    @abstractmethod
    def run(self, job: SearchJob):
        """Run or resume `job` until `job.settings.trials` trials are finished or the timeout; the study."""


_REGISTRY: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"backend {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def list_backends() -> list[str]:
    return list(_REGISTRY)


def get_backend(name: str) -> type[Backend]:
    if name not in _REGISTRY:
        raise UserError(f"unknown --backend {name!r}; use one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    helps = "; ".join(f"{name}: {cls.help}" for name, cls in _REGISTRY.items())
    parser.add_argument("--backend", default="optuna", help=f"search backend (default: optuna). {helps}")
    for cls in _REGISTRY.values():
        cls.add_arguments(parser)


def backend_options(args) -> dict:
    """Every backend option present in parsed `args`, as keyword arguments of `check_backend` / `run_backend`."""
    names = {k for cls in _REGISTRY.values() for k in cls.options}
    return {k: getattr(args, k) for k in sorted(names) if hasattr(args, k)}


def make_backend(name: str, **options) -> Backend:
    """The backend `name` with its own options; a non-default value of another backend's option is refused."""
    cls = get_backend(name)
    foreign = [_flag(k) for other in _REGISTRY.values() if other is not cls
               for k, default in other.options.items() if k not in cls.options and k in options
               and options[k] != default]
    if foreign:
        owners = sorted({o.name for o in _REGISTRY.values() for k in o.options if _flag(k) in foreign})
        raise UserError(f"{', '.join(sorted(set(foreign)))} need --backend {' or '.join(owners)}; add it or drop them")
    backend = cls(**{k: v for k, v in options.items() if k in cls.options})
    backend.check()
    return backend


def check_backend(name: str, **options) -> None:
    """Refuse an unknown backend or flags it does not understand (cheap: call before any work)."""
    make_backend(name, **options)


def run_backend(name: str, space, objective, storage_url: str | None, settings, run_dir=None, *,
                study_name: str = STUDY_NAME, metadata: dict | None = None, on_trial=None, **options):
    """Run or resume the search of `run_dir` with backend `name`; the Optuna study."""
    backend = make_backend(name, **options)
    job = SearchJob(space, objective, storage_url, settings, run_dir, study_name, metadata, on_trial)
    return backend.run(job)


from hybridsearch.search.backends import nni, optuna, ray  # noqa: E402, F401, I001 - register the backends

__all__ = ["Backend", "SearchJob", "add_backend_arguments", "backend_options", "check_backend", "get_backend",
           "list_backends", "make_backend", "register_backend", "run_backend"]
