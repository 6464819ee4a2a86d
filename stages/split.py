"""Stage split: stratified, group-aware, seeded split; writes metrics/data.json."""

import json

from sneakers.errors import run_main
from sneakers.files import read_csv, write_atomic, write_json
from sneakers.params import load_params
from sneakers.paths import DATA_METRICS, INDEX, MERGE_SUMMARY, SPLIT
from sneakers.split import assign_splits, check_splits, summarize


def main() -> None:
    params = load_params()
    index = read_csv(INDEX)
    split = assign_splits(index, params.split.fractions, params.seed)
    check_splits(split, params.split.fractions)
    table = split.drop(columns=["shard", "offset", "length"]).to_csv(index=False)
    write_atomic(SPLIT, table)
    merged = json.loads(MERGE_SUMMARY.read_text())
    metrics = {"merge": merged, "split": summarize(split)}
    write_json(DATA_METRICS, metrics)
    print("split: " + ", ".join(f"{k} {v['total']}" for k, v in metrics["split"].items()))


if __name__ == "__main__":
    run_main(main)
