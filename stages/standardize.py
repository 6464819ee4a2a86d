"""Stage standardize: every accepted image through the one preprocessing function, into shards."""

from sneakers.errors import run_main
from sneakers.files import read_csv
from sneakers.params import load_params
from sneakers.paths import MANIFEST, RAW, STANDARDIZED
from sneakers.standardize import standardize_manifest


def main() -> None:
    params = load_params()
    settings = params.standardize
    manifest = read_csv(MANIFEST)
    index = standardize_manifest(manifest, RAW, STANDARDIZED, settings, params.merge.max_pixels)
    print(f"standardize: {len(index)} images at {settings.size}px into {STANDARDIZED}")


if __name__ == "__main__":
    run_main(main)
