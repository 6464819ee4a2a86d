"""Sweeps and remotes under real DVC: a queued two-value sweep run by two queue workers, a local
folder remote that a fresh clone pulls from and predicts with, and queue workers that pass their
environment (CUDA_VISIBLE_DEVICES) to the experiments they run.

One module fixture runs the tiny pipeline once (one epoch) and commits it; the sweep queues its
experiments on that commit and the remote pushes what it cached. Queued experiments run in
temporary clones under .dvc/tmp/exps, started by `dvc queue start` as background workers, which
inherit the environment of that command (PATH, PYTHONPATH, ...), so they find `python` and the
`sneakers` package as `dvc repro` does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import DVC, GIT_ENV, STAGES, Sandbox, stages_run

pytestmark = pytest.mark.e2e

SWEEP = ("0.001", "0.0005")  # the first is the committed train.lr: that experiment runs nothing
WAIT_S = 480  # for queued experiments, well inside Sandbox.run's 600 s
# A saved experiment: refs/exps/<baseline sha split 2/38>/<name>, not refs/exps/celery/stash
EXP_REF = re.compile(r"^refs/exps/[0-9a-f]{2}/[0-9a-f]{38}/\S+$", re.MULTILINE)


@pytest.fixture(scope="module")
def committed(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_factory: Callable[[Path, dict[str, Any]], Sandbox],
    tiny_params: Callable[[], dict[str, Any]],
) -> Sandbox:
    """The tiny pipeline at one epoch, reproduced and committed (experiments start from HEAD)."""
    params = tiny_params()
    params["train"].update(epochs=1, lr=float(SWEEP[0]))
    sandbox = sandbox_factory(tmp_path_factory.mktemp("scale"), params)
    sandbox.dvc("repro")
    sandbox.commit("first run")
    return sandbox


def queue_start(sandbox: Sandbox, jobs: int, **env: str) -> str:
    """`dvc queue start -j jobs` with extra environment variables; its output.

    The output goes through a file, not a pipe: the workers it leaves running hold on to its
    stdout, so reading a pipe to its end would wait for them to exit.
    """
    args = [*DVC, "queue", "start", "-j", str(jobs)]
    with tempfile.TemporaryFile("w+") as out:
        code = subprocess.run(
            args,
            cwd=sandbox.path,
            env={**os.environ, **GIT_ENV, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
        ).returncode
        out.seek(0)
        text = out.read()
    assert code == 0, f"{' '.join(args)} failed:\n{text}"
    return text


def queued(done: subprocess.CompletedProcess) -> dict[str, str]:
    """{experiment name: its override} from `dvc exp run --queue` output."""
    pairs = re.findall(
        r"Queueing with overrides '\{'params.yaml': \['([^']+)'\]\}'\.\n"
        r"Queued experiment '([^']+)' for future execution\.",
        done.stdout,
    )
    return {name: override for override, name in pairs}


def wait_for_experiments(sandbox: Sandbox, count: int) -> None:
    """Wait until `count` experiments are saved (a cheap `git for-each-ref` each second; `dvc queue
    status`, a few seconds of CPU, every 15 s to fail early), then until no task is queued or
    running, so no worker holds the repository lock afterwards."""
    start = next_check = time.monotonic()
    while time.monotonic() - start < WAIT_S:
        refs = sandbox.run("git", "for-each-ref", "--format=%(refname)", "refs/exps").stdout
        if len(EXP_REF.findall(refs)) >= count:
            break
        if time.monotonic() > next_check:
            status = sandbox.dvc("queue", "status").stdout
            assert not re.search(r"\bFailed\b", status), status + queue_logs(sandbox)
            next_check = time.monotonic() + 15
        time.sleep(1)
    else:
        pytest.fail(f"no {count} experiments after {WAIT_S} s:\n" + queue_logs(sandbox))
    while re.search(r"\b(Queued|Running)\b", status := sandbox.dvc("queue", "status").stdout):
        assert time.monotonic() - start < WAIT_S, status
        time.sleep(1)


def queue_logs(sandbox: Sandbox) -> str:
    status = sandbox.dvc("queue", "status", check=False).stdout
    names = re.findall(r"^\w+\s+(\S+)\s+.*\b(?:Failed|Running)\b", status, re.MULTILINE)
    logs = [sandbox.dvc("queue", "logs", name, check=False).stdout for name in names]
    return status + "\n".join(logs)


def experiments(sandbox: Sandbox) -> dict[str, dict[str, Any]]:
    """{name: data} for every experiment `dvc exp show --json` lists."""
    shown = json.loads(sandbox.dvc("exp", "show", "--json").stdout)
    return {
        rev["name"]: rev["data"]
        for baseline in shown
        for exp in baseline.get("experiments") or []
        for rev in exp["revs"]
    }


def without_lists(metrics: Any) -> Any:
    """Metrics as `dvc exp show` reports them: it leaves out list values (the ci95 pairs)."""
    if isinstance(metrics, dict):
        return {k: without_lists(v) for k, v in metrics.items() if not isinstance(v, list)}
    return metrics


def test_a_queued_sweep_runs_one_experiment_per_value(committed: Sandbox) -> None:
    """`-S 'train.lr=0.001,0.0005' --queue` queues two experiments; two workers run them.
    train.lr=0.001 is the committed value, so its experiment reproduces nothing and keeps the
    committed metrics; 0.0005 re-runs train and evaluate only."""
    sandbox = committed
    done = sandbox.dvc("exp", "run", "--queue", "-S", f"train.lr={','.join(SWEEP)}")
    names = queued(done)
    assert sorted(names.values()) == sorted(f"train.lr={lr}" for lr in SWEEP), done.stdout
    started = queue_start(sandbox, 2)
    assert "Started '2' new experiments task queue workers" in started, started
    wait_for_experiments(sandbox, len(SWEEP))

    shown = experiments(sandbox)
    committed_eval = json.loads((sandbox.path / "metrics" / "eval.json").read_text())
    for name, override in names.items():
        assert name in shown, (name, list(shown))
        lr = float(override.split("=")[1])
        data = shown[name]
        assert data["params"]["params.yaml"]["data"]["train"]["lr"] == lr
        metrics = data["metrics"]
        eval_json = metrics["metrics/eval.json"]["data"]
        assert 0 <= eval_json["test"]["accuracy"] <= 1 and eval_json["run"]["epochs"] == 1
        assert metrics["dvclive/train/metrics.json"]["data"]["best_epoch"] == 1
        log = sandbox.dvc("queue", "logs", name)
        if lr == float(SWEEP[0]):
            assert stages_run(log) == set(), log.stdout
            assert eval_json == without_lists(committed_eval)
        else:
            assert stages_run(log) == {"train", "evaluate", "transfer"}, log.stdout
            for stage in STAGES - {"train", "evaluate", "transfer"}:
                assert f"Stage '{stage}' didn't change, skipping" in log.stdout, stage


def sneakers_command() -> str:
    """The `sneakers` entry point installed beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).with_name("sneakers")
    found = str(beside) if beside.is_file() else shutil.which("sneakers")
    if found is None:
        pytest.fail("the `sneakers` command is not installed (pip install -e .)")
    return found


def test_a_fresh_clone_pulls_from_a_local_remote_and_predicts(
    committed: Sandbox, tmp_path: Path
) -> None:
    """`dvc push` to a folder remote; a git clone of the repository (no cache) then `dvc pull`s
    everything: `dvc status` is clean and `sneakers predict` scores a file with the pulled model,
    which is the pushed one byte for byte."""
    sandbox, remote, clone = committed, tmp_path / "remote", tmp_path / "clone"
    sandbox.dvc("remote", "add", "-d", "local", str(remote))
    sandbox.commit("local remote")
    pushed = sandbox.dvc("push")
    assert re.search(r"\d+ files? pushed", pushed.stdout), pushed.stdout
    assert any(remote.rglob("*")), "nothing was written to the remote"

    sandbox.run("git", "clone", "-q", ".", str(clone))
    fresh = Sandbox(clone)
    assert not (clone / "models" / "model.pt").exists()
    assert not (clone / ".dvc" / "cache").exists()
    fresh.dvc("pull")
    status = fresh.dvc("status", "--json")
    assert json.loads(status.stdout) == {}, status.stdout
    model = clone / "models" / "model.pt"
    assert model.read_bytes() == (sandbox.path / "models" / "model.pt").read_bytes()

    picture = sorted((clone / "data" / "raw" / "demo-photos").rglob("*.jpg"))[0]
    rel = picture.relative_to(clone).as_posix()
    done = fresh.run(sneakers_command(), "predict", rel, "--format", "json")
    rows = json.loads(done.stdout)
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["path"] == rel and row["error"] is None and row["label"] in {"ai", "real"}
    assert 0 <= row["p_ai"] <= 1


GATE_STAGE = """\
import json, os, sys, time
from pathlib import Path

gate = Path(os.environ["SWEEP_GATE"])
(gate / sys.argv[1]).touch()
deadline = time.monotonic() + 120  # both experiments in the gate: they ran side by side
while len(list(gate.iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.2)
gpu = int(os.environ.get("CUDA_VISIBLE_DEVICES", "-1"))
json.dump({"gpu": gpu, "together": len(list(gate.iterdir()))}, open("m.json", "w"))
"""
GATE_DVC_YAML = """\
stages:
  gate:
    cmd: python gate.py ${x}
    deps: [gate.py]
    params: [x]
    metrics:
      - m.json:
          cache: false
"""


def test_queue_workers_pass_their_environment_to_experiments(tmp_path: Path) -> None:
    """One worker per GPU: `CUDA_VISIBLE_DEVICES=0 dvc queue start -j 1`, then, with that worker
    running, `CUDA_VISIBLE_DEVICES=1 dvc queue start -j 2` (-j counts all workers: a second `-j 1`
    starts none). Each experiment sees its worker's CUDA_VISIBLE_DEVICES. A toy stage waits for
    the other experiment, so both workers must take one each (no GPU or pipeline needed)."""
    repo, gate = tmp_path / "repo", tmp_path / "gate"
    repo.mkdir()
    gate.mkdir()
    (repo / "gate.py").write_text(GATE_STAGE)
    (repo / "dvc.yaml").write_text(GATE_DVC_YAML)
    (repo / "params.yaml").write_text("x: 0\n")
    sandbox = Sandbox(repo)
    sandbox.run("git", "init", "-q")
    sandbox.dvc("init", "-q")
    sandbox.commit("gate")
    sandbox.dvc("exp", "run", "--queue", "-S", "x=1,2")

    def start(gpu: str, jobs: int) -> str:
        return queue_start(sandbox, jobs, CUDA_VISIBLE_DEVICES=gpu, SWEEP_GATE=str(gate))

    assert "Started '1' new" in start("0", 1)
    deadline = time.monotonic() + 120
    while not any(gate.iterdir()):  # the first worker is up and running an experiment
        assert time.monotonic() < deadline, queue_logs(sandbox)
        time.sleep(0.5)
    assert "Started '0' new" in start("1", 1)
    assert "Started '1' new" in start("1", 2)
    wait_for_experiments(sandbox, 2)

    shown = experiments(sandbox)
    assert len(shown) == 2, list(shown)
    runs = [data["metrics"]["m.json"]["data"] for data in shown.values()]
    assert sorted(run["gpu"] for run in runs) == [0, 1], runs
    assert all(run["together"] == 2 for run in runs), runs
