"""The data half of the pipeline under real DVC: fetch -> merge -> standardize -> split.

A throwaway git + DVC repository gets this project's dvc.yaml, stages/ and src/ (src/ only for
the dependency hashes: the installed package runs) and a tiny demo params.yaml derived from the
real one, so the test follows future params. Only `dvc repro split` is run, so stages added
after split (train, evaluate) neither run here nor break the test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from helpers import Sandbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_factory: Callable[[Path, dict[str, Any]], Sandbox],
    tiny_params: Callable[[], dict[str, Any]],
) -> Sandbox:
    """A committed git + DVC repository with this project's pipeline, the data stages run."""
    sandbox = sandbox_factory(tmp_path_factory.mktemp("pipeline"), tiny_params())
    first = sandbox.dvc("repro", "split")
    for stage in ("fetch", "merge", "standardize", "split"):
        assert f"Running stage '{stage}'" in first.stdout, first.stdout
    return sandbox


@pytest.fixture(scope="module")
def repo(sandbox: Sandbox) -> Path:
    return sandbox.path


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
    demo = yaml.safe_load((repo / "params.yaml").read_text())["data"]["profiles"]["demo"]
    assert [s["name"] for s in fetched] == [s["name"] for s in demo]
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
    assert set(split["split"]) == {"train", "val", "test", "eval"}
    assert ((split["split"] == "eval") == (split["role"] == "eval")).all()  # held-out sources
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


def test_second_repro_runs_nothing_and_status_is_clean(sandbox: Sandbox) -> None:
    again = sandbox.dvc("repro", "split")
    assert "Running stage" not in again.stdout, again.stdout
    for stage in ("fetch", "merge", "standardize", "split"):
        assert f"Stage '{stage}' didn't change, skipping" in again.stdout, again.stdout
    assert "Data and pipelines are up to date." in again.stdout
    # Only the data stages: train/evaluate, if dvc.yaml has them, were never run here.
    status = sandbox.dvc("status", "--with-deps", "split")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
