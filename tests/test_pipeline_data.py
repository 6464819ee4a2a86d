"""The data half of the pipeline under real DVC: fetch -> merge -> standardize -> split.

A throwaway git + DVC repository gets this project's dvc.yaml, stages/ and src/ (src/ only for
the dependency hashes: the installed package runs) and a tiny demo params.yaml derived from the
real one, so the test follows future params. Only `dvc repro split` is run, so stages added
after split (train, evaluate) neither run here nor break the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]  # the dvc installed beside this interpreter
TINY_DEMO = [
    {"name": "demo-photos", "demo": {"kind": "photos", "count": 12, "size": 240},
     "label": "real", "brand": "folder"},
    {"name": "demo-renders", "demo": {"kind": "renders", "count": 10, "size": 256},
     "label": "ai"},
    {"name": "demo-compiled",
     "demo": {"kind": "compiled", "real": 4, "ai": 4, "extra_real": 2, "extra_ai": 2,
              "photo_size": 240, "render_size": 256},
     "labels": {"real": "real", "ai-midjourney": "ai"}, "brand": "prefix"},
]  # fmt: skip

pytestmark = pytest.mark.e2e


def tiny_params() -> dict[str, Any]:
    """The real params.yaml with the demo profile shrunk and one worker per stage."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["profile"] = "demo"
    params["data"]["profiles"]["demo"] = TINY_DEMO
    params["merge"]["workers"] = 1
    params["standardize"].update(workers=1, size=64)
    return params


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run git or dvc in the sandbox repository; fail with its output when it fails."""
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    }  # fmt: skip
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed git + DVC repository holding this project's pipeline and tiny params."""
    if shutil.which("git") is None:
        pytest.fail("git must be on PATH for the end-to-end test")
    repo = tmp_path_factory.mktemp("pipeline")
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "stages", repo / "stages", ignore=junk)
    shutil.copytree(ROOT / "src", repo / "src", ignore=junk)
    (repo / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    run(["git", "init", "-q"], repo)
    run([*DVC, "init", "-q"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=test", "-c", "user.email=test@example.com",
         "commit", "-q", "-m", "pipeline"], repo)  # fmt: skip
    first = run([*DVC, "repro", "split"], repo)
    for stage in ("fetch", "merge", "standardize", "split"):
        assert f"Running stage '{stage}'" in first.stdout, first.stdout
    return repo


def read(repo: Path, rel: str) -> pd.DataFrame:
    return pd.read_csv(repo / rel, keep_default_na=False, na_values=[""])


def test_outputs_exist_and_agree(repo: Path) -> None:
    for rel in (
        "data/raw/_fetch.json",
        "data/merged/manifest.csv",
        "data/merged/summary.json",
        "data/standardized/index.csv",
        "data/split/split.csv",
        "metrics/data.json",
    ):
        assert (repo / rel).is_file(), rel
    manifest = read(repo, "data/merged/manifest.csv")
    index = read(repo, "data/standardized/index.csv")
    split = read(repo, "data/split/split.csv")
    metrics = json.loads((repo / "metrics/data.json").read_text())

    raw = repo / "data" / "raw"
    fetched = json.loads((raw / "_fetch.json").read_text())["sources"]
    assert [s["name"] for s in fetched] == [s["name"] for s in TINY_DEMO]
    on_disk = {
        (p.relative_to(raw).parts[0], "/".join(p.relative_to(raw).parts[1:]))
        for p in raw.rglob("*")
        if p.is_file() and p.parent != raw
    }
    listed = set(zip(manifest["source"], manifest["path"], strict=True))
    assert on_disk <= listed, f"files missing from the manifest: {sorted(on_disk - listed)}"
    refused = sum(len(s["refused"]) for s in fetched)
    assert len(manifest) == len(on_disk) + refused

    accepted = manifest[manifest["status"] == "accepted"]
    assert len(accepted) > 0
    assert len(accepted) == len(index) == len(split)
    assert set(index["id"]) == set(accepted["id"]) == set(split["id"])
    assert set(split["split"]) == {"train", "val", "test"}
    assert set(split["label"]) == {"real", "ai"}
    assert {"shard", "offset", "length"}.isdisjoint(split.columns)
    assert all((repo / "data/standardized" / s).is_file() for s in set(index["shard"]))

    merged = metrics["merge"]
    assert merged["files"] == len(manifest)
    assert merged["accepted"] == len(accepted)
    statuses = ("accepted", "rejected", "duplicate", "ignored")
    assert merged["files"] == sum(merged[s] for s in statuses)
    assert sum(part["total"] for part in metrics["split"].values()) == len(split)
    # The demo's compiled source re-encodes photos and renders: those must be found.
    assert merged["duplicate"] > 0 and merged["duplicate_groups"]["total"] > 0


def test_second_repro_runs_nothing_and_status_is_clean(repo: Path) -> None:
    again = run([*DVC, "repro", "split"], repo)
    assert "Running stage" not in again.stdout, again.stdout
    for stage in ("fetch", "merge", "standardize", "split"):
        assert f"Stage '{stage}' didn't change, skipping" in again.stdout, again.stdout
    assert "Data and pipelines are up to date." in again.stdout
    # Only the data stages: train/evaluate, if dvc.yaml has them, were never run here.
    status = run([*DVC, "status", "--with-deps", "split"], repo)
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
