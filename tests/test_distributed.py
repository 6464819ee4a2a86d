"""torchrun with 2 CPU processes (gloo) trains the model one torchrun process trains, for the
same global batch: DistributedSampler shares out each batch, the BatchNorm layers see all of it.

The comparison runs in float64: in fp32 this small CNN amplifies rounding so much that one
process on 1 and on 2 OpenMP threads already ends an epoch 0.009 apart (docs/performance.md),
which would hide a real difference. In float64 rounding is ~1e-16, so any gap is the algorithm's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import in_float64
from torch import nn

from sneakers import distributed
from sneakers.distributed import GlobalBatchNorm2d, Ranks, global_batchnorm
from sneakers.errors import SneakersError
from sneakers.model import build_model

TESTS = Path(__file__).resolve().parent
SETTINGS = {"epochs": 1, "lr": 0.01, "batch_size": 8}
TOLERANCE = 1e-8  # float64, Adam: measured 3.9e-10 (the test prints it)

# Trains on the synthetic splits of helpers.py in float64; rank 0 saves the weights and its log.
SCRIPT = """
import json, sys, torch
sys.path.insert(0, {tests!r})
from helpers import in_float64, synthetic_splits
from sneakers import distributed
from sneakers.logs import MemoryLog
from sneakers.params import ModelSettings, RuntimeSettings, TrainSettings
from sneakers.train import train

in_float64(lambda module, name, value: setattr(module, name, value))
main = distributed.is_main()
log = MemoryLog() if main else None
fitted = train(synthetic_splits(), ModelSettings(), TrainSettings(**{settings}),
               RuntimeSettings(device="cpu", precision="fp32"), 1, log)
rank = torch.distributed.get_rank()
distributed.leave()
with open({out!r} + f"/rank{{rank}}.json", "w") as f:
    json.dump({{"returned": fitted is not None,
               "processes": fitted.trained.processes if fitted else None,
               "log": log.records if log else None}}, f)
if fitted:
    torch.save(fitted.state_dict, {out!r} + "/weights.pt")
"""


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    script = out / "run.py"
    script.write_text(SCRIPT.format(tests=str(TESTS), settings=SETTINGS, out=str(out)))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_only_rank_0_returns_logs_and_writes(two_processes: Path) -> None:
    zero, one = (json.loads((two_processes / f"rank{r}.json").read_text()) for r in (0, 1))
    assert zero["returned"] and zero["processes"] == 2 and zero["log"]
    assert not one["returned"] and one["log"] is None
    assert sorted(p.name for p in two_processes.glob("*.pt")) == ["weights.pt"]


def test_two_processes_train_the_one_process_model(
    two_processes: Path, train_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_float64(monkeypatch.setattr)
    monkeypatch.setenv(distributed.LAUNCHED, "one-process")  # as `torchrun --nproc-per-node 1`
    one = train_run(arch="seed_cnn", seed=1, eval_precision="fp32", **SETTINGS).artifact
    two = torch.load(two_processes / "weights.pt", weights_only=True)
    assert one.state_dict.keys() == two.keys()
    worst = max(float((one.state_dict[k] - two[k]).abs().max()) for k in two)
    print(
        f"float64, 1 epoch: max |1 process - 2 processes| over all weights and BatchNorm "
        f"statistics {worst:.1e}"
    )
    assert worst < TOLERANCE
    # ... and the comparison is sharp enough to see another seed.
    other = train_run(arch="seed_cnn", seed=2, eval_precision="fp32", **SETTINGS).artifact
    assert max(float((other.state_dict[k] - two[k]).abs().max()) for k in two) > 1e-3


def test_one_process_needs_no_launch_and_no_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(distributed.LAUNCHED, raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.needs_launch(1) and distributed.needs_launch(2)
    monkeypatch.setenv(distributed.LAUNCHED, "x")
    assert not distributed.needs_launch(2)  # already one of torchrun's processes
    ranks, device = distributed.join("cpu")
    assert (ranks, device.type) == (Ranks(), "cpu") and not torch.distributed.is_initialized()
    assert distributed.total(3.5, device) == 3.5


def test_global_batchnorm_is_plain_batchnorm_alone_and_keeps_the_weights() -> None:
    model = build_model("seed_cnn", 40)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    swapped = global_batchnorm(model, torch.device("cpu"))
    layers = [m for m in swapped.modules() if isinstance(m, nn.BatchNorm2d)]
    assert layers and all(type(m) is GlobalBatchNorm2d for m in layers)
    assert all(torch.equal(before[k], v) for k, v in swapped.state_dict().items())
    x = torch.randn(4, 3, 40, 40)
    plain = build_model("seed_cnn", 40)
    plain.load_state_dict(before)
    torch.testing.assert_close(swapped.train()(x), plain.train()(x))  # no group: BatchNorm2d


def test_more_processes_than_gpus_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each process takes a GPU of its own: the stage says so before torchrun starts any."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    distributed.check_gpus(2, torch.device("cuda"))
    distributed.check_gpus(3, torch.device("cpu"))  # gloo: any number of CPU processes
    with pytest.raises(SneakersError, match=r"^train\.nproc_per_node: 3 processes need 3 GPUs, 2 "):
        distributed.check_gpus(3, torch.device("cuda"))


# torchrun's process: says it started, and on an interrupt cleans up before it ends.
RANK = """
import time
from pathlib import Path
from sneakers.errors import run_main

def main():
    Path("started").touch()
    try:
        time.sleep(120)
    except BaseException:
        Path("cleaned").touch()
        raise

run_main(main)
"""


def test_sigterm_reaches_the_processes_torchrun_started(tmp_path: Path) -> None:
    """`kill` of the stage (not of its process group) stops torchrun's processes too, each
    through its own cleanup, before the stage ends: none is left running, writing outputs."""
    (tmp_path / "rank.py").write_text(RANK)
    stage = (
        "from sneakers import distributed\nfrom sneakers.errors import run_main\n"
        "run_main(lambda: distributed.relaunch('rank.py', 1))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SNEAKERS_TORCHRUN"}
    # stderr goes to a file: a process left running must not keep the test waiting on a pipe.
    with (tmp_path / "stderr").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", stage],
            cwd=tmp_path,
            env=env,
            stderr=stderr,
            preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 300  # torchrun starting on a busy machine
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    said = (tmp_path / "stderr").read_text()
    assert proc.returncode == 143, said
    assert (tmp_path / "cleaned").exists(), said
    assert said.endswith("interrupted: outputs were not completed; run the command again\n")
