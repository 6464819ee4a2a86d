"""dvc.yaml must list exactly the package modules a stage imports, or DVC skips stages that
changed (or re-runs ones that did not), and every param a stage reads, or DVC keeps a stale one."""

from __future__ import annotations

import ast
import hashlib
import inspect
import tempfile
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from dvc.ignore import DvcIgnoreFilter
from dvc_data.hashfile.build import build
from dvc_data.hashfile.db import HashFileDB
from dvc_objects.fs.local import LocalFileSystem
from pydantic import BaseModel

from sneakers import paths
from sneakers.params import Params, StandardizeSettings

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
    """sneakers.x -> src/sneakers/x.py; a package (sneakers itself, sneakers.demo) is its
    __init__.py."""
    path = f"src/{module.replace('.', '/')}"
    return f"{path}/__init__.py" if (ROOT / path).is_dir() else f"{path}.py"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_code_deps_are_the_modules_it_imports(stage: str) -> None:
    code = {d for d in STAGES[stage]["deps"] if d.startswith(("src/", "stages/"))}
    assert STAGES[stage]["cmd"] == f"python stages/{stage}.py"
    script = f"stages/{stage}.py"
    expected = module_closure(ROOT / script) | {script}
    assert not expected - code, f"add to {stage}.deps in dvc.yaml: {sorted(expected - code)}"
    assert not code - expected, f"drop from {stage}.deps in dvc.yaml: {sorted(code - expected)}"


def chains(tree: ast.AST, roots: set[str]) -> list[list[str]]:
    """The longest attribute chains on a root name: `p.merge.max_pixels` -> [merge, max_pixels]."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or isinstance(parents.get(node), ast.Attribute):
            continue
        chain, value = [], node
        while isinstance(value, ast.Attribute):
            chain.insert(0, value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in roots:
            found.append(chain)
    return found


def fields_read(model: type[BaseModel], chain: list[str], prefix: str = "") -> set[str]:
    """The params that `<a model>.<chain>` reads: a field (whole, or the keys read from it),
    or the fields a method or property reads through `self`, followed into the methods it calls."""
    name, rest = chain[0], chain[1:]
    if name in model.model_fields:
        inner = model.model_fields[name].annotation
        if rest and isinstance(inner, type) and issubclass(inner, BaseModel):
            return fields_read(inner, rest, f"{prefix}{name}.")
        return {prefix + name}
    member = getattr(model, name)
    member = member.fget if isinstance(member, property) else member
    source = ast.parse(textwrap.dedent(inspect.getsource(member)))
    return set().union(*(fields_read(model, c, prefix) for c in chains(source, {"self"})))


def params_read(script: Path) -> set[str]:
    """The params a stage script reads: `params.<section>` passed whole, `params.<section>.<key>`,
    and the keys a method reads through `self` (`DataSettings.sources`, `Params.recipe`)."""
    tree = ast.parse(script.read_text())
    roots = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", "") == "load_params"
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    return set().union(*(fields_read(Params, chain) for chain in chains(tree, roots)))


def test_params_read_finds_whole_sections_keys_and_method_reads(tmp_path: Path) -> None:
    script = tmp_path / "stage.py"
    script.write_text(
        "p = load_params()\nrun(p.seed, p.train, p.merge.max_pixels, p.data.sources())\n"
    )
    assert params_read(script) == {
        "seed",
        "train",
        "merge.max_pixels",
        "data.profile",
        "data.profiles",
    }
    script.write_text("p = load_params()\nrun(p.recipe())\n")  # methods that call methods
    assert params_read(script) == {"merge.max_pixels"} | {
        f"standardize.{key}" for key in StandardizeSettings().picture_settings()
    }


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_declares_every_param_it_reads(stage: str) -> None:
    declared = set(STAGES[stage].get("params", []))
    read = params_read(ROOT / "stages" / f"{stage}.py")
    missing = {p for p in read if p not in declared and p.split(".")[0] not in declared}
    assert not missing, f"add to {stage}.params in dvc.yaml: {sorted(missing)}"


CODE = ("src/", "stages/")


def dvc_md5(path: Path, root: Path) -> str:
    """The md5 DVC 3 records for a dep: a file's is the plain md5 of its bytes
    (dvc_data.hashfile.hash.file_md5); a folder's is the `.dir` hash of its listing, without what
    .dvcignore drops (__pycache__), which only dvc_data builds."""
    if path.is_file():
        return hashlib.md5(path.read_bytes()).hexdigest()
    fs = LocalFileSystem()
    with tempfile.TemporaryDirectory() as odb:
        ignore = DvcIgnoreFilter(fs, str(root))
        _, _, tree = build(HashFileDB(fs, odb), str(path), fs, "md5", ignore=ignore)
    return tree.hash_info.value


def stale_code_deps(root: Path) -> list[str]:
    """Code deps (under src/ or stages/) of dvc.yaml whose hash in dvc.lock is not the work tree's,
    each with why and its stages: `dvc status` on a clone calls those stages changed. (A dep that
    only dvc.lock still lists is ignored by DVC, and so here.)"""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    locked = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    stale: dict[str, list[str]] = defaultdict(list)
    for name, stage in stages.items():
        if name not in locked:
            stale[f"stage {name} (never run)"].append(name)
            continue
        lock = {d["path"]: d["md5"] for d in locked[name]["deps"]}
        for path in (d for d in stage["deps"] if d.startswith(CODE)):
            if path not in lock:
                why = "not in dvc.lock"
            elif not (root / path).exists():
                why = "missing"
            elif dvc_md5(root / path, root) != lock[path]:
                why = "changed"
            else:
                continue
            stale[f"{path} ({why})"].append(name)
    return [f"{what}: {', '.join(names)}" for what, names in sorted(stale.items())]


def test_stale_code_deps_compares_files_and_folders_as_dvc_hashes_them(tmp_path: Path) -> None:
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "a.py").write_text("a\n")
    (tmp_path / "src" / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "a.py").write_text("a\n")
    (tmp_path / "src" / "pkg" / "b.py").write_text("b\n")
    (tmp_path / ".dvcignore").write_text("__pycache__/\n")
    deps = ["stages/a.py", "src/pkg", "data/raw"]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"a": {"deps": deps}}}))
    # the hashes `dvc repro` wrote for these files (a folder holding a.py and b.py)
    locked = [
        {"path": "stages/a.py", "md5": "60b725f10c9c85c70d97880dfe8191b3"},
        {"path": "src/pkg", "md5": "aa856e5959c2d6c9417e780279e53a4b.dir"},
        {"path": "data/raw", "md5": "0" * 32 + ".dir"},  # not code: never checked
    ]
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"stages": {"a": {"deps": locked}}}))
    (tmp_path / "src" / "pkg" / "__pycache__" / "a.pyc").write_bytes(b"ignored by .dvcignore")
    assert stale_code_deps(tmp_path) == []

    (tmp_path / "src" / "pkg" / "b.py").write_text("changed\n")
    (tmp_path / "stages" / "a.py").write_text("changed\n")
    assert stale_code_deps(tmp_path) == ["src/pkg (changed): a", "stages/a.py (changed): a"]
    stages = {"a": {"deps": ["stages/b.py", *deps]}, "b": {"deps": []}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    stale = stale_code_deps(tmp_path)
    assert {"stages/b.py (not in dvc.lock): a", "stage b (never run): b"} <= set(stale)


def test_committed_lock_matches_the_code() -> None:
    stale = stale_code_deps(ROOT)
    assert not stale, (
        "dvc.lock is older than the code, so a clone's `dvc status` reports these stages changed "
        "(run `dvc repro` and commit dvc.lock and metrics/):\n  " + "\n  ".join(stale)
    )


# --- the data paths: named once in sneakers.paths, which dvc.yaml must match ---

NAMED = {str(value) for value in vars(paths).values() if isinstance(value, Path)}


def listed_paths() -> set[str]:
    """Every dep and out of every stage in dvc.yaml (an out may carry options, e.g. cache)."""
    return {
        entry if isinstance(entry, str) else next(iter(entry))
        for stage in STAGES.values()
        for entry in stage.get("deps", []) + stage.get("outs", [])
    }


def test_every_named_path_is_a_dep_or_out_and_every_data_dep_or_out_is_named() -> None:
    listed = listed_paths()
    assert not NAMED - listed, f"add to dvc.yaml's deps or outs: {sorted(NAMED - listed)}"
    data = {p for p in listed if not p.startswith(CODE)}
    unnamed = {p for p in data if not any(n == p or n.startswith(p + "/") for n in NAMED)}
    assert not unnamed, f"name in sneakers.paths (or a file inside): {sorted(unnamed)}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_scripts_take_every_data_path_from_sneakers_paths(stage: str) -> None:
    tree = ast.parse((ROOT / "stages" / f"{stage}.py").read_text())
    documented = [n for n in ast.walk(tree) if isinstance(n, ast.Module | ast.FunctionDef)]
    docstrings = {id(n.body[0].value) for n in documented if ast.get_docstring(n) is not None}
    folders = {Path(p).parts[0] + "/" for p in NAMED}  # data/, models/, metrics/, dvclive/
    spelled = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant)
        and isinstance(n.value, str)
        and id(n) not in docstrings
        and any(folder in n.value for folder in folders)
    ]
    assert not spelled, f"stages/{stage}.py: use sneakers.paths instead of {spelled}"
