"""Issue 17, data at scale: how near-duplicate search, standardizing and a streamed epoch grow
with the number of images, on synthetic data (nothing is read from ../shared).

    python benchmarks/scale.py [--sizes 2000 20000 200000] [--scan-max 20000] [--stream-max 200000]
        [--workers 2]

Every measurement runs in a child process of its own (this script again), so its peak RSS
(getrusage ru_maxrss) is its own: "peak" is the child's whole peak, imports included; "growth"
is how far the measured work raised it above what the child held before (imports, its inputs).

near index / near scan
    `merge.near_pairs` at near_threshold 4 on random 64-bit phash and dhash hex strings, 5% of
    them copies of others with 0-4 bits flipped in each hash. "index" is the stage's path; "scan"
    the exhaustive comparison it replaced (near_pairs's own fallback, forced by lowering
    merge.INDEXED_THRESHOLD), only up to --scan-max, and checked to find the same pairs.
standardize
    `preprocess.Recipe.apply` (the stage's per-image function, default settings: 240 px, crop,
    JPEG q90) on --standardize-images synthetic --input-side px JPEGs (q95), one process. Each
    image is independent, so at every size the stage costs that per-image time x images (over
    its workers): the rows at the --sizes are that product, not runs.
stream / in-memory
    one epoch of train's data path over synthetic 64 px JPEGs in tar shards
    (`shards.ShardWriter`, 1,000 a shard), up to --stream-max: `loader.make_loader` on a
    `data.ShardImages` split, batches of --batch-size, --workers DataLoader workers. "stream"
    is the path past train.memory_gb: the workers read and decode each batch from the shards;
    "in-memory" first decodes every image into one uint8 tensor (`data.cache`, as train does
    when the split fits), then the loader cuts batches from it. The shards come from the page
    cache; the index CSV is read before the measured work in both. "workers" is the largest
    worker's peak RSS (getrusage of the children; shared pages count in each).

The last lines: the table, then each task's time per image at each size over its time per
image at the smallest size.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from _common import fail, load, machine
from PIL import Image

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

THRESHOLD = 4  # params.yaml merge.near_threshold
NEAR_FRACTION = 0.05
STREAM_SIDE = 64
KINDS = ("near index", "near scan", "standardize", "stream", "in-memory")


def peak_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size of this process (or of its largest finished child) so far;
    ru_maxrss is in KiB on Linux."""
    return resource.getrusage(who).ru_maxrss / 1024


def synthetic_hashes(n: int, seed: int) -> pd.DataFrame:
    """n phash/dhash hex strings as merge stores them: random, with NEAR_FRACTION of the rows
    copies of other rows with 0..THRESHOLD bits flipped in each hash, shuffled."""
    rng = np.random.default_rng(seed)
    copies = int(NEAR_FRACTION * n)
    hashes = rng.integers(0, 2**64, size=(2, n), dtype=np.uint64)
    originals = rng.integers(0, n - copies, size=copies)
    bits = np.uint64(1) << np.arange(64, dtype=np.uint64)
    for h in hashes:
        chosen = np.argsort(rng.random((copies, 64)), axis=1)  # a random bit order per copy
        flipped = np.arange(64) < rng.integers(0, THRESHOLD + 1, size=(copies, 1))
        masks = np.bitwise_or.reduce(np.where(flipped, bits[chosen], np.uint64(0)), axis=1)
        h[n - copies :] = h[originals] ^ masks
    order = rng.permutation(n)
    return pd.DataFrame(
        {
            name: [f"{x:016x}" for x in h[order].tolist()]
            for name, h in zip(("phash", "dhash"), hashes, strict=True)
        }
    )


def synthetic_jpeg(rng: np.random.Generator, side: int, quality: int) -> bytes:
    """A smooth random picture (a 16 x 16 grid of colours, upsampled) with a little noise."""
    coarse = Image.fromarray(rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8))
    pixels = np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC), dtype=np.int16)
    noisy = np.clip(pixels + rng.integers(-4, 5, size=pixels.shape), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(noisy).save(out, "JPEG", quality=quality)
    return out.getvalue()


def write_shards(out_dir: Path, n: int, seed: int) -> None:
    """n synthetic STREAM_SIDE px JPEGs in tar shards of 1,000, and their index.csv."""
    from sneakers.shards import ShardWriter, tar_member

    rng = np.random.default_rng(seed)
    writer = ShardWriter(out_dir, shard_size=1000)
    for start in range(0, n, 1000):
        ids = [f"{k:016x}" for k in range(start, min(start + 1000, n))]
        jpegs = [synthetic_jpeg(rng, STREAM_SIDE, 90) for _ in ids]
        metas = [
            {
                "id": i,
                "label": "real",
                "source": "synthetic",
                "role": "train",
                "path": f"{i}.jpg",
                "brand": "",
                "generator": "",
                "group": "",
            }
            for i in ids
        ]
        members = b"".join(tar_member(f"{i}.jpg", data) for i, data in zip(ids, jpegs, strict=True))
        writer.add(members, metas, [len(data) for data in jpegs])
    writer.close()
    writer.index().to_csv(out_dir / "index.csv", index=False)


def epoch(loader: DataLoader, data: Any, in_memory: bool) -> int:
    """The images of one epoch, batch by batch, as train's loader hands them out; in memory,
    the split is decoded first, as train does when it fits."""
    from sneakers.data import cache

    if in_memory:
        cache({"train": data}, show=False)
    return sum(len(labels) for _, labels in loader)


def prepare(task: dict[str, Any]) -> tuple[Callable[[], Any], dict[str, Any]]:
    """A task's inputs, built before the measurement: the work to time, and facts about them."""
    kind, n = task["kind"], task["n"]
    if kind.startswith("near"):
        from sneakers import merge

        if kind == "near scan":
            merge.INDEXED_THRESHOLD = -1  # near_pairs's fallback: every pair compared
        hashes = synthetic_hashes(n, task["seed"])
        merge.near_pairs(hashes.iloc[:2], THRESHOLD)  # first calls (numpy, pandas) warm up
        return partial(merge.near_pairs, hashes, THRESHOLD), {}
    if kind == "standardize":
        from sneakers.params import MergeSettings, StandardizeSettings

        rng = np.random.default_rng(task["seed"])
        recipe = StandardizeSettings().recipe(MergeSettings().max_pixels)
        jpegs = [synthetic_jpeg(rng, task["side"], 95) for _ in range(n)]
        kib = sum(map(len, jpegs)) / n / 1024
        recipe.apply(jpegs[0])  # the codecs' first calls warm up
        return partial(list, map(recipe.apply, jpegs)), {"kib": kib}
    import torch  # loads here, before the measurement

    from sneakers.data import ShardImages, SplitData
    from sneakers.files import read_csv
    from sneakers.loader import make_loader
    from sneakers.params import TrainSettings

    shard_dir = Path(task["dir"])
    index = read_csv(shard_dir / "index.csv")
    data = SplitData(
        ShardImages.of(shard_dir, index), torch.zeros(len(index), dtype=torch.long), index
    )
    settings = TrainSettings(batch_size=task["batch"], num_workers=task["workers"])
    loader = make_loader(data, settings, torch.device("cpu"), seed=0)
    return partial(epoch, loader, data, kind == "in-memory"), {}


def child(task: dict[str, Any]) -> dict[str, Any]:
    """One measurement in this fresh process: seconds, peak RSS and its growth (MiB); for the
    near-duplicate search also the number of pairs and a digest of the list."""
    work, facts = prepare(task)
    before = peak_mib()
    started = time.perf_counter()
    out = work()
    seconds = time.perf_counter() - started
    result = {
        **facts,
        "seconds": seconds,
        "peak": peak_mib(),
        "growth": peak_mib() - before,
        "workers": peak_mib(resource.RUSAGE_CHILDREN),
    }
    if task["kind"].startswith("near"):
        digest = hashlib.sha256(json.dumps(out).encode()).hexdigest()[:12]
        result.update(pairs=len(out), digest=digest)
    return result


def measure(task: dict[str, Any]) -> dict[str, Any]:
    """One child process running one task; fails with one line if it does."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(task)], capture_output=True, text=True
    )
    if done.returncode != 0:
        fail(f"{task['kind']} at {task['n']} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 200000])
    parser.add_argument("--scan-max", type=int, default=20000, help="largest size to scan")
    parser.add_argument("--stream-max", type=int, default=200000, help="largest size to stream")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--standardize-images", type=int, default=300)
    parser.add_argument("--input-side", type=int, default=1024, help="standardize's input px")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    sizes = sorted(set(args.sizes))
    if sizes[0] < 2 or args.standardize_images < 1 or args.batch_size < 1:
        fail("--sizes must be at least 2, --standardize-images and --batch-size at least 1")
    print(machine())
    print(
        f"sizes {sizes}; near_threshold {THRESHOLD}, {NEAR_FRACTION:.0%} planted near copies; "
        f"standardize {args.standardize_images} images of {args.input_side} px; stream "
        f"{STREAM_SIDE} px, batch {args.batch_size}, {args.workers} DataLoader workers; "
        f"{load()}"
    )

    rows: list[dict[str, Any]] = []  # kind, n, seconds, peak, growth, workers, note

    def record(kind: str, n: int, got: dict[str, Any], note: str = "") -> None:
        rows.append({"kind": kind, "n": n, **got, "note": note})
        print(
            f"{kind:12s} {n:7d}: {got['seconds']:8.3f} s, peak {got['peak']:6.0f} MiB "
            f"(+{got['growth']:.0f}), workers {got['workers']:.0f} MiB {note}  ({load()})",
            flush=True,
        )

    for n in sizes:
        index = measure({"kind": "near index", "n": n, "seed": args.seed + n})
        record("near index", n, index, f"{index['pairs']} pairs")
        if n <= args.scan_max:
            scan = measure({"kind": "near scan", "n": n, "seed": args.seed + n})
            if (scan["pairs"], scan["digest"]) != (index["pairs"], index["digest"]):
                fail(f"at {n} the index found {index['pairs']} pairs, the scan {scan['pairs']}")
            record("near scan", n, scan, f"{scan['pairs']} pairs, the same")
    one = measure(
        {
            "kind": "standardize",
            "n": args.standardize_images,
            "seed": args.seed,
            "side": args.input_side,
        }
    )
    each = one["seconds"] / args.standardize_images
    print(
        f"standardize: {1000 * each:.2f} ms per image over {args.standardize_images} images "
        f"of {one['kib']:.0f} KiB on average (one process), peak {one['peak']:.0f} MiB "
        f"(+{one['growth']:.0f})"
    )
    for n in sizes:
        rows.append(
            {
                **one,
                "kind": "standardize",
                "n": n,
                "seconds": each * n,
                "note": "per-image time x n: images are independent",
            }
        )
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        for n in (s for s in sizes if s <= args.stream_max):
            shard_dir = Path(tmp) / str(n)
            shard_dir.mkdir()
            write_shards(shard_dir, n, args.seed + n)
            cache = n * 3 * STREAM_SIDE**2 / 2**20
            notes = {
                "stream": f"batches of {args.batch_size}",
                "in-memory": f"the uint8 tensor: {cache:.0f} MiB",
            }
            for kind, note in notes.items():
                task = {
                    "kind": kind,
                    "n": n,
                    "dir": str(shard_dir),
                    "batch": args.batch_size,
                    "workers": args.workers,
                }
                record(kind, n, measure(task), note)
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    """The table, then one line per task: time per image at each size over the smallest's."""
    print()
    print(
        f"{'task':12s} {'images':>7s} {'seconds':>9s} {'us/image':>9s} {'images/s':>9s} "
        f"{'peak MiB':>9s} {'growth':>7s} {'workers':>7s} {'x smallest':>10s}  note"
    )
    ratios = []
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        base = mine[0]["seconds"] / mine[0]["n"]
        for r in mine:
            per = r["seconds"] / r["n"]
            print(
                f"{kind:12s} {r['n']:7d} {r['seconds']:9.3f} {1e6 * per:9.1f} {1 / per:9.0f} "
                f"{r['peak']:9.0f} {r['growth']:7.0f} {r['workers']:7.0f} {per / base:10.2f}  "
                f"{r['note']}"
            )
        times = " / ".join(f"{r['seconds'] / r['n'] / base:.2f}" for r in mine)
        ratios.append(f"{kind} {times} at {' / '.join(str(r['n']) for r in mine)}")
    print()
    for line in ratios:
        print(f"time per image over the smallest size: {line}")


if __name__ == "__main__":
    main()
