"""dvc.yaml must list every package module a stage imports, or DVC skips stages that changed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def sneakers_imports(path: Path) -> set[str]:
    """Modules of the sneakers package that a file imports directly."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sneakers"):
            found.add(node.module)
            if node.module == "sneakers":
                found |= {f"sneakers.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("sneakers")}
    return found


def module_closure(script: Path) -> set[str]:
    """src/ paths of every sneakers module a stage script imports, directly or not."""
    seen: set[str] = set()
    todo = list(sneakers_imports(script))
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += sneakers_imports(ROOT / module_path(module))
    return {module_path(m) for m in seen}


def module_path(module: str) -> str:
    """sneakers.x -> src/sneakers/x.py; the package itself is its __init__.py."""
    if module == "sneakers":
        return "src/sneakers/__init__.py"
    return f"src/{module.replace('.', '/')}.py"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_the_modules_it_imports(stage: str) -> None:
    deps = {d for d in STAGES[stage]["deps"] if isinstance(d, str)}
    assert STAGES[stage]["cmd"] == f"python stages/{stage}.py"
    assert f"stages/{stage}.py" in deps
    missing = module_closure(ROOT / "stages" / f"{stage}.py") - deps
    assert not missing, f"add to {stage}.deps in dvc.yaml: {sorted(missing)}"
