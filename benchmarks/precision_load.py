"""fp32 against bf16 autocast training while another job shares the cores, and remedies.

    python benchmarks/precision_load.py [--arch seed_cnn] [--size 240] [--steps 3]

Each measurement is a child process that builds seed_cnn, takes one warm-up train step and then
`--steps` timed ones (forward, loss, backward, Adam; channels_last, after `seed_everything`, as
`train()` runs them) on random inputs, in one precision with one OpenMP setting. The conditions:

- idle: nothing else runs (beyond whatever the machine's other users do: the load average is
  printed beside every figure);
- loaded: a competing process trains the same model in fp32 with as many threads as there are
  cores, from before the child starts until it ends: another training job on a shared machine.

Settings per child: `spin`, torch's own default (as many threads as cores, GNU OpenMP's default
barrier: spin, then sleep); `passive`, `OMP_WAIT_POLICY=PASSIVE` (a thread that waits at a barrier
sleeps at once instead of spinning, so it gives its core back to whoever was preempted), which
`import sneakers` sets unless the user did; and `1 thread` (no barrier at all).

Every variant runs `--rounds` times, interleaved; figures are medians. The last line: bf16 /
fp32 train speed, idle and loaded, with the default and the remedy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import fail, load, machine

SETTINGS = {  # None: removed from the child's environment
    "spin": {"OMP_WAIT_POLICY": None},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"OMP_WAIT_POLICY": None, "OMP_NUM_THREADS": "1"},
}


def child(args: argparse.Namespace) -> None:
    """Time train steps in one precision; print images per second."""
    import torch
    from precision import Variant

    from sneakers.model import build_model
    from sneakers.train import seed_everything

    seed_everything(args.seed)
    name = "bf16-autocast" if args.precision == "bf16" else "fp32"
    variant = Variant(name, build_model(args.arch, args.size))
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, 3, args.size, args.size, generator=gen)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (args.batch_size,), generator=gen)
    variant.train_step(x, y)
    seconds = sum(variant.train_step(x, y) for _ in range(args.steps))
    print(f"{args.steps * args.batch_size / seconds:.3f} {torch.get_num_threads()}")


def competitor(args: argparse.Namespace) -> subprocess.Popen:
    """Another fp32 training job with a thread per core, running until killed."""
    code = (
        "import torch, sys; sys.path.insert(0, 'src'); from sneakers.model import build_model\n"
        f"m = build_model('{args.arch}', {args.size}); o = torch.optim.Adam(m.parameters())\n"
        f"x = torch.randn({args.batch_size}, 3, {args.size}, {args.size})\n"
        f"y = torch.randint(0, 2, ({args.batch_size},))\n"
        "while True:\n"
        "    o.zero_grad(); torch.nn.functional.cross_entropy(m(x), y).backward(); o.step()\n"
    )
    root = Path(__file__).resolve().parents[1]
    return subprocess.Popen([sys.executable, "-c", code], cwd=root)


def measure(args: argparse.Namespace, precision: str, setting: str) -> tuple[float, int]:
    """Images per second of one child and the threads it ran with."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--precision",
        precision,
        "--arch",
        args.arch,
        "--size",
        str(args.size),
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
    ]
    env = {**os.environ, **SETTINGS[setting]}
    env = {k: v for k, v in env.items() if v is not None}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        fail(f"the {precision} child ({setting}) failed: {done.stderr.strip().splitlines()[-1]}")
    rate, threads = done.stdout.split()
    return float(rate), int(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="seed_cnn")
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per child")
    parser.add_argument("--rounds", type=int, default=3, help="children per variant (median)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--precision", choices=("fp32", "bf16"), help=argparse.SUPPRESS)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    if args.steps < 1 or args.rounds < 1:
        fail("--steps and --rounds must be at least 1")
    if args.child:
        return child(args)
    import torch

    print(machine())
    flags = torch.cpu.get_capabilities()
    print(
        "bf16 hardware: "
        + ", ".join(f"{k} {bool(flags.get(k))}" for k in ("amx_bf16", "avx512_bf16"))
    )
    print(
        f"{args.arch} at {args.size} px, batch {args.batch_size}, {args.steps} timed steps "
        f"per child after 1 warm-up"
    )
    runs: dict[tuple[str, str, str], list[float]] = {}
    for condition in ("idle", "loaded"):
        rival = competitor(args) if condition == "loaded" else None
        if rival:
            time.sleep(5)  # let it reach its steady state
        try:
            for i in range(args.rounds):  # interleaved, so a change in load hits all alike
                order = [(s, p) for s in args.settings for p in ("fp32", "bf16")]
                for setting, precision in order if i % 2 == 0 else order[::-1]:
                    r, threads = measure(args, precision, setting)
                    runs.setdefault((condition, setting, precision), []).append(r)
                    print(
                        f"{condition:6s} {setting:8s} {precision}: {r:6.2f} img/s "
                        f"({threads} thread(s); {load()})",
                        flush=True,
                    )
        finally:
            if rival:
                rival.kill()
                rival.wait()
    rate = {key: statistics.median(values) for key, values in runs.items()}
    for (condition, setting, precision), r in rate.items():
        print(f"median {condition:6s} {setting:8s} {precision}: {r:6.2f} img/s")
    parts = []
    for condition in ("idle", "loaded"):
        for setting in args.settings:
            ratio = rate[condition, setting, "bf16"] / rate[condition, setting, "fp32"]
            parts.append(f"{condition} {setting} {ratio:.2f}")
    best = max(args.settings, key=lambda s: rate["loaded", s, "bf16"])
    vs = rate["loaded", best, "bf16"] / rate["loaded", "spin", "fp32"]
    print(f"bf16 / fp32 train: {'; '.join(parts)}; loaded best bf16 ({best}) / spin fp32 {vs:.2f}")


if __name__ == "__main__":
    main()
