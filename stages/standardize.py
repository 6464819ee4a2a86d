"""Stage standardize: every accepted image through the one preprocessing function, into shards."""

from pathlib import Path

from sneakers.errors import run_main
from sneakers.files import read_csv
from sneakers.params import load_params
from sneakers.standardize import standardize_manifest


def main() -> None:
    params = load_params()
    settings = params.standardize
    manifest = read_csv(Path("data/merged/manifest.csv"))
    index = standardize_manifest(
        manifest, Path("data/raw"), Path("data/standardized"), settings, params.merge.max_pixels
    )
    print(f"standardize: {len(index)} images at {settings.size}px into data/standardized")


if __name__ == "__main__":
    run_main(main)
