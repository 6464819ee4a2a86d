"""Target 3: images/s of the standardize stage's own function against a naive single-process loop.

    python benchmarks/standardize_speed.py [--raw ../shared/data/shoes-real-vs-ai] [--rounds 2]
                                           [--upscale 1024]

The naive baseline is what a first script would do, one process, one file at a time: open the
file, resize it with LANCZOS to the target size, save it as a JPEG (same quality as the stage).
The stage is `sneakers.standardize.standardize_manifest` with `standardize.workers: 0` (one
worker process per core): decode (JPEG draft mode when the input is at least twice the target),
EXIF orientation, RGB, fit, JPEG, then tar shards and index.csv.
Rounds alternate the order (naive first, then stage first) so a change of machine load hits
both alike; every file is read once beforehand so neither side pays for a cold disk cache.

The stage's own ceiling is cores x the single-process rate of its per-image function
(`standardize_file` one file at a time in this process, nothing written: the "single" row):
perfect scaling, no pool, no shards. For reference, "forked" runs that function in one forked
process per core, each on its share, nothing written: what the cores really give together.
CPU seconds (user + system, threads and child processes included): CPU per image says how much
work each side does, CPU / wall how many cores it actually got.

--upscale N first re-saves every input at N x N (LANCZOS, JPEG q95) in a temporary folder, to
stand for full-resolution sources such as the study's MidJourney set, where draft mode applies.

The last line gives stage / ceiling (bar >= 0.85 on the shared data) and stage / naive (bar
>= 4 on full-resolution inputs, `--upscale 1024`), over all rounds.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from _common import SHARED_RAW, fail, load, machine, need, raw_manifest
from PIL import Image

from sneakers.parallel import worker_count
from sneakers.params import StandardizeSettings
from sneakers.standardize import standardize_file, standardize_manifest

MAX_PIXELS = 50_000_000  # params.yaml merge.max_pixels


def naive(paths: list[Path], out_dir: Path | None, size: int, quality: int) -> None:
    """Open, resize LANCZOS to size x size, save JPEG: one process, one file at a time.

    With out_dir None each JPEG goes to memory instead: the codec work alone.
    """
    for i, path in enumerate(paths):
        im = Image.open(path)
        im = im.resize((size, size), Image.Resampling.LANCZOS)
        im.save(out_dir / f"{i:05d}.jpg" if out_dir else io.BytesIO(), "JPEG", quality=quality)


def single(paths: list[Path], settings: StandardizeSettings) -> None:
    """The per-image work alone, in this process, one file after another."""
    for path in paths:
        standardize_file(str(path), settings, MAX_PIXELS)


def forked(paths: list[Path], settings: StandardizeSettings, workers: int) -> None:
    """The per-image work alone, in one forked process per core, each on its own share."""
    children = []
    for k in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                for path in paths[k::workers]:
                    standardize_file(str(path), settings, MAX_PIXELS)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)


def upscaled(raw: Path, size: int, out: Path) -> Path:
    """A copy of raw with every image re-saved at size x size, JPEG q95."""
    for path in sorted(p for p in raw.rglob("*.jpg") if p.is_file()):
        target = out / path.relative_to(raw)
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as im:
            big = im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
        big.save(target, quality=95)
    return out


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) and of its finished children."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", type=Path, default=SHARED_RAW, help="folder with real/ and ai-*/")
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--workers", type=int, default=0, help="0 = one per core (the default)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--upscale", type=int, default=0, help="re-save inputs at N x N first")
    args = parser.parse_args()
    raw = need(args.raw, "raw images", "pass --raw FOLDER (with real/ and ai-midjourney/)")
    if args.rounds < 1:
        fail("--rounds must be at least 1")

    with tempfile.TemporaryDirectory(prefix="std-bench-") as tmp:
        if args.upscale:
            raw = upscaled(raw, args.upscale, Path(tmp) / "raw" / raw.name)
        manifest = raw_manifest(raw)  # every file accepted; reads each file once (warms cache)
        paths = [raw / p for p in manifest["path"]]
        settings = StandardizeSettings(
            size=args.size, jpeg_quality=args.quality, workers=args.workers
        )
        workers = worker_count(args.workers)
        print(machine())
        print(
            f"{len(paths)} images from {raw}"
            f"{f' (upscaled to {args.upscale}px)' if args.upscale else ''}, "
            f"target {args.size}x{args.size}, JPEG q{args.quality}"
        )
        print(f"stage: standardize_manifest with {workers} worker processes; {load()}")

        totals = {"naive": 0.0, "stage": 0.0, "single": 0.0, "forked": 0.0, "naive-mem": 0.0}
        cpu = dict.fromkeys(totals, 0.0)
        for r in range(args.rounds):
            order = list(totals) if r % 2 == 0 else list(reversed(totals))
            for name in order:
                out = Path(tmp) / name
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                started, cpu_started = time.perf_counter(), cpu_seconds()
                if name.startswith("naive"):
                    naive(paths, out if name == "naive" else None, args.size, args.quality)
                elif name == "stage":
                    standardize_manifest(manifest, raw.parent, out / "std", settings, MAX_PIXELS)
                elif name == "single":
                    single(paths, settings)
                else:
                    forked(paths, settings, workers)
                seconds, used = time.perf_counter() - started, cpu_seconds() - cpu_started
                totals[name] += seconds
                cpu[name] += used
                print(
                    f"round {r + 1} {name:9s}: {seconds:6.2f} s  "
                    f"{len(paths) / seconds:7.1f} images/s  CPU {used:5.2f} s "
                    f"({used / seconds:.2f} cores)  ({load()})"
                )
    n = len(paths) * args.rounds
    ips = {name: n / seconds for name, seconds in totals.items()}
    print("all rounds: " + ", ".join(f"{k} {v:.1f}" for k, v in ips.items()) + " images/s")
    ms = {name: 1000 * used / n for name, used in cpu.items()}
    print(
        f"CPU per image: naive {ms['naive']:.2f} ms (of which writing one file per image "
        f"{ms['naive'] - ms['naive-mem']:.2f} ms), stage {ms['stage']:.2f} ms; cores used: "
        f"stage {cpu['stage'] / totals['stage']:.2f} of {os.cpu_count()}"
    )
    top = workers * ips["single"]
    in_memory = ips["stage"] / ips["naive-mem"]
    print(
        f"ceiling = {workers} cores x {ips['single']:.1f} images/s (single process) = "
        f"{top:.1f} images/s; forked/ceiling = {ips['forked'] / top:.2f} (what the cores give "
        f"together), standardize/naive-in-memory = {in_memory:.2f}"
    )
    print(
        f"standardize/ceiling = {ips['stage'] / top:.2f} (bar >= 0.85), standardize/naive = "
        f"{ips['stage'] / ips['naive']:.2f} (bar >= 4 at full resolution)"
    )


if __name__ == "__main__":
    main()
