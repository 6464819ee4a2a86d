"""Stage merge: one manifest row per file found, with status, reason and duplicate group."""

import json
from pathlib import Path

from sneakers.errors import run_main
from sneakers.merge import MergeSettings, build_manifest, summarize
from sneakers.params import active_sources, load_params, section


def main() -> None:
    params = load_params()
    settings = MergeSettings.from_params(section(params, "merge"))
    brands = section(params, "data").get("brands", [])
    manifest = build_manifest(Path("data/raw"), active_sources(params), brands, settings)
    out = Path("data/merged")
    out.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(out / "manifest.csv", index=False)
    summary = summarize(manifest)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    counts = {s: summary[s] for s in ("accepted", "rejected", "duplicate", "ignored")}
    print(f"merge: {summary['files']} files: {counts}")


if __name__ == "__main__":
    run_main(main)
