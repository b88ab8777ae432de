"""Every third-party module the code and tests import is installed by requirements*.txt, not by hand.

A package installed by hand into a developer's venv passes locally and breaks `make test` in CI's fresh one.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", "var", "node_modules", "__pycache__"}


def _requirement_names(path: Path) -> set[str]:
    names: set[str] = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            names |= _requirement_names(path.parent / line[3:].strip())
        elif line and not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return names


def _with_dependencies(names: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def _python_files() -> list[Path]:
    files = []
    for path in ROOT.rglob("*.py"):
        parts = set(path.relative_to(ROOT).parts)
        if not parts & SKIP_DIRS and not any(part.startswith(".venv") for part in parts):
            files.append(path)
    return files


def _imported_top_level_modules() -> set[str]:
    modules: set[str] = set()
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    first_party = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} | {p.stem for p in ROOT.glob("*.py")}
    return modules - set(sys.stdlib_module_names) - first_party - {"__future__"}


def test_every_imported_third_party_module_comes_from_the_requirements_files():
    installed = _with_dependencies(_requirement_names(ROOT / "requirements-dev.txt"))
    providers = metadata.packages_distributions()

    missing = {
        module: providers.get(module, ["(not installed)"])
        for module in _imported_top_level_modules()
        if not any(canonicalize_name(dist) in installed for dist in providers.get(module, []))
    }

    assert missing == {}, f"add these to requirements.txt or requirements-dev.txt: {missing}"


def test_the_scan_sees_imports_of_both_files_and_packages():
    modules = _imported_top_level_modules()
    assert {"django", "celery", "pytest", "rest_framework"} <= modules
    assert re.search(r"\bconfig\b", " ".join(modules)) is None  # first-party is excluded
