"""Train and eval speed of each precision variant on this machine, in one process, interleaved.

    python benchmarks/precision.py [--arch seed_cnn] [--size 240] [--steps 3] [--skip compile]

Variants (every one channels_last, after `seed_everything`, as `train()` runs):

- fp32: the eager fp32 step as `train()` runs it now;
- fp32-nanfill: the same with `torch.utils.deterministic.fill_uninitialized_memory` on, as
  `seed_everything` left it before: deterministic mode then NaN-fills every new tensor;
- bf16-autocast: `torch.autocast(dtype=bfloat16)`, weights and optimizer stay fp32 (what
  `train.precision: bf16` runs);
- bf16-weights: the model itself in bf16, an fp32 master copy updated by Adam, grads copied
  from the bf16 model each step;
- compile-fp32, compile-bf16: `torch.compile` of the model (compile time is printed apart).

A train step is forward, loss, backward and an Adam step on one batch of random inputs; eval is
a no-grad eval-mode forward. One warm-up each, then the variants take turns step by step (the
order reversed every other round) so that a change in machine load hits all alike.

FLOPs per image are counted by `torch.utils.flop_counter.FlopCounterMode` (convolutions and
matrix products, forward; forward + backward for a train step). Peak = cores x clock x FLOP per
cycle per core, from the CPU's flags: fp32 FMA is 2 units x lanes x 2 (AVX-512: 64, AVX2: 32);
bf16 is 1,024 with AMX-BF16 (TDPBF16PS: 16x16x32 multiply-adds per 16 cycles), 128 with
AVX512-BF16 (VDPBF16PS on 2 units), else the fp32 peak (bf16 is converted, not computed).

`--explain` profiles one train step of fp32, fp32-nanfill and bf16-autocast and prints the five
costliest operators and the oneDNN implementations that ran (ONEDNN_VERBOSE), e.g.
brg_conv_fwd:avx2 or avx512_core_amx, or none where PyTorch did not hand the convolution to
oneDNN at all.

The last line: best train / fp32 train and best eval / fp32 eval, naming the best variants.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
import torch.utils.deterministic
from _common import add_step_args, apply_step_args, fail, load, machine
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sneakers.model import build_model
from sneakers.train import seed_everything

VARIANTS = (
    "fp32",
    "fp32-nanfill",
    "bf16-autocast",
    "bf16-weights",
    "compile-fp32",
    "compile-bf16",
)


def cpu_peak() -> dict[str, float]:
    """Peak GFLOP/s of this machine's cores for fp32 and bf16 (formula in the docstring)."""
    flags = torch.cpu.get_capabilities()
    mhz = max(
        float(line.split(":")[1])
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("cpu MHz")
    )
    cores = torch.get_num_threads()
    fp32_per_cycle = 64 if flags.get("avx512_f") else 32 if flags.get("fma3") else 16
    bf16_per_cycle = (
        1024 if flags.get("amx_bf16") else 128 if flags.get("avx512_bf16") else fp32_per_cycle
    )
    ghz = cores * mhz / 1000
    print(
        f"peak: {cores} cores x {mhz / 1000:.3f} GHz x FLOP/cycle (fp32 {fp32_per_cycle}, "
        f"bf16 {bf16_per_cycle}; amx_bf16={flags.get('amx_bf16')}, "
        f"avx512_bf16={flags.get('avx512_bf16')}, avx512_f={flags.get('avx512_f')})"
    )
    return {"fp32": ghz * fp32_per_cycle, "bf16": ghz * bf16_per_cycle}


def flops_per_image(arch: str, size: int) -> tuple[float, float]:
    """Forward and train-step (forward + backward) FLOPs of one image."""
    model = build_model(arch, size)
    x = torch.randn(2, 3, size, size)
    with FlopCounterMode(display=False) as forward:
        model(x)
    with FlopCounterMode(display=False) as step:
        model(x).sum().backward()
    return forward.get_total_flops() / 2, step.get_total_flops() / 2


class Variant:
    """One way of running the same model: its train step and its eval forward."""

    def __init__(self, name: str, base: nn.Module) -> None:
        self.name = name
        self.bf16 = "bf16" in name
        self.model = copy.deepcopy(base).to(memory_format=torch.channels_last)
        self.master: list[nn.Parameter] = []
        if name == "bf16-weights":
            self.master = [p.detach().clone().requires_grad_() for p in self.model.parameters()]
            self.model.to(torch.bfloat16)
        params = self.master or list(self.model.parameters())
        self.optimizer = torch.optim.Adam(params, lr=1e-3)
        self.forward: Callable = torch.compile(self.model) if "compile" in name else self.model
        self.compile_seconds = 0.0

    def _autocast(self) -> torch.autocast:
        enabled = self.bf16 and self.name != "bf16-weights"
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.bfloat16) if self.name == "bf16-weights" else x

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        torch.utils.deterministic.fill_uninitialized_memory = self.name == "fp32-nanfill"
        self.model.train()
        started = time.perf_counter()
        with self._autocast():
            loss = nn.functional.cross_entropy(self.forward(self._input(x)).float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.master:  # fp32 master weights take the bf16 gradients, then update the model
            for master, p in zip(self.master, self.model.parameters(), strict=True):
                master.grad = p.grad.float()
                p.grad = None
        self.optimizer.step()
        if self.master:
            with torch.no_grad():
                for master, p in zip(self.master, self.model.parameters(), strict=True):
                    p.copy_(master)
        loss.item()
        return time.perf_counter() - started

    @torch.no_grad()
    def eval_step(self, x: torch.Tensor) -> float:
        torch.utils.deterministic.fill_uninitialized_memory = self.name == "fp32-nanfill"
        self.model.eval()
        started = time.perf_counter()
        with self._autocast():
            self.forward(self._input(x)).float().sum().item()
        return time.perf_counter() - started


def explain(variant: Variant, x: torch.Tensor, y: torch.Tensor) -> None:
    """Costliest operators of one train step, and which oneDNN kernels ran (if any)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        variant.train_step(x, y)
    top = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:5]
    share = sum(e.self_cpu_time_total for e in prof.key_averages())
    print(f"  {variant.name}: costliest operators (share of one train step's CPU time):")
    for e in top:
        print(f"    {e.key:40s} {e.self_cpu_time_total / share:6.1%}  ({e.count} calls)")
    kernels = onednn_kernels(lambda: variant.train_step(x, y))
    if not kernels:
        print("    oneDNN: no primitive ran (PyTorch kept the convolutions in its own kernels)")
    for (kind, impl, dtype), (n, ms) in sorted(kernels.items(), key=lambda kv: -kv[1][1])[:6]:
        print(f"    oneDNN {kind:12s} {impl:32s} {dtype:5s} {n:4d} calls {ms:9.1f} ms")


def onednn_kernels(step: Callable[[], object]) -> dict[tuple[str, str, str], tuple[int, float]]:
    """Run step with ONEDNN_VERBOSE on; oneDNN prints to the C stdout, so catch fd 1 in a file."""
    with tempfile.TemporaryFile(mode="w+") as out:
        saved = os.dup(1)
        os.dup2(out.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                step()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        out.seek(0)
        lines = [line.split(",") for line in out if line.startswith("onednn_verbose")]
    counts: Counter = Counter()
    times: Counter = Counter()
    for f in lines:
        if len(f) > 8 and f[2] == "primitive" and f[3] == "exec":
            match = re.match(r"src:(\w+)", f[8])
            key = (f[5], f[6], match.group(1) if match else "?")
            counts[key] += 1
            times[key] += float(f[-1])
    return {k: (counts[k], times[k]) for k in counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_step_args(parser, steps=3, eval_batches=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=VARIANTS + ("compile",))
    parser.add_argument("--explain", action="store_true", help="profile the eager fp32 and bf16")
    args = parser.parse_args()
    apply_step_args(args)
    names = [
        n
        for n in VARIANTS
        if n not in args.skip and not ("compile" in args.skip and "compile" in n)
    ]
    if "fp32" not in names:
        fail("fp32 is the reference: do not skip it")
    seed_everything(args.seed)
    print(machine())
    peak = cpu_peak()
    forward_flops, step_flops = flops_per_image(args.arch, args.size)
    print(
        f"{args.arch} at {args.size}px: {forward_flops / 1e9:.2f} GFLOP forward, "
        f"{step_flops / 1e9:.2f} GFLOP per train image (FlopCounterMode); batch "
        f"{args.batch_size}, {args.steps} train steps and {args.eval_batches} eval batches "
        f"per variant after 1 warm-up; {load()}"
    )

    base = build_model(args.arch, args.size)
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, 3, args.size, args.size, generator=gen)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (args.batch_size,), generator=gen)
    variants = [Variant(n, base) for n in names]
    for v in variants:  # warm-up, excluded; for compiled variants this is the compile
        started = time.perf_counter()
        v.train_step(x, y)
        v.eval_step(x)
        v.compile_seconds = time.perf_counter() - started
        print(f"warm-up {v.name}: {v.compile_seconds:.1f} s ({load()})")
    if args.explain:
        for v in variants:
            if v.name in ("fp32", "fp32-nanfill", "bf16-autocast"):
                explain(v, x, y)

    times = {(v.name, kind): 0.0 for v in variants for kind in ("train", "eval")}
    for kind, rounds in (("train", args.steps), ("eval", args.eval_batches)):
        for i in range(rounds):
            for v in variants if i % 2 == 0 else variants[::-1]:
                step = v.train_step(x, y) if kind == "train" else v.eval_step(x)
                times[v.name, kind] += step
    rate = {}
    for kind, rounds, flops in (
        ("train", args.steps, step_flops),
        ("eval", args.eval_batches, forward_flops),
    ):
        for v in variants:
            rate[v.name, kind] = rounds * args.batch_size / times[v.name, kind]
            achieved = rate[v.name, kind] * flops / 1e9
            top = peak["bf16" if v.bf16 else "fp32"]
            print(
                f"{kind:5s} {v.name:14s} {rate[v.name, kind]:7.2f} img/s "
                f"{achieved:7.1f} GFLOP/s = {achieved / top:6.1%} of the {top:.0f} GFLOP/s "
                f"{'bf16' if v.bf16 else 'fp32'} peak  ({load()})"
            )
    if "fp32-nanfill" in names:
        old = {k: rate["fp32", k] / rate["fp32-nanfill", k] for k in ("train", "eval")}
        print(
            f"fp32 / fp32-nanfill (the step before this change): train {old['train']:.2f}, "
            f"eval {old['eval']:.2f}"
        )
    best = {k: max(names, key=lambda n, k=k: rate[n, k]) for k in ("train", "eval")}
    ratio = {k: rate[best[k], k] / rate["fp32", k] for k in ("train", "eval")}
    print(
        f"best train / fp32 train {ratio['train']:.2f} ({best['train']}), "
        f"best eval / fp32 eval {ratio['eval']:.2f} ({best['eval']})"
    )


if __name__ == "__main__":
    main()
