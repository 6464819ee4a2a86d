"""The docs name only params that exist: every `-S key=...` and every backticked `section.key`
in README.md and docs/*.md is a key of params.yaml (or, for `-S +key=...`, of the schema)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from sneakers.params import Params

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SET = re.compile(r"-S\s+['\"]?(\+?)([A-Za-z_][\w.\[\]]*)=")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
# A whole span that names a key: `train.epochs`, `runtime.precision: auto`, `model.arch=gap_cnn`.
DOTTED = re.compile(r"([a-z_]+(?:\.[a-z_]\w*)+)(?:\s*[:=].*)?")
FILE = re.compile(r"\.(py|json|csv|yaml|md|png|pt|tar|html|sh|zip)$")


def lookup(tree: Any, key: str) -> bool:
    """Whether a dotted key (list indexes as `[0]`) resolves in nested dicts and lists."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(tree, list) or index >= len(tree):
                return False
            tree = tree[index]
        elif isinstance(tree, dict) and part in tree:
            tree = tree[part]
        else:
            return False
    return True


def in_schema(key: str) -> bool:
    """Whether a dotted key is a field of the pydantic schema (a `-S +key` adds what params.yaml
    leaves to its default)."""
    model: Any = Params
    for part in key.split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return False
        if part not in model.model_fields:
            return False
        model = model.model_fields[part].annotation
    return True


def named_keys(text: str, sections: set[str]) -> list[tuple[str, bool]]:
    """(key, added with +) for each -S key, then each backticked section.key, in order."""
    keys = [(m[2], m[1] == "+") for m in SET.finditer(text)]
    for span in SPAN.findall(FENCE.sub("", text)):
        m = DOTTED.fullmatch(span.strip())
        if m and m[1].split(".")[0] in sections and not FILE.search(m[1]):
            keys.append((m[1], False))
    return keys


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


@pytest.fixture(scope="module")
def metrics() -> list[Any]:
    """The committed metrics files: `audit.raw.balanced_accuracy` or `merge.files` name their
    keys, not params."""
    return [json.loads(p.read_text()) for p in sorted((ROOT / "metrics").glob("*.json"))]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_param_the_docs_name_exists(
    doc: Path, params: dict[str, Any], metrics: list[Any]
) -> None:
    sections = {k for k, v in params.items() if isinstance(v, dict)}
    missing = [
        key
        for key, added in named_keys(doc.read_text(), sections)
        if not (in_schema(key) if added else lookup(params, key))
        and not any(lookup(m, key) for m in metrics)
    ]
    where = doc.relative_to(ROOT)
    assert not missing, f"{where} names params that params.yaml lacks: {', '.join(missing)}"


def test_the_rules_find_what_they_should(params: dict[str, Any]) -> None:
    sections = {k for k, v in params.items() if isinstance(v, dict)}
    text = (
        "`dvc exp run -S train.epochs=10 -S 'data.profile=shared'` and\n"
        "-S +train.head_c=1 then `runtime.precision: auto`, `model.arch`, "
        "`metrics/audit.json`, `train.py`, `cross_source.x`\n"
        "```\n`train.not_here` in a fence\n```\n"
    )
    assert named_keys(text, sections) == [
        ("train.epochs", False),
        ("data.profile", False),
        ("train.head_c", True),
        ("runtime.precision", False),
        ("model.arch", False),
    ]
    assert lookup(params, "data.profiles.demo[0].demo.count")
    assert not lookup(params, "train.eval_precision")
    assert in_schema("augment.p_color") and not in_schema("train.eval_precision")
