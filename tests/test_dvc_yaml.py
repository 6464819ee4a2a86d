"""dvc.yaml must list exactly the package modules a stage imports, or DVC skips stages that
changed (or re-runs ones that did not), and every param a stage reads, or DVC keeps a stale one."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest
import yaml

from sneakers.params import Params

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
def test_stage_code_deps_are_the_modules_it_imports(stage: str) -> None:
    code = {d for d in STAGES[stage]["deps"] if d.startswith(("src/", "stages/"))}
    assert STAGES[stage]["cmd"] == f"python stages/{stage}.py"
    script = f"stages/{stage}.py"
    expected = module_closure(ROOT / script) | {script}
    assert not expected - code, f"add to {stage}.deps in dvc.yaml: {sorted(expected - code)}"
    assert not code - expected, f"drop from {stage}.deps in dvc.yaml: {sorted(code - expected)}"


def params_read(script: Path) -> set[str]:
    """The params a stage script reads: `params.<section>` passed whole, `params.<section>.<key>`,
    and the keys a section method reads through `self` (e.g. `DataSettings.sources`)."""
    tree = ast.parse(script.read_text())
    roots = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", "") == "load_params"
        for target in node.targets if isinstance(target, ast.Name)
    }  # fmt: skip
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    read = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and getattr(node.value, "id", None) in roots):
            continue
        section, parent = node.attr, parents[node]
        model = Params.model_fields[section].annotation
        if not (isinstance(parent, ast.Attribute) and isinstance(model, type)):
            read.add(section)  # the section (or seed) itself, whole
        elif parent.attr in model.model_fields:
            read.add(f"{section}.{parent.attr}")
        else:  # a method: the fields it reads through self
            source = textwrap.dedent(inspect.getsource(getattr(model, parent.attr)))
            read |= {
                f"{section}.{n.attr}"
                for n in ast.walk(ast.parse(source))
                if isinstance(n, ast.Attribute) and getattr(n.value, "id", "") == "self"
                and n.attr in model.model_fields
            }  # fmt: skip
    return read


def test_params_read_finds_whole_sections_keys_and_method_reads(tmp_path: Path) -> None:
    script = tmp_path / "stage.py"
    script.write_text(
        "p = load_params()\nrun(p.seed, p.train, p.merge.max_pixels, p.data.sources())\n"
    )
    assert params_read(script) == {"seed", "train", "merge.max_pixels", "data.profile",
                                   "data.profiles"}  # fmt: skip


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_declares_every_param_it_reads(stage: str) -> None:
    declared = set(STAGES[stage].get("params", []))
    read = params_read(ROOT / "stages" / f"{stage}.py")
    missing = {p for p in read if p not in declared and p.split(".")[0] not in declared}
    assert not missing, f"add to {stage}.params in dvc.yaml: {sorted(missing)}"
