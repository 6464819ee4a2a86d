"""End to end with real `dvc` on the tiny demo: EfficientNet-Lite0 with model.train head. The
features stage fills data/features once; later runs read it, and a new pooling reuses it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_pipeline import STAGES, assert_ok, stages_run

if TYPE_CHECKING:
    from conftest import Sandbox


def features_line(stdout: str) -> tuple[int, int]:
    """(read, computed) from the features stage's summary line."""
    found = re.search(r"^features: (\d+) read, (\d+) computed with ", stdout, re.MULTILINE)
    assert found, stdout
    return int(found.group(1)), int(found.group(2))


@pytest.fixture(scope="module")
def head_sandbox(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_factory: Callable[[Path, dict[str, Any]], Sandbox],
    tiny_params: Callable[[], dict[str, Any]],
) -> Sandbox:
    params = tiny_params()
    params["model"].update(arch="efficientnet_lite0", train="head", pool="mean")
    params["runtime"].update(precision="fp32")
    params["augment"].update(enabled=True, views=1)
    return sandbox_factory(tmp_path_factory.mktemp("head"), params)


def test_the_head_pipeline_caches_features_once_and_reuses_them(head_sandbox: Sandbox) -> None:
    first = head_sandbox.dvc("repro")
    assert stages_run(first) == STAGES, first.stdout
    read, computed = features_line(first.stdout)
    assert computed > 0
    eval_json = json.loads((head_sandbox.path / "metrics" / "eval.json").read_text())
    assert eval_json["run"]["arch"] == "efficientnet_lite0"
    assert "0 computed" in re.search(r"^evaluate: features of .*$", first.stdout, re.M).group(0)

    forced = head_sandbox.dvc("repro", "--force", "--single-item", "features")
    assert features_line(forced.stdout) == (read + computed, 0)

    head_sandbox.commit("first run")
    pooled = head_sandbox.dvc("exp", "run", "-S", "model.pool=blocks", check=False)
    assert_ok(pooled)
    assert stages_run(pooled) == {"features", "train", "evaluate"}, pooled.stdout
    assert features_line(pooled.stdout)[1] == 0  # every pooling comes from one trunk pass
    assert "blocks pooling" in pooled.stdout and " 0 computed) " in pooled.stdout
    info = head_sandbox.run("sneakers", "info", "models/model.pt")
    backbone = json.loads(info.stdout)["backbone"]
    assert backbone["pool"] == "blocks" and backbone["trained"].startswith("head: ")
