"""How close `sneakers predict` comes to the model's own speed on the CPU.

    python benchmarks/predict_speed.py [--model models/model.pt] [--images 256] [--batch-size 32]

Writes N synthetic JPEGs (at the model's image size: 240x240 for the demo model) to a temporary
folder, then measures, in one process with one torch thread count:

- forward ceiling: the model alone on random inputs already normalized in memory (eval mode,
  torch.no_grad, channels_last, the same batches);
- predict end-to-end: `sneakers.predict.score`, the code behind the command: read each file,
  check its header, standardize it (`standardize_bytes`), decode it (`data.decode`), stack the
  batch and score it with an `inference.Scorer`;
- model stage: the pictures decoded once beforehand, then only `Scorer.proba` on the batches.

The three take turns batch by batch, in rotating order, for --rounds rounds, and each batch
counts with its best time: on a shared machine a neighbour's burst of CPU use then slows all
three alike instead of one of them. `--pool-workers K` also compares, whole run against whole run,
end-to-end with preprocessing in a pool of K spawned processes (start-up included), which the
command does not do. The last line is the end-to-end ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from sneakers import artifact
from sneakers.errors import run_main
from sneakers.inference import Scorer
from sneakers.predict import score, score_batch
from sneakers.predict_inputs import Row, prepare
from sneakers.preprocess import Recipe

CPU = torch.device("cpu")


def write_jpegs(folder: Path, count: int, size: int, seed: int = 0) -> list[str]:
    """Smooth colour fields with sensor-like noise, saved as quality-92 JPEGs."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        smooth = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), dtype=np.int16)
        noisy = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(noisy).save(path, "JPEG", quality=92)
        paths.append(str(path))
    return paths


def seconds(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def pooled(paths: list[str], workers: int, scorer: Scorer, pre: Recipe) -> None:
    """End-to-end with preprocessing in a pool of spawned processes (what predict does not do)."""
    batch = scorer.batch_size
    with get_context("spawn").Pool(workers) as pool:
        prepared = pool.imap(partial(prepare, pre=pre), paths, chunksize=8)
        for start in range(0, len(paths), batch):
            items = [(Row(p), next(prepared)[0]) for p in paths[start : start + batch]]
            score_batch(items, scorer, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool-workers", type=int, default=0)
    args = parser.parse_args()

    loaded, model = artifact.load(args.model, CPU)
    card, pre = loaded.card, loaded.card.preprocess
    n, batch, threshold = args.images, args.batch_size, card.threshold
    scorer = Scorer(model, CPU, batch, "fp32")
    print(
        f"model {args.model}: {card.arch} at {pre.size} px; {n} images, batch {batch}, "
        f"{torch.get_num_threads()} torch threads, best of {args.rounds} rounds"
    )

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(Path(tmp), n, pre.size)
        generator = torch.Generator().manual_seed(0)
        decoded = torch.from_numpy(np.stack([prepare(p, pre)[0] for p in paths]))
        decoded = decoded.permute(0, 3, 1, 2).contiguous()
        batches = []
        for start in range(0, n, batch):
            files = paths[start : start + batch]
            x = torch.randn(len(files), 3, pre.size, pre.size, generator=generator)
            batches.append(
                (
                    files,
                    x.contiguous(memory_format=torch.channels_last),
                    decoded[start : start + batch],
                )
            )

        @torch.no_grad()
        def forward(item: tuple) -> None:
            model.eval()
            model(item[1])

        def end_to_end(item: tuple) -> None:
            rows = score([Row(p) for p in item[0]], scorer, pre, threshold)
            assert all(r.error is None for r in rows), [r.error for r in rows]

        def model_stage(item: tuple) -> None:
            scorer.proba(item[2])

        measures = {
            "forward ceiling": forward,
            "predict end-to-end": end_to_end,
            "model stage": model_stage,
        }
        for work in measures.values():  # warm up: first touch of the weights, oneDNN kernels
            work(batches[0])
        best = {name: [float("inf")] * len(batches) for name in measures}
        whole = {"serial": float("inf"), "pool": float("inf")}
        for r in range(1, args.rounds + 1):
            spent = dict.fromkeys(measures, 0.0)
            for k, item in enumerate(batches):
                names = list(measures)
                for name in names[k % 3 :] + names[: k % 3]:
                    took = seconds(partial(measures[name], item))
                    spent[name] += took
                    best[name][k] = min(best[name][k], took)
            line = ", ".join(f"{name} {n / s:.2f}" for name, s in spent.items())
            if args.pool_workers:
                rows = [Row(p) for p in paths]
                serial = seconds(partial(score, rows, scorer, pre, threshold))
                pool = seconds(partial(pooled, paths, args.pool_workers, scorer, pre))
                whole = {"serial": min(whole["serial"], serial), "pool": min(whole["pool"], pool)}
            print(f"round {r}: {line} img/s")

    speed = {name: n / sum(times) for name, times in best.items()}
    for name, value in speed.items():
        print(f"{name + ':':<20} {value:7.2f} img/s")
    if args.pool_workers:
        print(f"whole run, serial:   {n / whole['serial']:7.2f} img/s")
        pool_speed = n / whole["pool"]
        print(f"whole run, pool of {args.pool_workers}: {pool_speed:7.2f} img/s (with start-up)")
        print(f"ratio pool/serial: {whole['serial'] / whole['pool']:.3f}")
    ceiling = speed["forward ceiling"]
    print(f"ratio model-stage/forward: {speed['model stage'] / ceiling:.3f}")
    print(f"ratio predict/forward: {speed['predict end-to-end'] / ceiling:.3f}")


if __name__ == "__main__":
    run_main(main)  # a missing or foreign model file: one `error:` line
