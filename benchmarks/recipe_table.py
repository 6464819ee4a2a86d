"""The recipe table: every finished `dvc exp run` of a repository, grouped by recipe over seeds.

Experiments are named `<recipe>-s<seed>` (e.g. head-mean-aug-s7); each is one full run on the
shared profile. A recipe's row pools its seeds: test accuracy over all its seeds' test pictures
with a Wilson 95% interval (and the range of the seeds' own), ROC AUC and ECE (means), each
held-out folder's rate at the fixed threshold (worst seed: a real folder's false positives, an
AI folder's detections) and ROC AUC of the real folders against the AI ones, the largest drop
of test accuracy under each perturbation (worst seed, points), and the train stage's seconds.

    python benchmarks/recipe_table.py [REPO] [--json ROWS.json]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from _common import fail
from scipy.stats import binomtest

ROBUSTNESS = ("jpeg_q50", "blur_sigma1", "downscale_0.5x", "resample_0.8x")


def experiments(repo: Path) -> list[dict[str, Any]]:
    """Finished experiments: name, params.yaml and the metrics files' data; a name run again
    (after a fix) counts once, as its latest run."""
    command = [sys.executable, "-m", "dvc", "exp", "show", "--all-commits", "--json"]
    shown = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True)
    out = []
    for baseline in json.loads(shown.stdout):
        for exp in baseline.get("experiments") or []:
            rev = exp["revs"][0]
            if exp.get("executor") or rev.get("error") or not rev.get("data"):
                continue  # running, queued or failed
            data = rev["data"]
            metrics = {k: v.get("data", {}) for k, v in data["metrics"].items()}
            params = data["params"]["params.yaml"]["data"]
            out.append(
                {
                    "name": exp["name"],
                    "params": params,
                    "metrics": metrics,
                    "time": data.get("timestamp") or "",
                }
            )
    latest = {e["name"]: e for e in sorted(out, key=lambda e: e["time"])}
    return list(latest.values())


def wilson(hits: int, n: int) -> tuple[float, float]:
    ci = binomtest(hits, n).proportion_ci(method="wilson")
    return ci.low, ci.high


def row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    evals = [r["metrics"]["metrics/eval.json"] for r in runs]
    tests = [e["test"] for e in evals]
    hits = sum(round(t["accuracy"] * t["n"]) for t in tests)
    n = sum(t["n"] for t in tests)
    folders: dict[str, list[float]] = defaultdict(list)
    versus: list[float] = []
    for e in evals:
        for name, source in e["cross_source"].items():
            if "false_positive_rate" in source:
                folders[f"FP {name}"].append(source["false_positive_rate"])
                versus += list(source.get("roc_auc_vs", {}).values())
            if "detection_rate" in source:
                folders[f"det {name}"].append(source["detection_rate"])
    drops = {
        c: max(
            100 * (e["robustness"]["clean"]["accuracy"] - e["robustness"][c]["accuracy"])
            for e in evals
        )
        for c in ROBUSTNESS
    }
    train = [r["metrics"]["dvclive/train/metrics.json"].get("seconds", np.nan) for r in runs]
    return {
        "seeds": len(runs),
        "test acc": hits / n,
        "ci95": wilson(hits, n),
        "seed range": (min(t["accuracy"] for t in tests), max(t["accuracy"] for t in tests)),
        "roc auc": float(np.mean([t["roc_auc"] for t in tests])),
        "ece": float(np.mean([t["ece"] for t in tests])),
        **{k: (max(v) if k.startswith("FP") else min(v)) for k, v in sorted(folders.items())},
        "auc real vs ai": float(np.mean(versus)) if versus else np.nan,
        **{f"drop {c}": d for c, d in drops.items()},
        "train s": float(np.nanmean(train)),
    }


def recipes(exps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for exp in exps:
        groups[re.sub(r"-s\d+$", "", exp["name"])].append(exp)
    return {name: row(runs) for name, runs in sorted(groups.items())}


def cell(value: Any) -> str:
    if isinstance(value, tuple):
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) <= 1 else f"{value:.1f}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", nargs="?", type=Path, default=Path("."))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    repo = args.repo.resolve()
    if not (repo / "dvc.yaml").exists() or not (repo / ".dvc").is_dir():
        fail(f"{repo} is not a DVC repository with a dvc.yaml")
    rows = recipes(experiments(repo))
    if not rows:
        fail(f"{repo} has no finished experiments: run some with `dvc exp run -n <recipe>-s<seed>`")
    columns = list(dict.fromkeys(k for r in rows.values() for k in r))
    print("| recipe | " + " | ".join(columns) + " |")
    print("| --- " * (len(columns) + 1) + "|")
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(cell(r.get(c, "")) for c in columns) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
