"""The package's layering, checked on every `import` node of every module (function-level ones included).

    commands, cli                      5  the user's edge: argparse lives here and nowhere below
    search, baselines, report          4  (the Pareto rows live in search/pareto.py; report reads them)
    distill, measure                   3
    students (+ _hf_hook)              2
    data, teacher                      1
    errors, paths                      0

A module may import its own tier and the tiers below it, never one above (docs/architecture.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hybridsearch"
TIERS = {
    "cli": 5, "__main__": 5, "commands": 5,
    "search": 4, "baselines": 4, "report": 4,
    "distill": 3, "measure": 3,
    "students": 2, "_hf_hook": 2, "": 2,  # "": the package root, which installs the students' Auto-class hook
    "data": 1, "teacher": 1,
    "errors": 0, "paths": 0,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def tier(module: str) -> int | None:
    """The tier of a hybridsearch module; None for anything outside the package."""
    parts = module.split(".")
    if parts[0] != "hybridsearch":
        return None
    top = parts[1] if len(parts) > 1 else ""
    assert top in TIERS, f"{module}: a top-level module with no tier; add it to TIERS and docs/architecture.md"
    return TIERS[top]


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def imported(tree: ast.AST, module: str) -> list[tuple[str, int]]:
    """Every (imported hybridsearch module, line) of a module's syntax tree, at any depth."""
    out = []
    package = module if (PACKAGE / Path(*module.split(".")[1:]) / "__init__.py").is_file() else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:  # `from hybridsearch import paths` imports the module hybridsearch.paths
                full = f"{base}.{a.name}"
                out.append((full if _is_module(full) else base, node.lineno))
    return [(name, line) for name, line in out if name.split(".")[0] == "hybridsearch"]


def test_no_module_imports_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        mine = tier(module)
        for name, line in imported(ast.parse(path.read_text(), str(path)), module):
            theirs = tier(name)
            if theirs is not None and theirs > mine:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} (tier {mine}) imports "
                              f"{name} (tier {theirs})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_the_walker_sees_function_level_and_relative_imports():
    tree = ast.parse("def f():\n    from hybridsearch.commands import data\n    from . import freeze\n")
    found = {name for name, _ in imported(tree, "hybridsearch.search.trial")}
    assert found == {"hybridsearch.commands.data", "hybridsearch.search.freeze"}
    assert tier("hybridsearch.commands.data") > tier("hybridsearch.search.trial")
