"""Register the student classes with transformers' Auto classes, lazily.

`install()` (called by `import hybridsearch`) adds a meta-path finder that waits
for `transformers.models.auto.configuration_auto` / `.modeling_auto` to finish
executing and then calls `hybridsearch.students.hf.register()`. If they are
already imported, it registers at once. Cost at `import hybridsearch`: a few
microseconds and no torch / transformers import (importing transformers' config
module pulls in torch, ~3 s, which an eager registration would pay every time).
"""

from __future__ import annotations

import sys
import warnings

AUTO = ("transformers.models.auto.configuration_auto", "transformers.models.auto.modeling_auto")
# hf.py needs these complete; a completion of any of them retries a registration skipped
# because another was still half-initialised (import cycles inside transformers).
NEEDED = ("transformers.configuration_utils", "transformers.modeling_utils")
TARGETS = AUTO + NEEDED


def _initializing(name: str) -> bool:
    module = sys.modules.get(name)
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _register(just_executed: str | None = None) -> None:
    """Register unless a needed module is half-initialised (`just_executed` has finished
    executing though its spec still says initialising)."""
    if not any(name in sys.modules for name in AUTO):
        return  # nothing to register with yet
    pending = [n for n in TARGETS + ("hybridsearch.students.hf",) if n != just_executed and _initializing(n)]
    if pending:
        return  # mid-cycle; the completion of that module calls us again (hf registers at its end)
    try:
        from hybridsearch.students import hf

        hf.register()
    except Exception as exc:  # never break the user's transformers import
        warnings.warn(f"hybridsearch: could not register the student model with transformers: {exc}", stacklevel=2)


class _AfterImport:  # a meta-path finder (importlib.abc costs ~70 ms to import)
    """Wraps the real loader of TARGETS so `_register` runs right after the module executes."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register(fullname)

        loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Install the hook once; register now if transformers' auto modules are already loaded."""
    if any(isinstance(f, _AfterImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _AfterImport())
    _register()
