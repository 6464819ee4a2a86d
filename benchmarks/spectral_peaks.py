"""How strongly each source's standardized pictures carry up-sampling peaks.

    python benchmarks/spectral_peaks.py [--run DIR] [--images 64] [--resample 1.07]

For every source of a pipeline run (DIR/data/standardized, and DIR/data/simulated when the
simulate stage made fakes), the mean high-pass spectrum of up to --images pictures and its
peak ratio (`simulate.peak_ratio`: magnitude at the frequency over its neighbours') at the
periods 2, 4 and 8 of 2x up-sampling layers, moved by the standardize resample. About 1 is no
peak. The simulated fakes teach what a source's row shows; a generator the detector should
catch needs a peak where the fakes have one.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pandas as pd
from _common import fail
from PIL import Image

from sneakers.errors import run_main
from sneakers.shards import read_image
from sneakers.simulate import mean_spectrum, peak_ratio

PERIODS = (2, 4, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("."), help="a pipeline run's root")
    parser.add_argument("--images", type=int, default=64, help="per source, the first ones")
    parser.add_argument("--resample", type=float, default=1.07, help="standardize.resample")
    args = parser.parse_args()
    folders = [args.run / "data" / "standardized", args.run / "data" / "simulated"]
    if not (folders[0] / "index.csv").exists():
        fail(f"{folders[0] / 'index.csv'} not found: pass --run DIR of a `dvc repro` run")
    print(f"{'source':28} {'label':5} {'n':>4}  " + "  ".join(f"period {p}" for p in PERIODS))
    for folder in folders:
        index = pd.read_csv(folder / "index.csv") if (folder / "index.csv").exists() else None
        for (source, label), rows in [] if index is None else index.groupby(["source", "label"]):
            rows = rows.head(args.images)
            spectrum = mean_spectrum(
                [Image.open(io.BytesIO(read_image(folder, row))) for _, row in rows.iterrows()]
            )
            peaks = [peak_ratio(spectrum, 1 / (p * args.resample)) for p in PERIODS]
            print(f"{source:28} {label:5} {len(rows):>4}  " + "  ".join(f"{v:8.2f}" for v in peaks))


if __name__ == "__main__":
    run_main(main)
