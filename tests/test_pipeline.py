"""The whole pipeline under real DVC: repro, metrics, plots, a params-only change, experiments
and a forced re-run that must reproduce the model bit for bit.

Each dvc call costs seconds, so one module fixture runs them all in order on a throwaway
git + DVC repository (see helpers.make_sandbox) and keeps what the tests check. A failing call
fails only the tests about it, except the first `dvc repro`, which everything needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from helpers import DVC, GIT_ENV, STAGES, Sandbox, assert_ok, stages_run

pytestmark = pytest.mark.e2e

RUN_TIME_KEYS = (
    "train_seconds",
    "eval_seconds",
    "images_per_second",
    "train_images_per_second",
    "heatmap_seconds",
)
PLOT_TITLES = [
    "Loss",
    "Accuracy",
    "Confusion matrix (test)",
    "ROC (test)",
    "Precision-recall (test)",
    "Reliability (test)",
    "Robustness (test accuracy)",
    "History sensitivity (test accuracy)",
    "Held-out sources (accuracy)",
    "Generators (detection rate)",
]
FIGURES = ["confusion.png", "samples.png", "worst.png", "heatmaps.png"]
CHANGED_EPOCHS = 1


@dataclass
class Outputs:
    """The outputs of one state of the workspace, kept before later dvc calls replace them."""

    artifact: dict[str, Any]  # models/model.pt, loaded with weights_only=True
    model_sha256: str
    eval_json: dict[str, Any]
    files: dict[str, bytes]  # everything under metrics/ and dvclive/, by relative path
    lock: dict[str, Any]  # dvc.lock

    def json(self, rel: str) -> Any:
        return json.loads(self.files[rel])


@dataclass
class PipelineRun:
    """The sandbox and the result of every dvc call made in it, in order."""

    sandbox: Sandbox
    first: subprocess.CompletedProcess[str]
    first_outputs: Outputs
    metrics_show: subprocess.CompletedProcess[str]
    plots_show: subprocess.CompletedProcess[str]
    forced: subprocess.CompletedProcess[str]
    forced_outputs: Outputs
    exp_run: subprocess.CompletedProcess[str]
    exp_show: subprocess.CompletedProcess[str]

    @property
    def repo(self) -> Path:
        return self.sandbox.path


def outputs(repo: Path) -> Outputs:
    model = repo / "models" / "model.pt"
    files = {
        p.relative_to(repo).as_posix(): p.read_bytes()
        for folder in ("metrics", "dvclive")
        for p in (repo / folder).rglob("*")
        if p.is_file()
    }
    return Outputs(
        artifact=torch.load(model, map_location="cpu", weights_only=True),
        model_sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
        eval_json=json.loads(files["metrics/eval.json"]),
        files=files,
        lock=yaml.safe_load((repo / "dvc.lock").read_text()),
    )


@pytest.fixture(scope="module")
def pipeline(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_factory: Callable[[Path, dict[str, Any]], Sandbox],
    tiny_params: Callable[[], dict[str, Any]],
) -> PipelineRun:
    """Build the sandbox, then: repro, metrics show, plots show, forced re-run, exp run/show."""
    sandbox = sandbox_factory(tmp_path_factory.mktemp("pipeline"), tiny_params())
    first = sandbox.dvc("repro")  # everything else needs it: fail here when it fails
    first_outputs = outputs(sandbox.path)
    metrics_show = sandbox.dvc("metrics", "show", check=False)
    plots_show = sandbox.dvc("plots", "show", check=False)
    forced = sandbox.dvc("repro", "--force", "--single-item", "train", "evaluate", check=False)
    forced_outputs = outputs(sandbox.path)
    sandbox.commit("first run")  # `dvc exp run` starts from a commit
    exp_run = sandbox.dvc("exp", "run", "-S", f"train.epochs={CHANGED_EPOCHS}", check=False)
    exp_show = sandbox.dvc("exp", "show", "--json", check=False)
    return PipelineRun(
        sandbox,
        first,
        first_outputs,
        metrics_show,
        plots_show,
        forced,
        forced_outputs,
        exp_run,
        exp_show,
    )


def test_repro_runs_every_stage_and_writes_the_outputs(pipeline: PipelineRun) -> None:
    assert stages_run(pipeline.first) == STAGES, pipeline.first.stdout
    out = pipeline.first_outputs

    artifact = out.artifact
    assert artifact["format"] == "sneakers-model"
    assert artifact["trained"]["epochs"] == 2 and artifact["preprocess"]["size"] == 64
    assert 0 < artifact["threshold"] < 1

    metrics = out.eval_json
    for split in ("val", "test"):
        for key in ("accuracy", "loss", "balanced_accuracy", "ece", "brier", "threshold"):
            assert isinstance(metrics[split][key], float), (split, key)
        assert metrics[split]["threshold"] == artifact["threshold"]
    assert 0 <= metrics["test"]["accuracy"] <= 1
    assert metrics["run"]["device"] == "cpu"
    assert metrics["run"]["epochs"] == 2
    assert metrics["run"]["best_epoch"] == artifact["trained"]["best_epoch"]

    for name in ("confusion", "roc", "pr", "reliability"):
        assert isinstance(out.json(f"metrics/plots/{name}.json"), list), name
    history = out.json("metrics/plots/history.json")  # 2 classes x 2 histories
    assert len(history) == 4 and all(0 <= row["accuracy"] <= 1 for row in history)
    assert {"resample_0.8x", "resample_1.07x", "resample_1.25x"} <= set(metrics["robustness"])
    assert len(out.json("metrics/plots/confusion.json")) == metrics["test"]["n"]
    for name in FIGURES:
        assert out.files[f"metrics/figures/{name}"].startswith(b"\x89PNG\r\n\x1a\n"), name

    summary = out.json("dvclive/train/metrics.json")
    assert summary["best_epoch"] == artifact["trained"]["best_epoch"]
    for tsv in ("train/loss", "train/acc", "val/loss", "val/acc"):
        lines = out.files[f"dvclive/train/plots/metrics/{tsv}.tsv"].decode().splitlines()
        assert len(lines) == 1 + 2, tsv  # header and one row per epoch
    assert "dvclive/train/dvc.yaml" not in out.files  # it would add a second set of plots


def test_eval_sources_are_scored_and_never_trained_on(pipeline: PipelineRun) -> None:
    repo, metrics = pipeline.repo, pipeline.first_outputs.eval_json
    manifest = pd.read_csv(repo / "data" / "merged" / "manifest.csv")
    held = manifest[manifest["source"] == "demo-other-generator"]
    copies = held[held["status"] == "duplicate"]
    assert len(held) == 5 and len(copies) == 3  # renders 7-9 are demo-renders' own
    assert copies["detail"].str.startswith("of training file demo-renders/").all()
    trained = manifest[manifest["source"] == "demo-renders"]
    assert (trained["status"] == "accepted").all()  # training lost nothing to them
    split = pd.read_csv(repo / "data" / "split" / "split.csv")
    eval_rows = split[split["role"] == "eval"]
    assert set(eval_rows["source"]) == {"demo-other-shop", "demo-other-generator"}
    assert (eval_rows["split"] == "eval").all() and (split["role"] == "train").sum() > 0
    assert set(split.loc[split["split"] != "eval", "role"]) == {"train"}
    line = next(x for x in pipeline.first.stdout.splitlines() if x.startswith("train: seed_cnn"))
    counts = split["split"].value_counts()
    assert f"{counts['train']} train / {counts['val']} val images" in line
    assert line.endswith("from demo-compiled, demo-photos, demo-renders"), line
    cross = metrics["cross_source"]
    assert {k: v["n"] for k, v in cross.items()} == {
        "demo-other-generator": 2,
        "demo-other-shop": 4,
    }
    assert 0 <= cross["demo-other-shop"]["false_positive_rate"] <= 1
    assert 0 <= cross["demo-other-generator"]["detection_rate"] <= 1
    assert "demo-other-generator" in cross["demo-other-shop"]["roc_auc_vs"]
    rows = pipeline.first_outputs.json("metrics/plots/cross_source.json")
    assert [r["source"] for r in rows] == ["demo-other-generator (n=2)", "demo-other-shop (n=4)"]
    assert "cross_source.demo-other-shop.false_positive_rate" in pipeline.metrics_show.stdout


def test_metrics_show_lists_the_eval_metrics(pipeline: PipelineRun) -> None:
    done = pipeline.metrics_show
    assert_ok(done)
    assert "metrics/eval.json" in done.stdout
    assert "test.accuracy" in done.stdout and "val.roc_auc" in done.stdout


def test_plots_show_renders_each_plot_once(pipeline: PipelineRun) -> None:
    """DVC gives each plot a div (id from its title), a vega spec with the title, and each
    image a <p>path</p> plus one <img>: exactly one of each means no plot is missing or shown
    twice (for instance by a dvc.yaml that DVCLive might write beside its data)."""
    assert_ok(pipeline.plots_show)
    html = (pipeline.repo / "dvc_plots" / "index.html").read_text()
    for title in PLOT_TITLES:
        div_id = re.sub(r"[^\w-]", "_", title)
        assert html.count(f'"title": {{"text": "{title}"') == 1, title
        assert html.count(f"vegaEmbed('#{div_id}'") == 1, title
    assert html.count("vegaEmbed(") == len(PLOT_TITLES)
    static = pipeline.repo / "dvc_plots" / "static"
    for name in FIGURES:
        assert html.count(f"<p>metrics/figures/{name}</p>") == 1, name
        assert (static / f"workspace_metrics_figures_{name}").is_file(), name
    assert html.count("<p>metrics/audit/encodings.png</p>") == 1
    assert html.count("<p>metrics/transfer/matrix.png</p>") == 1  # a CNN's says why it is empty
    assert html.count("<img ") == len(FIGURES) + 2


def stable(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics without the run-time keys, which are the only ones allowed to differ."""
    run = {k: v for k, v in metrics["run"].items() if k not in RUN_TIME_KEYS}
    return {**metrics, "run": run}


def data_stage_outs(lock: dict[str, Any]) -> dict[str, Any]:
    """The output hashes dvc.lock records for the data stages."""
    data_stages = ("fetch", "merge", "standardize", "split", "simulate")
    return {name: lock["stages"][name]["outs"] for name in data_stages}


def test_forced_rerun_reproduces_model_and_metrics(pipeline: PipelineRun) -> None:
    assert_ok(pipeline.forced)
    assert stages_run(pipeline.forced) == {"train", "evaluate"}, pipeline.forced.stdout
    before, after = pipeline.first_outputs, pipeline.forced_outputs
    assert stable(after.eval_json) == stable(before.eval_json)
    assert after.model_sha256 == before.model_sha256


def test_a_train_param_change_reruns_train_evaluate_and_transfer(pipeline: PipelineRun) -> None:
    done = pipeline.exp_run
    assert_ok(done)
    assert stages_run(done) == {"train", "evaluate", "transfer"}, done.stdout
    for stage in STAGES - {"train", "evaluate", "transfer"}:
        assert f"Stage '{stage}' didn't change, skipping" in done.stdout, stage
    eval_json = json.loads((pipeline.repo / "metrics" / "eval.json").read_text())
    assert eval_json["run"]["epochs"] == CHANGED_EPOCHS


def test_exp_show_lists_the_experiment(pipeline: PipelineRun) -> None:
    assert_ok(pipeline.exp_run)
    assert_ok(pipeline.exp_show)
    name = re.search(r"Ran experiment\(s\): (\S+)", pipeline.exp_run.stdout)
    assert name, pipeline.exp_run.stdout
    experiments = {
        rev["name"]: rev["data"]
        for baseline in json.loads(pipeline.exp_show.stdout)
        for exp in baseline.get("experiments") or []
        for rev in exp["revs"]
    }
    assert name.group(1) in experiments, experiments.keys()
    params = experiments[name.group(1)]["params"]["params.yaml"]["data"]
    assert params["train"]["epochs"] == CHANGED_EPOCHS


def test_an_interrupted_run_resumes_to_the_same_results(
    pipeline: PipelineRun,
    tmp_path: Path,
    sandbox_factory: Callable[[Path, dict[str, Any]], Sandbox],
    tiny_params: Callable[[], dict[str, Any]],
) -> None:
    """A second clean repository, interrupted (Ctrl-C) during train, then `dvc repro` again:
    only train and evaluate run, and data hashes, model and metrics equal the first clean run."""
    sandbox = sandbox_factory(tmp_path, tiny_params())
    env = {**os.environ, **GIT_ENV, "PYTHONUNBUFFERED": "1"}
    # Ctrl-C as in a terminal: an earlier test may have left SIGINT ignored in this process,
    # and an ignored signal stays ignored in every child (Python then never raises it).
    proc = subprocess.Popen(
        [*DVC, "repro"],
        cwd=sandbox.path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("train: "):  # the stage's own first line: training has started
            os.killpg(proc.pid, signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=120)
    assert any("Running stage 'train'" in line for line in seen), "".join(seen) + rest
    inherited = signal.getsignal(signal.SIGINT)
    assert proc.returncode != 0, f"the run was meant to be interrupted (SIGINT here: {inherited})"
    assert not (sandbox.path / "metrics" / "eval.json").exists()
    assert not (sandbox.path / "models" / "model.pt").exists()

    resumed = sandbox.dvc("repro")
    # transfer needs no model: dvc runs it after evaluate, so the interrupted run never did
    assert stages_run(resumed) - {"transfer"} == {"train", "evaluate"}, resumed.stdout
    again, first = outputs(sandbox.path), pipeline.first_outputs
    assert data_stage_outs(again.lock) == data_stage_outs(first.lock)
    assert again.model_sha256 == first.model_sha256
    assert stable(again.eval_json) == stable(first.eval_json)


def test_simulated_fakes_join_training_only(pipeline: PipelineRun) -> None:
    """Switched on, simulate makes one fake per real train photo; train sees them, evaluate's
    splits do not (last here: this experiment leaves its results in the workspace)."""
    done = pipeline.sandbox.dvc("exp", "run", "-S", "simulate.enabled=true", check=False)
    assert_ok(done)
    rerun = {"simulate", "features", "train", "evaluate", "transfer"}
    assert stages_run(done) == rerun, done.stdout
    repo = pipeline.repo
    fakes = pd.read_csv(repo / "data" / "simulated" / "index.csv")
    split = pd.read_csv(repo / "data" / "split" / "split.csv")
    photos = split[(split["split"] == "train") & (split["label"] == "real")]
    assert sorted(fakes["parent"]) == sorted(photos["id"]) and set(fakes["label"]) == {"ai"}
    trained = (split["split"] == "train").sum() + len(fakes)
    assert f" {trained} train / " in done.stdout, done.stdout
    summary = json.loads((repo / "metrics" / "simulate.json").read_text())
    assert summary["images"] == len(photos)
    eval_json = json.loads((repo / "metrics" / "eval.json").read_text())
    assert eval_json["test"]["n"] == (split["split"] == "test").sum()


def test_two_processes_train_under_torchrun(pipeline: PipelineRun) -> None:
    """`-S train.nproc_per_node=2`: the stage runs itself under torchrun (gloo on the CPU); one
    DVCLive log with one row per epoch, one model that records 2 processes, and evaluate scores
    it (last here: it leaves its results in the workspace). With train.memory_gb 0 the images
    stream from the shards, a DataLoader worker per rank decoding them."""
    done = pipeline.sandbox.dvc(
        "exp",
        "run",
        "-S",
        "train.nproc_per_node=2",
        "-S",
        "train.memory_gb=0",
        "-S",
        "train.num_workers=1",
        check=False,
    )
    assert_ok(done)
    assert stages_run(done) == {"train", "evaluate", "transfer"}, done.stdout
    for said in (" parameters) on ", "images stream from the shards"):
        lines = [line for line in done.stdout.splitlines() if said in line]
        assert len(lines) == 1, done.stdout  # rank 0 alone prints
    assert " x 2 processes " in done.stdout, done.stdout
    repo = pipeline.repo
    rows = (repo / "dvclive/train/plots/metrics/train/loss.tsv").read_text().splitlines()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert len(rows) == 1 + params["train"]["epochs"], rows  # a header, then one row per epoch
    card = torch.load(repo / "models/model.pt", weights_only=True)
    assert card["trained"]["processes"] == 2
    eval_json = json.loads((repo / "metrics" / "eval.json").read_text())
    assert eval_json["run"]["train_processes"] == 2
