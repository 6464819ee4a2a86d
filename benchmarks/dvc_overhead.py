"""Target 4: how long `dvc repro` takes when nothing changed, and what a train.* change re-runs.

    python benchmarks/dvc_overhead.py [REPO] [--runs 3] [--params-check]

REPO (default: this repository) must hold a pipeline that was already run: if `dvc status`
lists changed stages, the script stops instead of running them (clone the repository and run
`dvc repro` there first, e.g. `git clone -q . /tmp/perfclone && cd /tmp/perfclone && dvc repro`).

It times `dvc --version` (DVC's fixed start-up cost) and `dvc repro` --runs times. With
--params-check it edits `train.lr` in REPO's params.yaml, lists the stages `dvc status` and
`dvc repro --dry` would run, and restores the file byte for byte (checked with `dvc status`).

The last line is the median `dvc repro` time and its ratio to the 3 s bar (<= 1 meets it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, fail, load, machine

BAR_S = 3.0
DVC = [sys.executable, "-m", "dvc"]  # the dvc installed beside this interpreter
UP_TO_DATE = "Data and pipelines are up to date."


def dvc(repo: Path, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run dvc in repo; return wall seconds and the finished process."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    started = time.perf_counter()
    done = subprocess.run([*DVC, *args], cwd=repo, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done


def changed_stages(repo: Path) -> list[str]:
    """Stages `dvc status` reports as changed (empty when the pipeline is up to date)."""
    _, done = dvc(repo, "status", "--json")
    if done.returncode != 0:
        fail(f"`dvc status` failed in {repo}: {(done.stderr or done.stdout).strip()[:200]}")
    return sorted(json.loads(done.stdout or "{}"))


def params_check(repo: Path) -> None:
    """Edit train.lr, show which stages would run, restore params.yaml exactly."""
    params = repo / "params.yaml"
    original = params.read_bytes()
    text = original.decode()
    edited, count = re.subn(r"(?m)^(  lr: )(\S+)", lambda m: m[1] + "0.000999", text, count=1)
    if count != 1:
        fail(f"no `  lr:` line under train in {params}")
    try:
        params.write_text(edited)
        status = changed_stages(repo)
        _, dry = dvc(repo, "repro", "--dry")
        would_run = re.findall(r"Running stage '([^']+)'", dry.stdout)
    finally:
        params.write_bytes(original)
    print(f"after editing train.lr: dvc status lists {status}; dvc repro --dry runs {would_run}")
    if changed_stages(repo):
        fail(f"{params} was restored but `dvc status` still lists changes")
    expected = ["evaluate", "train"]
    verdict = "only train and evaluate" if sorted(would_run) == expected else "UNEXPECTED"
    print(f"params check: {verdict}; params.yaml restored, dvc status clean again")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("repo", nargs="?", type=Path, default=ROOT)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--params-check", action="store_true")
    args = parser.parse_args()
    repo = args.repo.resolve()
    if not (repo / "dvc.yaml").exists() or not (repo / ".dvc").is_dir():
        fail(f"{repo} is not a DVC repository with a dvc.yaml")
    if args.runs < 1:
        fail("--runs must be at least 1")
    print(machine())
    changed = changed_stages(repo)
    if changed:
        fail(
            f"stages {', '.join(changed)} changed in {repo}, so `dvc repro` would run them: run it "
            f"in a clone (git clone -q {repo} /tmp/perfclone && cd /tmp/perfclone && dvc repro) "
            "and time that"
        )
    seconds, done = dvc(repo, "--version")
    print(f"dvc --version ({done.stdout.strip()}): {seconds:.2f} s  ({load()})")
    times = []
    for i in range(args.runs):
        seconds, done = dvc(repo, "repro")
        if done.returncode != 0 or UP_TO_DATE not in done.stdout:
            fail(f"`dvc repro` did not report '{UP_TO_DATE}': {done.stdout.strip()[-300:]}")
        times.append(seconds)
        print(f"dvc repro, nothing changed, run {i + 1}: {seconds:.2f} s  ({load()})")
    if args.params_check:
        params_check(repo)
    median = statistics.median(times)
    ratio = median / BAR_S
    print(f"dvc repro (nothing changed) median {median:.2f} s / {BAR_S:.0f} s = {ratio:.2f}")


if __name__ == "__main__":
    main()
