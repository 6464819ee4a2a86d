"""bf16 inference against fp32 for a trained model: the same label for how many test images?

    python benchmarks/precision_parity.py [--model models/model.pt]
        [--standardized data/standardized] [--split data/split/split.csv] [--splits test]

Scores each listed split twice with `inference.Scorer`, in fp32 and in bf16 autocast, at
the model's own threshold, and prints per split: accuracy in each precision, the share of
images given the same label (bar: >= 0.995), the largest |P(ai) difference| and images/s. On a
CPU without native bf16 (no AMX-BF16 or AVX512-BF16) bf16 is emulated: slow, same arithmetic.
The last line is the agreement over all listed splits.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import fail, load, machine, need

from sneakers import artifact
from sneakers.data import cache, load_splits
from sneakers.inference import Scorer, resolve_device

COMPARED = ("fp32", "bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--standardized", type=Path, default=Path("data/standardized"))
    parser.add_argument("--split", type=Path, default=Path("data/split/split.csv"))
    parser.add_argument("--splits", nargs="+", default=["test"], choices=["train", "val", "test"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    hint = "run `dvc repro` first, or pass --model, --standardized and --split"
    need(args.model, "model", hint)
    need(args.standardized / "index.csv", "standardized data", hint)
    need(args.split, "split.csv", hint)
    if args.batch_size < 1:
        fail("--batch-size must be at least 1")
    device = resolve_device(args.device, "--device")
    loaded, model = artifact.load(args.model, device)
    card = loaded.card
    splits = load_splits(args.standardized, args.split)
    cache(splits)  # every split decoded into memory
    threshold = card.threshold
    print(machine())
    print(
        f"{args.model}: {card.arch} at {card.image_size}px, threshold "
        f"{threshold:.4f}, trained in {card.trained.precision}; {load()}"
    )
    same = total = 0
    for name in args.splits:
        data = splits[name]
        y = data.labels.numpy()
        p, rate = {}, {}
        for precision in COMPARED:
            started = time.perf_counter()
            p[precision] = Scorer(model, device, args.batch_size, precision).proba(data.images)
            rate[precision] = len(y) / (time.perf_counter() - started)
        labels = {k: v >= threshold for k, v in p.items()}
        agree = int(np.sum(labels["fp32"] == labels["bf16"]))
        same, total = same + agree, total + len(y)
        accuracy = {k: float(np.mean(v == y)) for k, v in labels.items()}
        print(
            f"{name}: n {len(y)}, accuracy fp32 {accuracy['fp32']:.4f} bf16 "
            f"{accuracy['bf16']:.4f}, same label {agree}/{len(y)}, max |dP(ai)| "
            f"{float(np.max(np.abs(p['fp32'] - p['bf16']))):.4f}, images/s fp32 "
            f"{rate['fp32']:.1f} bf16 {rate['bf16']:.1f}  ({load()})"
        )
    print(f"bf16/fp32 same label: {same / total:.4f} of {total} images (bar >= 0.995)")


if __name__ == "__main__":
    main()
