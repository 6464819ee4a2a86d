"""Target 6: peak memory of training on the shared data, and DataLoader workers sharing the cache.

    python benchmarks/train_memory.py [--images 256] [--workers 2] [--size 240]

Two parts, each in a fresh Python process so one's allocations do not show in the other:

peak   `sneakers.data.load_splits` (every split decoded into uint8 tensors: the image cache),
       then the real `sneakers.train.train` for one epoch on CPU (seed_cnn, batch 32, precise
       BN, validation), on the first --images train images (0 = all 1,183; the peak does not
       grow with the number of steps, only the run time does). Peak RSS from getrusage.
share  the loader of the real `train.setup` with --workers DataLoader workers over the whole
       train split, after the model and optimizer, as `train()` has them (workers fork from that
       state); one epoch of batches is drawn and turned into model inputs while each worker's
       USS (memory only it holds: what a copy of the cache would show up in) and PSS (its
       share of pages it maps with others) are read with psutil after every batch, and so
       are the resident and private pages of the mappings that hold the train images.

When the standardized data is not at --size (the shared copy beside the repository is at
112 px), the raw images are standardized at --size into a temporary folder first.

The last line gives the workers' summed USS (the largest seen) against the size of the cache.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import add_data_args, fail, load, machine, need_data, standardized_at

MIB = 2**20


def peak_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def part_peak(args: argparse.Namespace) -> None:
    import torch

    from sneakers.data import SplitData, cache, load_splits
    from sneakers.logs import MemoryLog
    from sneakers.model import build_model, count_parameters
    from sneakers.params import ModelSettings, RuntimeSettings, TrainSettings
    from sneakers.train import train

    print(f"[peak] after imports: peak RSS {peak_mib():.0f} MiB")
    splits = load_splits(args.standardized, args.split)
    cache(splits)  # every split decoded into memory
    cache_mib = sum(s.images.nbytes for s in splits.values()) / MIB
    count = sum(len(s) for s in splits.values())
    print(
        f"[peak] after load_splits: peak RSS {peak_mib():.0f} MiB "
        f"(image cache {cache_mib:.0f} MiB, {count} images)"
    )
    full = splits["train"]
    n = args.images or len(full)
    splits["train"] = SplitData(full.images[:n], full.labels[:n], full.rows.iloc[:n])
    size = int(full.images.shape[-1])
    params = count_parameters(build_model("seed_cnn", size)) * 4 / MIB
    settings = TrainSettings(epochs=1, num_workers=0)
    model, runtime = ModelSettings(arch="seed_cnn"), RuntimeSettings(device="cpu")
    started = time.perf_counter()
    train(splits, model, settings, runtime, args.seed, MemoryLog())
    seconds = time.perf_counter() - started
    print(
        f"[peak] train(): seed_cnn {size}px, 1 epoch on {n} of {len(full)} train images, "
        f"{len(splits['val'])} val, batch 32, {seconds:.0f} s; {load()}"
    )
    print(
        f"[peak] weights {params:.0f} MiB (with gradients, 2 Adam moments and the kept "
        f"best state: 5 x = {5 * params:.0f} MiB) + image cache {cache_mib:.0f} MiB"
    )
    print(
        f"[peak] peak RSS of train(): {peak_mib():.0f} MiB "
        f"(torch {torch.__version__}, {torch.get_num_threads()} threads)"
    )


def part_share(args: argparse.Namespace) -> None:
    import psutil
    import torch

    from sneakers.data import cache, load_splits
    from sneakers.inference import to_input
    from sneakers.params import ModelSettings, RuntimeSettings, TrainSettings
    from sneakers.train import setup

    splits = load_splits(args.standardized, args.split)
    cache(splits)  # every split decoded into memory
    data = splits["train"]
    cache_mib = sum(s.images.nbytes for s in splits.values()) / MIB
    train_cache = data.images.nbytes / MIB
    device = torch.device("cpu")
    settings = TrainSettings(num_workers=args.workers)
    loader = setup(data, ModelSettings(), settings, RuntimeSettings(device="cpu"), args.seed).loader
    me = psutil.Process()
    lo = data.images.data_ptr()
    hi = lo + data.images.nbytes
    worst = {"uss": 0.0, "pss": 0.0, "rss": 0.0}
    cache_pages = {"rss": 0.0, "private": 0.0}  # the train images' own pages, in the workers
    per_worker: dict[int, float] = {}
    parent = None
    batches = 0
    for images, _ in loader:
        to_input(images, device)
        batches += 1
        infos, in_cache = [], {"rss": 0.0, "private": 0.0}
        for w in me.children():
            try:
                infos.append((w.pid, w.memory_full_info()))
                for m in w.memory_maps(grouped=False):
                    start, end = (int(a, 16) for a in m.addr.split("-"))
                    if start < hi and end > lo:  # a mapping holding (part of) the cache
                        in_cache["rss"] += m.rss / MIB
                        in_cache["private"] += (m.private_clean + m.private_dirty) / MIB
            except psutil.Error:  # a worker that just exited
                continue
        totals = {key: sum(getattr(i, key) for _, i in infos) / MIB for key in worst}
        if totals["uss"] >= worst["uss"]:
            parent = me.memory_full_info()  # at the moment the workers hold the most
        worst = {key: max(worst[key], totals[key]) for key in worst}
        cache_pages = {key: max(cache_pages[key], in_cache[key]) for key in cache_pages}
        for pid, info in infos:
            per_worker[pid] = max(per_worker.get(pid, 0.0), info.uss / MIB)
    print(
        f"[share] {args.workers} workers, {batches} batches of the {len(data)}-image train "
        f"split ({train_cache:.0f} MiB of the {cache_mib:.0f} MiB cache); {load()}"
    )
    if parent is not None:
        print(
            f"[share] parent (then): RSS {parent.rss / MIB:.0f} MiB, USS "
            f"{parent.uss / MIB:.0f} MiB, PSS {parent.pss / MIB:.0f} MiB"
        )
    print(
        "[share] largest USS per worker: " + ", ".join(f"{v:.0f} MiB" for v in per_worker.values())
    )
    print(
        f"[share] workers summed, largest seen: USS {worst['uss']:.0f} MiB, PSS "
        f"{worst['pss']:.0f} MiB, RSS {worst['rss']:.0f} MiB"
    )
    print(
        f"[share] the train images' pages in the workers: {cache_pages['rss']:.0f} MiB "
        f"resident (mapped, shared), {cache_pages['private']:.1f} MiB private"
    )
    print(
        f"workers' summed USS {worst['uss']:.0f} MiB = {worst['uss'] / cache_mib:.2f} x the "
        f"{cache_mib:.0f} MiB image cache (a copy each: >= {args.workers} x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_args(parser)
    parser.add_argument("--images", type=int, default=256, help="train images (0 = all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part", choices=("peak", "share"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    need_data(args)
    if args.images < 0 or args.workers < 1:
        fail("--images must be >= 0 and --workers >= 1")
    if args.part == "peak":
        return part_peak(args)
    if args.part == "share":
        return part_share(args)
    print(machine())
    with tempfile.TemporaryDirectory(prefix="mem-bench-") as tmp:
        standardized = standardized_at(args.standardized, args.raw, args.size, Path(tmp))
        for part in ("peak", "share"):
            cmd = [sys.executable, __file__, *sys.argv[1:], "--part", part]
            cmd += ["--standardized", str(standardized)]  # the last one given wins
            if subprocess.run(cmd).returncode != 0:
                fail(f"the {part} part failed")


if __name__ == "__main__":
    main()
