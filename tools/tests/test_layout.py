"""labkit's layout: one subpackage per job, and no module that imports "up" (labkit.LAYERS)."""

from __future__ import annotations

import ast
from pathlib import Path

import labkit
from labkit.core.overlay import WORKBOOK_ROOT

LABKIT = WORKBOOK_ROOT / "tools" / "labkit"


def _labkit_imports(path: Path) -> list[tuple[int, str]]:
    """(line, subpackage) of every labkit import in a module, at any depth (lazy imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "labkit":
                found.append((node.lineno, parts[1] if len(parts) > 1 else ""))
    return found


def layer_problems(root: Path = LABKIT) -> list[str]:
    """Modules outside a subpackage, and imports of a later layer (or of labkit itself)."""
    problems = [f"{p.relative_to(root)}: every module lives in a subpackage {labkit.LAYERS}"
                for p in root.glob("*.py") if p.name != "__init__.py"]  # fmt: skip
    for package in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("__")):
        if package.name not in labkit.LAYERS:
            problems.append(f"{package.name}: not one of labkit.LAYERS {labkit.LAYERS}")
            continue
        mine = labkit.LAYERS.index(package.name)
        for path in sorted(package.glob("*.py")):
            for line, target in _labkit_imports(path):
                if target not in labkit.LAYERS or labkit.LAYERS.index(target) > mine:
                    problems.append(f"{path.relative_to(root)}:{line}: {package.name} imports labkit.{target or '*'}")
    return problems


def test_every_module_lives_in_its_layer_and_imports_only_below() -> None:
    problems = layer_problems()
    assert not problems, "\n".join(problems)


def test_an_upward_import_is_named(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "overlay.py").write_text("def f():\n    from labkit.grading import grader\n")
    (tmp_path / "stray.py").write_text("")
    assert layer_problems(tmp_path) == [
        f"stray.py: every module lives in a subpackage {labkit.LAYERS}",
        "core/overlay.py:2: core imports labkit.grading",
    ]
