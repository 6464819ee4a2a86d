"""The most likely params mistakes stop each stage at its start with one clear line.

Each case runs the real stage script in an empty folder holding only a broken params.yaml:
the stage must exit 1 with exactly one `error:` line naming the key and the fix, no traceback,
before it looks for any data.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

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


def real_only(params: dict[str, Any]) -> None:
    demo = params["data"]["profiles"]["demo"]
    del demo[1]  # the renders
    demo[1]["labels"]["ai-midjourney"] = "real"  # the compiled release's AI folder
    del demo[1]["generator"]  # of AI pictures it no longer has


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
    (
        "demo count",
        "fetch",
        lambda p: set_key(p, "data.profiles.demo.0.demo.count", "many"),
        "data.profiles.demo[0].demo.count: must be a whole number, not 'many'",
    ),
    ("tiny size", "standardize", lambda p: set_key(p, "standardize.size", 16), "at least 36"),
    ("bad fit", "standardize", lambda p: set_key(p, "standardize.fit", "zoom"), "standardize.fit"),
    ("merge type", "merge", lambda p: set_key(p, "merge.near_threshold", "4"), "a whole number"),
    ("unknown section", "split", lambda p: set_key(p, "trian", {}), "unknown key(s) trian"),
    ("missing seed", "fetch", lambda p: p.pop("seed"), "seed: missing"),
    ("bad optimizer", "evaluate", lambda p: set_key(p, "train.optimizer", "lion"), "lion"),
    ("fp16", "train", lambda p: set_key(p, "train.precision", "fp16"), "precision: is 'fp16'"),
    ("half", "evaluate", lambda p: set_key(p, "runtime.precision", "half"), "'half'"),
    ("crop", "train", lambda p: set_key(p, "augment.crop", -1), "augment.crop: is -1"),
    (
        "sigma",
        "train",
        lambda p: set_key(p, "augment.blur_sigma", ["a"]),
        "augment.blur_sigma[0]: must be a number",
    ),
    (
        "processes",
        "train",
        lambda p: set_key(p, "train.nproc_per_node", 3),
        "train.batch_size: 32 does not divide by train.nproc_per_node 3",
    ),
    ("huge seed", "train", lambda p: set_key(p, "seed", 2**32), "seed: is 4294967296 (use at most"),
    ("1e-3", "train", lambda p: set_key(p, "train.lr", "1e-3"), "YAML reads 1e-3 as text"),
    (
        "empty path",
        "fetch",
        lambda p: set_key(p, "data.profiles.shared.0.path", ""),
        "data.profiles.shared[0].path: is empty",
    ),
    ("one label", "fetch", real_only, "data.profiles.demo: trains on real pictures only"),
    (
        "head under torchrun",
        "train",
        lambda p: set_key(p, "train.nproc_per_node", 2),
        "train.nproc_per_node: model.train head fits a linear head in one process",
    ),
]


def run_stage(folder: Path, stage: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / f"{stage}.py")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_clear_line(done: subprocess.CompletedProcess[str], expected: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize(
    ("stage", "mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
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
    for stage in ("features", "train", "evaluate"):
        assert_one_clear_line(run_stage(tmp_path, stage), "no CUDA GPU is visible")
    params["model"].update(arch="seed_cnn")  # the train stage's other path
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert_one_clear_line(run_stage(tmp_path, "train"), "no CUDA GPU is visible")


# A stage's shape at its slowest: outputs built in a *.partial folder that the stage removes when
# interrupted (as standardize and simulate do), with forked workers busy meanwhile.
SLOW_STAGE = """
import shutil, signal, sys, time
from multiprocessing import get_context
from pathlib import Path
from sneakers.errors import run_main

def main():
    staging = Path("out.partial")
    staging.mkdir()
    try:
        # as parallel.py makes its pools: workers take SIGTERM as the kernel does, not as
        # run_main's handler (inherited through fork) would
        with get_context("fork").Pool(2, signal.signal, (signal.SIGTERM, signal.SIG_DFL)) as pool:
            pool.map_async(time.sleep, [60, 60])
            print("working", flush=True)
            time.sleep(60)
    except BaseException:
        shutil.rmtree(staging)
        raise

run_main(main)
"""


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_stage_cleans_up_and_says_so(
    tmp_path: Path, signum: signal.Signals, status: int
) -> None:
    """SIGTERM (kill, a CI timeout) ends a stage as Ctrl-C does: its cleanup runs, one line says
    so, and the exit status is 128 + the signal, as a shell reports it."""
    script = tmp_path / "stage.py"
    script.write_text(SLOW_STAGE)
    # The default handlers, as in a terminal: an earlier test may have left a signal ignored.
    # stderr goes to a file: a worker left running must not keep the test waiting on a pipe.
    with (tmp_path / "stderr").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            text=True,
            stdout=subprocess.PIPE,
            stderr=stderr,
            preexec_fn=lambda: [signal.signal(s, signal.SIG_DFL) for s in (signum, signal.SIGTERM)],
        )
        assert proc.stdout is not None and proc.stdout.readline() == "working\n"
        proc.send_signal(signum)
        proc.wait(timeout=60)
        proc.stdout.close()
    said = (tmp_path / "stderr").read_text()
    assert proc.returncode == status, said
    assert said == "interrupted: outputs were not completed; run the command again\n"
    assert not (tmp_path / "out.partial").exists()


def write_params(folder: Path, mutate: Mutation) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    mutate(params)
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


def test_a_split_without_both_labels_in_val_and_test_is_one_line(tmp_path: Path) -> None:
    """Two AI pictures cannot reach val and test: split says so, before evaluate would crash."""
    write_params(tmp_path, lambda p: None)
    rows = [
        {
            "id": f"{i:016x}",
            "label": "ai" if i < 2 else "real",
            "group": "",
            "source": "s",
            "path": f"{i}.jpg",
            "role": "train",
            "shard": "s-00000.tar",
            "offset": 0,
            "length": 1,
        }
        for i in range(20)
    ]
    (tmp_path / "data" / "standardized").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "data" / "standardized" / "index.csv", index=False)
    assert_one_clear_line(
        run_stage(tmp_path, "split"), "split: val and test get no ai picture (18 real, 2 ai;"
    )
    assert not (tmp_path / "data" / "split").exists()


def test_merge_refuses_pictures_of_one_label(tmp_path: Path) -> None:
    """A labels: mapping whose AI folder is missing leaves only real pictures: merge says so."""
    for i in range(2):
        folder = tmp_path / "pictures" / "real"
        folder.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(noise).save(folder / f"{i}.png")
    source = {"name": "mine", "path": "pictures", "labels": {"real": "real", "ai": "ai"}}
    write_params(tmp_path, lambda p: p["data"].update(profile="mine", profiles={"mine": [source]}))
    assert run_stage(tmp_path, "fetch").returncode == 0
    assert_one_clear_line(
        run_stage(tmp_path, "merge"),
        "the training pictures of profile mine hold no ai picture "
        "(2 real, 0 ai): add a role: train source of ai pictures, or see data/merged/manifest.csv",
    )
