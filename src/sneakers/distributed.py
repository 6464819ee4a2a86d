"""Training on several processes: torchrun launches them, torch.distributed joins them.

`train.nproc_per_node` above 1 makes the train stage re-run itself under `torchrun` (so dvc.yaml
keeps one plain `cmd` and the param is read in one place); `SNEAKERS_TORCHRUN` replaces
`--standalone` with multi-node rendezvous arguments. Inside, every rank reads params.yaml
itself, trains on its share of each global batch, and only rank 0 writes.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sneakers.errors import SneakersError, Terminated
from sneakers.inference import resolve_device

LAUNCHED = "TORCHELASTIC_RUN_ID"  # set by torchrun in every process it starts


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: rank 0 of 1 without torchrun."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        """Whether this process logs, prints and writes (one per job)."""
        return self.rank == 0


def relaunch(script: str, nproc: int) -> None:
    """Run script under torchrun with nproc processes on this node; one line if any fails."""
    rendezvous = shlex.split(os.environ.get("SNEAKERS_TORCHRUN", "--standalone"))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *rendezvous,
        f"--nproc-per-node={nproc}",
        script,
    ]
    with subprocess.Popen(command) as torchrun:
        try:
            code = torchrun.wait()
        except Terminated:  # SIGTERM reached this process only (Ctrl-C reaches them all)
            torchrun.terminate()  # it passes it on to its processes, and waits for them
            torchrun.wait()
            raise
    if code:
        raise SneakersError(
            f"{script} under torchrun ({nproc} processes) failed with exit code "
            f"{code}: the first `error:` line or traceback above says why"
        )


def check_gpus(nproc: int, device: torch.device) -> None:
    """One GPU per process: more processes than visible GPUs is one line before torchrun starts
    them (each extra process would fail alone, with a traceback, at torch.cuda.set_device)."""
    if device.type == "cuda" and nproc > (gpus := torch.cuda.device_count()):
        raise SneakersError(
            f"train.nproc_per_node: {nproc} processes need {nproc} GPUs, {gpus} visible "
            f"(use at most {gpus}, or runtime.device: cpu)"
        )


def launched() -> bool:
    """Whether torchrun started this process (then the batch order is the one ranks share)."""
    return LAUNCHED in os.environ


def needs_launch(nproc: int) -> bool:
    """More than one process asked for, and this is not yet one of them."""
    return nproc > 1 and not launched()


def is_main() -> bool:
    """Whether this process is rank 0 (or alone), before any process group exists."""
    return os.environ.get("RANK", "0") == "0"


def join(device_name: str) -> tuple[Ranks, torch.device]:
    """This process's ranks and device; joins the process group under torchrun (NCCL on CUDA,
    gloo on CPU), each rank on its own GPU."""
    device = resolve_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks(), device
    ranks = Ranks(int(os.environ["RANK"]), world, int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ranks, device


def leave() -> None:
    """Leave the process group, if joined."""
    if dist.is_initialized():
        dist.destroy_process_group()


def total(value: float, device: torch.device) -> float:
    """The sum of a number over every rank (itself without a process group)."""
    if not dist.is_initialized():
        return value
    tensor = torch.tensor(value, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor)


class _Summed(torch.autograd.Function):
    """A sum over ranks that gradients flow through (summed the same way); ours, as
    torch.distributed.nn.functional.all_reduce is deprecated."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the global batch of all ranks, on any backend: torch's SyncBatchNorm runs
    on GPUs only, and gloo (CPU) jobs must normalize as one process would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        dims = (0, 2, 3)
        wide = x.double()  # sums of squares in float64: mean and variance to ~1e-12
        count = torch.full((1,), x.numel() / x.shape[1], dtype=torch.float64, device=x.device)
        stats = _Summed.apply(torch.cat([wide.sum(dims), (wide * wide).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (
                    (1 / float(self.num_batches_tracked))
                    if self.momentum is None
                    else (self.momentum)
                )
                unbiased = var * n / (n - 1).clamp_min(1)
                self.running_mean.mul_(1 - factor).add_(factor * mean.to(self.running_mean))
                self.running_var.mul_(1 - factor).add_(factor * unbiased.to(self.running_var))
        shape = (1, c, 1, 1)
        y = (wide - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        y = y.to(x.dtype)
        return y * self.weight.view(shape) + self.bias.view(shape)


def global_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers that see the global batch: SyncBatchNorm on CUDA, ours elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            swapped = GlobalBatchNorm2d(
                child.num_features,
                child.eps,
                child.momentum,
                child.affine,
                child.track_running_stats,
            )
            swapped.load_state_dict(child.state_dict())
            setattr(model, name, swapped.to(child.weight.device, child.weight.dtype))
        else:
            global_batchnorm(child, device)
    return model
