"""The full pipeline on the shared profile, timed stage by stage, against its budget.

Clones this repository's HEAD into a scratch folder, points data.profile at `shared` (its
relative paths made absolute, so ../shared is the one beside this repository), and runs each
stage with `dvc repro --single-item`, in pipeline order, from nothing: fetch to evaluate. Prints
each stage's seconds, the total against 20 minutes and train against 5 (the budgets of issue
26), as ratios. Nothing is asserted: a benchmark reports.

    python benchmarks/shared_repro.py [--keep] [-S key=value ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import ROOT, fail, machine

BUDGET_S = {"total": 20 * 60, "train": 5 * 60}


def stages(repo: Path) -> list[str]:
    """dvc.yaml's stages, which it lists in an order `dvc repro` can run them."""
    return list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])


def shared_params(repo: Path, sets: list[str]) -> None:
    """The shared profile, with absolute paths, and each KEY=VALUE (YAML) set."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["data"]["profile"] = "shared"
    for item in sets:
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    for source in params["data"]["profiles"]["shared"]:
        if "path" in source and not Path(source["path"]).is_absolute():
            source["path"] = str((ROOT / source["path"]).resolve())
            if not Path(source["path"]).exists():
                fail(f"{source['path']} not found: the shared data must sit beside the repository")
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the scratch clone")
    parser.add_argument(
        "-S",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a param to set, e.g. model.pool=mean",
    )
    args = parser.parse_args()
    print(machine())
    scratch = Path(tempfile.mkdtemp(prefix="sneakers-shared-"))
    repo = scratch / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    shared_params(repo, args.sets)
    seconds: dict[str, float] = {}
    for stage in stages(repo):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", "--single-item", stage],
            cwd=repo,
            capture_output=True,
            text=True,
        )
        seconds[stage] = time.perf_counter() - started
        if done.returncode:
            fail(f"stage {stage} failed in {repo}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        said = [line for line in done.stdout.splitlines() if line.startswith(f"{stage}: ")]
        print(f"{stage:12s} {seconds[stage]:7.1f} s  {said[-1] if said else ''}")
    total = sum(seconds.values())
    for name, spent in (("total", total), ("train", seconds.get("train", 0.0))):
        budget = BUDGET_S[name]
        print(f"{name}: {spent:.0f} s of a {budget} s budget: ratio {spent / budget:.2f}")
    if not args.keep:
        subprocess.run(["rm", "-rf", str(scratch)], check=True)
    else:
        print(f"kept {repo}")


if __name__ == "__main__":
    main()
