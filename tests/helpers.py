"""Plain helpers the tests import (`from helpers import ...`) and the fixtures of conftest.py
hand out: tiny synthetic pictures, synthetic splits with a small trained model, model files,
and throwaway git + DVC repositories for the end-to-end tests.

The pictures are 9x8 grids of grey levels where horizontally adjacent cells always differ by a
large step, so their perceptual hashes are decisive: re-encoding or resizing one moves its
hashes by at most 2 bits, while two different seeds stay about 20 bits apart. That makes the
near-duplicate tests deterministic instead of depending on lucky seeds.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from sneakers.logs import MemoryLog
from sneakers.params import MergeSettings

if TYPE_CHECKING:  # torch and the training code load only when a test trains
    import torch

    from sneakers.artifact import Artifact
    from sneakers.artifact import Trained as TrainedRecord
    from sneakers.data import SplitData
    from sneakers.params import TrainSettings
    from sneakers.preprocess import Recipe

GRID = (9, 8)  # columns, rows: the grid dhash samples, so every cell edge is one hash bit


def make_picture(seed: int, scale: int = 8) -> Image.Image:
    """A (9*scale) x (8*scale) RGB picture whose hashes are stable under re-encoding."""
    rng = np.random.default_rng(seed)
    levels = np.empty((GRID[1], GRID[0]))
    levels[:, 0] = rng.integers(0, 3, GRID[1])
    for col in range(1, GRID[0]):
        levels[:, col] = (levels[:, col - 1] + rng.integers(1, 3, GRID[1])) % 3
    tint = rng.integers(-30, 31, 3)
    pixels = np.clip((40 + 85 * levels)[..., None] + tint, 0, 255).astype(np.uint8)
    size = (GRID[0] * scale, GRID[1] * scale)
    return Image.fromarray(pixels).resize(size, Image.Resampling.NEAREST)


def encode_image(im: Image.Image, fmt: str = "JPEG", **options: Any) -> bytes:
    """Encode a picture in memory, the way a camera or an editor would save it."""
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def write_bytes(path: Path, data: bytes) -> Path:
    """Write a file, creating its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- synthetic splits and a small trained model (train, inference, evaluate, plots tests) ---

SYNTH_SIZE = 40  # about the smallest size the unpadded conv trunk accepts (36)
SYNTH_PER_SPLIT = 48
# Chosen so that training is quick, learns, and the best validation loss is not the last epoch.
# fp32 unless a test asks: `auto` would mean bf16 on some CPUs and fp32 on others.
SYNTH_TRAIN = {
    "arch": "seed_cnn",
    "seed": 1,
    "epochs": 4,
    "lr": 0.01,
    "batch_size": 8,
    "precision": "fp32",
}


def model_like_trained(arch: str, size: int) -> torch.nn.Module:
    """A model with seeded weights and BatchNorm running statistics that are not trivial, as
    training leaves them (fresh ones are 0 and 1, which would hide a wrong eval mode)."""
    import torch

    from sneakers.model import build_model

    torch.manual_seed(0)
    model = build_model(arch, size)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model


def synthetic_split(name: str, n: int, size: int, seed: int) -> SplitData:
    """Dark noise pictures; the ai ones carry a bright square, so any working CNN separates them.

    Rows carry the index columns evaluate and plots read (id, label, source, brand, generator,
    path); every third brand is missing, as for sources without brand names.
    """
    import torch

    from sneakers.data import CLASS_NAMES, SplitData

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    images = rng.integers(0, 90, (n, 3, size, size), dtype=np.uint8)
    side = size // 3
    for i in np.flatnonzero(labels):
        y, x = rng.integers(0, size - side, 2)
        images[i, :, y : y + side, x : x + side] = 240
    rows = pd.DataFrame(
        {
            "id": [f"{name}-{i:03d}" for i in range(n)],
            "label": [CLASS_NAMES[c] for c in labels],
            "source": ["gen-a" if i % 2 else "gen-b" for i in range(n)],
            "role": "train",
            "brand": [None if i % 3 == 0 else "nike" for i in range(n)],
            "generator": [
                ("gen-a" if i % 2 else "gen-b") if c else None for i, c in enumerate(labels)
            ],
            "path": [f"{name}/{i:03d}.jpg" for i in range(n)],
        }
    )
    return SplitData(torch.from_numpy(images), torch.from_numpy(labels).long(), rows)


def in_shards(splits: dict[str, SplitData], out_dir: Path) -> dict[str, SplitData]:
    """The splits written as standardize writes them (JPEG q95 in tar shards of 16) and read
    back streamed: images still in the shards, labels and rows as they were."""
    from sneakers.data import ShardImages, SplitData
    from sneakers.shards import ShardWriter, tar_member

    out = {}
    for name, data in splits.items():
        shard_dir = out_dir / name
        shard_dir.mkdir(parents=True)
        writer = ShardWriter(shard_dir, shard_size=16)
        for k, image in enumerate(data.images):
            jpeg = encode_image(Image.fromarray(image.permute(1, 2, 0).numpy()), quality=95)
            meta = {
                "id": f"{name}-{k}",
                "label": "",
                "source": "",
                "role": "",
                "path": "",
                "brand": "",
                "generator": "",
                "group": "",
            }
            writer.add(tar_member(f"{k}.jpg", jpeg), [meta], [len(jpeg)])
        writer.close()
        out[name] = SplitData(ShardImages.of(shard_dir, writer.index()), data.labels, data.rows)
    return out


@dataclass(frozen=True)
class Trained:
    """One training run on the synthetic splits: inputs, artifact and what was logged."""

    splits: dict[str, SplitData]
    settings: TrainSettings
    artifact: Artifact
    log: MemoryLog

    def network(self) -> torch.nn.Module:
        """The trained network on the CPU, in eval mode."""
        import torch

        return self.artifact.network(torch.device("cpu"))


def synthetic_splits() -> dict[str, SplitData]:
    """Fresh train/val/test splits (never shared, so a test may not spoil another's data)."""
    return {
        name: synthetic_split(name, SYNTH_PER_SPLIT, SYNTH_SIZE, seed)
        for seed, name in enumerate(("train", "val", "test"))
    }


def synthetic_recipe(size: int = SYNTH_SIZE) -> Recipe:
    """The default standardize settings at a synthetic size, as a model file records them."""
    from sneakers.params import StandardizeSettings
    from sneakers.preprocess import Recipe

    return Recipe(**StandardizeSettings(size=size).picture_settings(), max_pixels=50_000_000)


def train_synthetic(**overrides: Any) -> Trained:
    """Train on fresh synthetic splits on the CPU with SYNTH_TRAIN, as overridden; `input`,
    `part` and `pool` go to the model settings and `eval_precision` to the runtime ones, the
    rest to train's."""
    from sneakers.artifact import Artifact
    from sneakers.params import ModelSettings, RuntimeSettings, TrainSettings
    from sneakers.train import train

    config = {**SYNTH_TRAIN, **overrides}
    part, pool = config.pop("part", "all"), config.pop("pool", "mean")
    model = ModelSettings(
        arch=config.pop("arch"), input=config.pop("input", "rgb"), train=part, pool=pool
    )
    runtime = RuntimeSettings(device="cpu", precision=config.pop("eval_precision", "fp32"))
    seed = config.pop("seed")
    settings = TrainSettings(num_workers=0, **config)
    splits, log = synthetic_splits(), MemoryLog()
    fitted = train(splits, model, settings, runtime, seed, log)
    artifact = Artifact.of(fitted, model, synthetic_recipe(), "synthetic")
    return Trained(splits, settings, artifact, log)


@functools.cache
def trained_in(precision: str) -> Trained:
    """The shared synthetic run, trained and validated in one precision (fp32 or bf16)."""
    return train_synthetic(precision=precision, eval_precision=precision)


# --- model files (artifact, cli, predict, evaluate tests) ---

MIN_SIZE = MergeSettings().min_size  # what a model file of default-merged data records


def trained_record() -> TrainedRecord:
    """The training record of make_artifact's model files (a function: it needs torch)."""
    from sneakers.artifact import Trained

    return Trained(
        epochs=1,
        best_epoch=1,
        best_val_loss=0.25,
        seed=0,
        device="cpu",
        precision="fp32",
        eval_precision="fp32",
    )


def make_artifact(
    arch: str = "gap_cnn",
    size: int = SYNTH_SIZE,
    threshold: float = 0.42,
    recipe: Recipe | None = None,
    model: torch.nn.Module | None = None,
    profile: str = "test",
    min_size: int | None = MIN_SIZE,
) -> Artifact:
    """An Artifact as the train stage makes one: seeded weights with BatchNorm statistics that
    are not trivial (or model's), the default standardize settings at size (or recipe), and
    merge's default min_size (or min_size)."""
    from sneakers.artifact import Artifact, Fitted
    from sneakers.params import ModelSettings

    recipe = recipe or synthetic_recipe(size)
    model = model or model_like_trained(arch, recipe.size)
    fitted = Fitted(model.state_dict(), recipe.size, threshold, trained_record())
    return Artifact.of(fitted, ModelSettings(arch=arch), recipe, profile, min_size)


def stored(model_file: Artifact, drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    """What artifact.save writes (the card's fields and state_dict), with keys changed or
    dropped: for files that break the schema."""
    content = {**model_file.card.model_dump(), "state_dict": model_file.state_dict, **changes}
    return {k: v for k, v in content.items() if k not in drop}


def in_float64(patch: Callable[[Any, str, Any], None]) -> None:
    """Build the model and feed it in float64 (patch: setattr or monkeypatch.setattr), where
    rounding is ~1e-16, so that two ways of training compare to the algorithm's differences."""
    import sneakers.inference
    import sneakers.train

    build, to_input = sneakers.train.build_model, sneakers.inference.to_input
    patch(sneakers.train, "build_model", lambda *a, **k: build(*a, **k).double())
    wide = lambda images, device: to_input(images, device).double()  # noqa: E731
    patch(sneakers.train, "to_input", wide)
    patch(sneakers.inference, "to_input", wide)


# --- throwaway git + DVC repositories (end-to-end tests) ---

ROOT = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]  # the dvc installed beside this interpreter
TINY_DEMO = [
    {
        "name": "demo-photos",
        "demo": {"kind": "photos", "count": 12, "size": 240},
        "label": "real",
        "brand": "folder",
    },
    {"name": "demo-renders", "demo": {"kind": "renders", "count": 10, "size": 256}, "label": "ai"},
    {
        "name": "demo-compiled",
        "demo": {
            "kind": "compiled",
            "real": 4,
            "ai": 4,
            "extra_real": 2,
            "extra_ai": 2,
            "photo_size": 240,
            "render_size": 256,
        },
        "labels": {"real": "real", "ai-midjourney": "ai"},
        "brand": "prefix",
    },
    # Held out: four new photos; five renders of which 7-9 are copies of demo-renders' own.
    {
        "name": "demo-other-shop",
        "demo": {"kind": "photos", "count": 4, "size": 320, "start": 50000},
        "label": "real",
        "role": "eval",
    },
    {
        "name": "demo-other-generator",
        "demo": {"kind": "renders", "count": 5, "size": 256, "start": 7},
        "label": "ai",
        "role": "eval",
    },
]
GIT_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def tiny_pipeline_params() -> dict[str, Any]:
    """The real params.yaml shrunk: a tiny demo profile, 64 px, one worker, two CPU epochs of
    the study's CNN (test_pipeline_head.py runs the pretrained backbone's head)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update(arch="seed_cnn", train="all", pool="mean")
    params["data"]["profile"] = "demo"
    params["data"]["profiles"]["demo"] = TINY_DEMO
    params["merge"]["workers"] = 1
    params["standardize"].update(workers=1, size=64)
    params["train"].update(epochs=2, batch_size=8, num_workers=1)
    params["runtime"].update(device="cpu")
    params["simulate"].update(width=8, steps=20, batch_size=4, patch=32)  # still off
    return params


@dataclass(frozen=True)
class Sandbox:
    """A throwaway git + DVC repository holding this project's pipeline."""

    path: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command here; with check, fail the test with its output when it fails."""
        env = {**os.environ, **GIT_ENV}
        done = subprocess.run(
            args, cwd=self.path, env=env, capture_output=True, text=True, timeout=600
        )
        if check:
            assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(*DVC, *args, check=check)

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "--allow-empty", "-m", message)


def make_sandbox(path: Path, params: dict[str, Any]) -> Sandbox:
    """Copy dvc.yaml, stages/ and src/ (src/ for the dependency hashes: the installed package
    runs), write params, then git init, dvc init and commit, as a user's clone would be."""
    if shutil.which("git") is None:
        pytest.fail("git must be on PATH for the end-to-end tests")
    shutil.copy(ROOT / "dvc.yaml", path / "dvc.yaml")
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "stages", path / "stages", ignore=junk)
    shutil.copytree(ROOT / "src", path / "src", ignore=junk)
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sandbox = Sandbox(path)
    sandbox.run("git", "init", "-q")
    sandbox.dvc("init", "-q")
    sandbox.commit("pipeline")
    return sandbox


STAGES = {
    "fetch",
    "merge",
    "standardize",
    "split",
    "audit",
    "simulate",
    "features",
    "train",
    "evaluate",
    "transfer",
}


def stages_run(done: subprocess.CompletedProcess[str]) -> set[str]:
    """The stages a dvc call ran, by its output."""
    return set(re.findall(r"Running stage '([^']+)'", done.stdout))


def assert_ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"{' '.join(done.args)} failed:\n{done.stdout}\n{done.stderr}"
