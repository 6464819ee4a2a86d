"""The most likely params mistakes stop each stage at its start with one clear line.

Each case runs the real stage script in an empty folder holding only a broken params.yaml:
the stage must exit 1 with exactly one `error:` line naming the key and the fix, no traceback,
before it looks for any data.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def set_key(params: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    here: Any = params
    for key in parents:
        here = here[int(key)] if key.isdigit() else here[key]
    here[last] = value


def drop_version(params: dict[str, Any]) -> None:
    params["data"]["profile"] = "kaggle"
    params["data"]["profiles"]["kaggle"][0]["kaggle"] = (
        "die9origephit/nike-adidas-and-converse-imaged"
    )


def duplicate_names(params: dict[str, Any]) -> None:
    demo = params["data"]["profiles"]["demo"]
    demo[1]["name"] = demo[0]["name"]


Mutation = Callable[[dict[str, Any]], None]
CASES: list[tuple[str, str, Mutation, str]] = [
    ("typo in a key", "train", lambda p: set_key(p, "train.epoch", 5), "unknown key(s) epoch"),
    ("wrong type", "train", lambda p: set_key(p, "train.lr", "fast"), "train.lr: must be a number"),
    ("unknown arch", "train", lambda p: set_key(p, "model.arch", "resnet"), "is 'resnet'"),
    ("fractions", "split", lambda p: set_key(p, "split.fractions.val", 0.3), "sum to 1.1"),
    ("unknown profile", "fetch", lambda p: set_key(p, "data.profile", "kagle"), "profile: 'kagle'"),
    ("no version", "fetch", drop_version, "owner/dataset/versions/N"),
    ("empty profile", "fetch", lambda p: set_key(p, "data.profiles.demo", []), "has 0 entries"),
    ("duplicate names", "fetch", duplicate_names, "duplicate source name"),
    ("demo count", "fetch", lambda p: set_key(p, "data.profiles.demo.0.demo.count", "many"),
     "data.profiles.demo[0].demo.count: must be a whole number, not 'many'"),
    ("tiny size", "standardize", lambda p: set_key(p, "standardize.size", 16), "at least 36"),
    ("bad fit", "standardize", lambda p: set_key(p, "standardize.fit", "zoom"), "standardize.fit"),
    ("merge type", "merge", lambda p: set_key(p, "merge.near_threshold", "4"), "a whole number"),
    ("unknown section", "split", lambda p: set_key(p, "trian", {}), "unknown key(s) trian"),
    ("missing seed", "fetch", lambda p: p.pop("seed"), "seed: missing"),
    ("bad optimizer", "evaluate", lambda p: set_key(p, "train.optimizer", "lion"), "lion"),
    ("fp16", "train", lambda p: set_key(p, "train.precision", "fp16"), "precision: is 'fp16'"),
    ("half", "evaluate", lambda p: set_key(p, "runtime.precision", "half"), "'half'"),
    ("crop", "train", lambda p: set_key(p, "augment.crop", -1), "augment.crop: is -1"),
    ("sigma", "train", lambda p: set_key(p, "augment.blur_sigma", ["a"]),
     "augment.blur_sigma[0]: must be a number"),
]  # fmt: skip


def run_stage(folder: Path, stage: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{stage}.py")],
        cwd=folder, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def assert_one_clear_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize(("stage", "mutate", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_broken_params_stop_the_stage_with_one_line(
    tmp_path: Path, stage: str, mutate: Mutation, expected: str
) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    mutate(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert_one_clear_line(run_stage(tmp_path, stage), expected)


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("train: [unclosed\n")
    assert_one_clear_line(run_stage(tmp_path, "split"), "params.yaml is not valid YAML")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_a_gpu_is_one_line(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["runtime"]["device"] = "cuda"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("train", "evaluate"):
        assert_one_clear_line(run_stage(tmp_path, stage), "no CUDA GPU is visible")
