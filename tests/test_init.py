"""`import sneakers` makes OpenMP threads wait passively, before anything loads torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = sorted((ROOT / "stages").glob("*.py"))

# Prints OMP_WAIT_POLICY at the moment torch is first imported (when libgomp reads it), and
# stops there: loading torch itself would only cost time.
HOOK = """
import importlib.abc, os, sys
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            print("torch loads with OMP_WAIT_POLICY=" + os.environ.get("OMP_WAIT_POLICY", "unset"))
            sys.stdout.flush()
            os._exit(0)
sys.meta_path.insert(0, Watch())
"""
LOADS = "torch loads with OMP_WAIT_POLICY=PASSIVE"


def run(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | env
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=environ,
        cwd=ROOT,
        check=True,
    )
    return done.stdout.strip()


def test_passive_unless_the_user_chose() -> None:
    code = "import os, sneakers; print(os.environ['OMP_WAIT_POLICY'])"
    assert run(code) == "PASSIVE"
    assert run(code, OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


@pytest.mark.parametrize("stage", STAGES, ids=lambda p: p.name)
def test_every_stage_sets_it_before_torch_loads(stage: Path) -> None:
    imports = [
        n for n in ast.parse(stage.read_text()).body if isinstance(n, ast.Import | ast.ImportFrom)
    ]
    out = run(HOOK + "\n".join(ast.unparse(n) for n in imports) + "\nimport torch")
    assert out == LOADS, (stage.name, out)


def test_the_command_sets_it_before_torch_loads() -> None:
    assert run(HOOK + "import sneakers.cli\nimport torch") == LOADS
