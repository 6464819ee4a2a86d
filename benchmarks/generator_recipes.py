"""Head recipes for many generators, over several seeds, from the feature cache.

Reads an experiment workspace on the shared profile after one `dvc repro` (data/standardized,
data/simulated, data/features, params.yaml). For each seed: the split drawn as the split stage
draws it, the features of its pictures and views through the store (only a new seed's views are
computed, and kept), then for each recipe (model.pool x train.head_c x train.balance x
train.threshold, and MidJourney alone) the transfer stage's fits: the head on every training
generator, without each and with each alone. A row pools its seeds: in-distribution test
accuracy with a Wilson 95% interval, each held-out folder's rate (worst seed for real folders'
false positives, mean detections for AI folders), ROC AUC of each held-out generator against
the real test pictures and each generator's leave-one-out detection and AUC (means over seeds).

    python benchmarks/generator_recipes.py REPO [--seeds 42 7 2026] [--json ROWS.json]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from _common import fail
from scipy.stats import binomtest
from sklearn.exceptions import ConvergenceWarning

from sneakers import features
from sneakers.data import add_simulated, load_splits
from sneakers.features import fill, trunk_and_store
from sneakers.files import read_csv
from sneakers.params import load_params
from sneakers.split import assign_splits
from sneakers.transfer import REAL, leave_one_out


def memoized_fits() -> None:
    """Fit each head once: recipes that differ only in the threshold rule share their fits."""
    fit, memo = features.fit_head, {}

    def fit_once(model, x, y, c, seed, weights):
        key = (hashlib.sha256(x.numpy().tobytes() + weights.tobytes()).hexdigest(), c, seed)
        if key not in memo:
            fit(model, x, y, c, seed, weights)
            memo[key] = {k: v.clone() for k, v in model.net._fc.state_dict().items()}
        model.net._fc.load_state_dict(memo[key])

    features.fit_head = fit_once  # what features.fit_head_on calls


def wilson(correct: int, n: int) -> str:
    ci = binomtest(correct, n).proportion_ci(method="wilson")
    return f"[{ci.low:.3f}, {ci.high:.3f}]"


def seed_run(
    repo: Path, seed: int, recipes: list[dict[str, Any]], target_fpr: float
) -> list[dict[str, Any]]:
    """Every recipe's transfer metrics for one seed's split."""
    params = load_params(repo / "params.yaml")
    runtime = params.runtime.model_copy(update={"device": "cpu"})
    size = params.standardize.size
    index = read_csv(repo / "data/standardized/index.csv")
    with tempfile.TemporaryDirectory() as tmp:
        split_csv = Path(tmp) / "split.csv"
        split = assign_splits(index, params.split.fractions, seed)
        split.drop(columns=["shard", "offset", "length"]).to_csv(split_csv, index=False)
        splits = load_splits(repo / "data/standardized", split_csv)
    splits["train"] = add_simulated(splits["train"], repo / "data/simulated")
    made = sorted(set(splits["train"].rows["generator"].dropna()) - {""})
    out = []
    for pool in dict.fromkeys(r["pool"] for r in recipes):  # the store holds every pooling
        model_settings = params.model.model_copy(update={"pool": pool})
        folder = repo / "data/features"
        model, store, device, precision = trunk_and_store(model_settings, runtime, size, folder)
        embedded = fill(model, store, splits, {}, params.augment, seed, device, precision, 64)
        store.save()
        print(f"seed {seed}, {pool}: {store.read} features read, {store.computed} computed")
        for recipe in (r for r in recipes if r["pool"] == pool):
            generators = recipe["generators"] or made
            keys = ("balance", "threshold", "head_c")
            update = {k: recipe[k] for k in keys} | {"target_fpr": target_fpr}
            settings = params.train.model_copy(update=update)
            result = leave_one_out(model, splits, embedded, generators, settings, seed)
            out.append({**recipe, "seed": seed, **result})
        print(f"  {pool}: {len(out)} recipes done", flush=True)
    return out


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One recipe's row over its seeds."""
    first = runs[0]
    trained, correct, n = first["generators"], 0, 0
    for run in runs:
        rates, counts = run["matrix"]["all"], run["n"]
        for col in [c for c in [*trained, REAL + "test"] if counts[c]]:
            hit = rates[col] if col != REAL + "test" else 1 - rates[col]
            correct += round(hit * counts[col])
            n += counts[col]
    row: dict[str, Any] = {"recipe": first["name"], "seeds": len(runs)}
    row |= {"test acc": f"{correct / n:.3f}", "ci95": wilson(correct, n)}
    columns = [c for c in first["matrix"]["all"] if c not in trained and c != REAL + "test"]
    for col in columns:
        rates = [run["matrix"]["all"][col] for run in runs]
        if col.startswith(REAL):
            row[f"FP {col.removeprefix(REAL)}"] = f"{max(rates):.3f}"
        else:
            row[f"det {col}"] = f"{np.mean(rates):.3f}"
            row[f"auc {col}"] = f"{np.mean([run['roc_auc']['all'][col] for run in runs]):.3f}"
    for g in first["leave_one_out"]:
        row[f"loo det {g}"] = (
            f"{np.mean([run['leave_one_out'][g]['detection_rate'] for run in runs]):.3f}"
        )
        row[f"loo auc {g}"] = f"{np.mean([run['leave_one_out'][g]['roc_auc'] for run in runs]):.3f}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 2026])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--pools", nargs="+", default=["blocks", "meanmax"])
    parser.add_argument("--c", type=float, nargs="+", default=[0.1, 1.0], help="train.head_c")
    parser.add_argument("--balances", nargs="+", default=["label", "generator"])
    parser.add_argument("--thresholds", nargs="+", default=["val", "val_generator", "val_fpr"])
    parser.add_argument("--target-fpr", type=float, default=0.01, help="for val_fpr")
    parser.add_argument("--alone", default="midjourney", help="the one-generator baseline row")
    args = parser.parse_args()
    if not (args.repo / "data/features").is_dir():
        fail(f"{args.repo}/data/features is missing: run `dvc repro` there on the shared profile")
    recipes = [
        {
            "name": f"{args.alone} only, blocks, C 0.1, label balance, threshold val",
            "generators": [args.alone],
            "pool": "blocks",
            "head_c": 0.1,
            "balance": "label",
            "threshold": "val",
        }
    ]
    for pool, c, balance, threshold in itertools.product(
        args.pools, args.c, args.balances, args.thresholds
    ):
        name = f"all generators, {pool}, C {c:g}, {balance} balance, threshold {threshold}"
        recipes.append(
            {
                "name": name,
                "generators": None,
                "pool": pool,
                "head_c": c,
                "balance": balance,
                "threshold": threshold,
            }
        )
    memoized_fits()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    started = time.perf_counter()
    runs = [r for seed in args.seeds for r in seed_run(args.repo, seed, recipes, args.target_fpr)]
    rows = [pooled([r for r in runs if r["name"] == recipe["name"]]) for recipe in recipes]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    print(f"{len(runs)} recipe runs in {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
