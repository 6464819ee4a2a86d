"""End to end with real `dvc` on the tiny demo: EfficientNet-Lite0 with model.train head. The
features stage fills data/features once; later runs read it, and a new pooling reuses it."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import STAGES, Sandbox, assert_ok, stages_run


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

    for name, made in {"demo-renders": "test", "demo-other-generator": "eval"}.items():
        assert eval_json["generators"][name]["in"] == made
        assert eval_json["generators"][name]["seen"] == (made == "test")
    assert set(eval_json["generators"]["demo-renders"]["roc_auc_vs"]) == {"test", "demo-other-shop"}
    transfer = json.loads((head_sandbox.path / "metrics" / "transfer.json").read_text())
    assert transfer["generators"] == ["demo-compiled", "demo-renders"] and transfer["fits"] == 5
    assert transfer["features"]["computed"] == 0
    assert set(transfer["leave_one_out"]) == {"demo-compiled", "demo-renders"}
    assert (head_sandbox.path / "metrics" / "transfer" / "matrix.png").stat().st_size > 0
    shown = head_sandbox.dvc("metrics", "show", "--json").stdout
    assert "leave_one_out" in shown and "roc_auc_vs" in shown

    forced = head_sandbox.dvc("repro", "--force", "--single-item", "features")
    assert features_line(forced.stdout) == (read + computed, 0)
    again = head_sandbox.dvc("repro", "--force", "--single-item", "transfer")
    assert_ok(again)
    rerun = json.loads((head_sandbox.path / "metrics" / "transfer.json").read_text())
    for key in ("matrix", "roc_auc", "leave_one_out", "n"):
        assert rerun[key] == transfer[key], key  # deterministic for a seed

    head_sandbox.commit("first run")
    pooled = head_sandbox.dvc("exp", "run", "-S", "model.pool=blocks", check=False)
    assert_ok(pooled)
    assert stages_run(pooled) == {"features", "train", "evaluate", "transfer"}, pooled.stdout
    assert features_line(pooled.stdout)[1] == 0  # every pooling comes from one trunk pass
    assert "blocks pooling" in pooled.stdout and " 0 computed) " in pooled.stdout
    info = head_sandbox.run("sneakers", "info", "models/model.pt")
    backbone = json.loads(info.stdout)["backbone"]
    assert backbone["pool"] == "blocks" and backbone["trained"].startswith("head: ")


def test_one_flag_trains_on_one_generator_and_scores_the_other_as_unseen(
    head_sandbox: Sandbox,
) -> None:
    """train.generators: the other generator's train and val pictures are left out, its test
    pictures scored as an unseen generator's; the model file names what it trained on."""
    head_sandbox.commit("before one generator")
    done = head_sandbox.dvc("exp", "run", "-S", "train.generators=[demo-renders]", check=False)
    assert_ok(done)
    assert stages_run(done) == {"train", "evaluate", "transfer"}, done.stdout
    eval_json = json.loads((head_sandbox.path / "metrics" / "eval.json").read_text())
    seen = {name: made["seen"] for name, made in eval_json["generators"].items()}
    assert seen.pop("demo-renders") and seen and not any(seen.values()), seen
    info = json.loads(head_sandbox.run("sneakers", "info", "models/model.pt").stdout)
    assert info["trained"]["generators"] == ["demo-renders"]
    transfer = json.loads((head_sandbox.path / "metrics" / "transfer.json").read_text())
    assert transfer["generators"] == ["demo-renders"] and transfer["fits"] == 1
    bad = head_sandbox.dvc("exp", "run", "-S", "train.generators=[dalle2]", check=False)
    assert bad.returncode != 0
    line = "train.generators: dalle2 made no training picture (known: demo-compiled, demo-renders)"
    assert line in bad.stdout + bad.stderr


def test_the_recipe_benchmark_scores_every_recipe_from_the_cache(head_sandbox: Sandbox) -> None:
    """benchmarks/generator_recipes.py on the head pipeline's workspace: the seed's features
    all come from the store, and the table has a row per recipe with the leave-one-out
    columns."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "generator_recipes.py"
    done = head_sandbox.run(
        sys.executable,
        str(script),
        str(head_sandbox.path),
        "--seeds",
        "42",
        "--pools",
        "mean",
        "--c",
        "0.1",
        "--balances",
        "label",
        "generator",
        "--thresholds",
        "val",
        "val_fpr",
        "--alone",
        "demo-renders",
    )
    lines = done.stdout.strip().splitlines()
    filled = [line for line in lines if line.startswith("seed 42, ")]
    assert len(filled) == 2, done.stdout  # the baseline row's blocks pooling, then mean
    for line in filled:
        assert re.fullmatch(r"seed 42, (blocks|mean): \d+ features read, 0 computed", line), line
    rows = [line for line in lines if line.startswith("| ")]
    assert "loo det demo-compiled" in rows[0] and len(rows) == 2 + 5  # header, rule, recipes
    assert rows[2].startswith("| demo-renders only, ")
    assert re.fullmatch(r"5 recipe runs in \d+ s", lines[-1]), lines[-1]
