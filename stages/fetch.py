"""Stage fetch: bring the active profile's sources into data/raw/<name>/."""

from pathlib import Path

from sneakers.errors import run_main
from sneakers.params import active_sources, load_params, section, settings_from
from sneakers.sources import ArchiveLimits, fetch_all


def main() -> None:
    params = load_params()
    limits = settings_from(
        ArchiveLimits, section(params, "data").get("archive", {}), "data.archive"
    )
    fetch_all(active_sources(params), Path("data/raw"), params["seed"], limits)


if __name__ == "__main__":
    run_main(main)
