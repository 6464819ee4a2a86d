"""Stage split: stratified, group-aware, seeded split; writes metrics/data.json."""

import json
from pathlib import Path

from sneakers.errors import run_main
from sneakers.files import read_csv
from sneakers.params import load_params, section
from sneakers.split import assign_splits, summarize


def main() -> None:
    params = load_params()
    index = read_csv(Path("data/standardized/index.csv"))
    split = assign_splits(index, section(params, "split")["fractions"], params["seed"])
    out = Path("data/split")
    out.mkdir(parents=True, exist_ok=True)
    split.drop(columns=["shard", "offset", "length"]).to_csv(out / "split.csv", index=False)
    merged = json.loads(Path("data/merged/summary.json").read_text())
    metrics = {"merge": merged, "split": summarize(split)}
    Path("metrics").mkdir(exist_ok=True)
    Path("metrics/data.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print("split: " + ", ".join(f"{k} {v['total']}" for k, v in metrics["split"].items()))


if __name__ == "__main__":
    run_main(main)
