"""What `sneakers predict --explain` adds per image, and where the heatmaps fall.

    python benchmarks/explain_cost.py [--model models/model.pt] [PATH ...] [--images 64]

Scores the pictures (the files under PATH, or --images synthetic JPEGs) with
`sneakers.predict.score`, the code behind the command, without and with heatmap overlays
(written to a temporary folder), in alternating rounds, each counted with its best time. Then,
for every picture whose standardized version has a shoe on a light background
(`explain.object_box`: the box around pixels darker than 235 in every channel), the share of
its heatmap inside that box against the box's share of the picture: a model that looks at the
shoe puts more mass there than the box's area. The last line is the time ratio.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _common import fail
from predict_speed import seconds, write_jpegs

from sneakers import artifact
from sneakers.errors import run_main
from sneakers.explain import heatmaps, mass_in_box, object_box
from sneakers.inference import Scorer
from sneakers.predict import score
from sneakers.predict_inputs import Row, find_inputs, prepare
from sneakers.predict_output import Overlays

CPU = torch.device("cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", metavar="PATH")
    parser.add_argument("--model", type=Path, default=Path("models/model.pt"))
    parser.add_argument("--images", type=int, default=64, help="synthetic ones, without PATH")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    loaded, model = artifact.load(args.model, CPU)
    card, pre = loaded.card, loaded.card.preprocess
    threshold = card.threshold
    scorer = Scorer(model, CPU, args.batch_size, "fp32")
    with tempfile.TemporaryDirectory() as tmp:
        if args.paths:
            paths = [r.path for r in find_inputs(args.paths).rows if r.error is None]
        else:
            paths = write_jpegs(Path(tmp) / "in", args.images, pre.size)
        if not paths:
            fail(f"no image files under {' '.join(args.paths)}")
        print(
            f"model {args.model}: {card.arch} at {pre.size} px; {len(paths)} images, "
            f"batch {args.batch_size}, {torch.get_num_threads()} torch threads"
        )

        def run(explain: bool) -> float:
            overlays = Overlays(Path(tmp) / "out", paths) if explain else None
            rows = [Row(p) for p in paths]
            return seconds(lambda: score(rows, scorer, pre, threshold, overlays))

        best = {"predict": float("inf"), "predict --explain": float("inf")}
        for r in range(args.rounds):
            for name in list(best)[r % 2 :] + list(best)[: r % 2]:
                best[name] = min(best[name], run(name.endswith("explain")))
        for name, took in best.items():
            print(f"{name + ':':<19} {1000 * took / len(paths):8.1f} ms per image")

        pixels = np.stack([prepare(p, pre)[0] for p in paths])
        images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
        heat = heatmaps(model, images, CPU)
        boxes = [object_box(image) for image in pixels]
        inside = [mass_in_box(h, b) for h, b in zip(heat, boxes, strict=True) if b]
        area = [(b[2] - b[0]) * (b[3] - b[1]) / pre.size**2 for b in boxes if b]
        if inside:
            print(
                f"shoe box found in {len(inside)} of {len(paths)} pictures: heatmap mass inside "
                f"{np.mean(inside):.3f} (median {np.median(inside):.3f}) against a box area of "
                f"{np.mean(area):.3f}"
            )
        ratio = best["predict --explain"] / best["predict"]
        print(f"--explain / predict time: {ratio:.2f}")


if __name__ == "__main__":
    run_main(main)
