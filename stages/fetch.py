"""Stage fetch: bring the active profile's sources into data/raw/<name>/."""

from sneakers.errors import run_main
from sneakers.params import load_params
from sneakers.paths import RAW
from sneakers.sources import fetch_all


def main() -> None:
    params = load_params()
    fetch_all(params.data.sources(), RAW, params.seed, params.data.archive)


if __name__ == "__main__":
    run_main(main)
