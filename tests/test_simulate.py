"""The simulate stage's fakes: train photos only, deterministic, with the up-sampling peaks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image, ImageFilter

import sneakers.simulate
from sneakers.errors import SneakersError
from sneakers.params import SimulateSettings, validate
from sneakers.preprocess import Recipe
from sneakers.shards import read_image
from sneakers.simulate import mean_spectrum, peak_ratio, simulate, train_photos

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128
RECIPE = Recipe(
    size=SIZE,
    fit="crop",
    jpeg_quality=90,
    max_pixels=10_000_000,
    resample=1.07,
    resample_jitter=0.0,
)
TINY = SimulateSettings(enabled=True, depth=2, width=8, steps=40, batch_size=4, patch=32)


def photo(seed: int) -> Image.Image:
    """A smooth photo-like picture: blurred coloured noise, no periodic structure of its own."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(2))


def make_split(raw: Path, readable: int = 8) -> pd.DataFrame:
    """A split.csv-like table; only the real train photos exist on disk, so reading any other
    row's file fails."""
    rows = []
    for i, (split, label) in enumerate(
        [("train", "real")] * readable
        + [("train", "ai"), ("val", "real"), ("test", "real"), ("eval", "real"), ("eval", "ai")]
    ):
        path = f"{label}/p{i}.jpg"
        if (split, label) == ("train", "real"):
            (raw / "src" / label).mkdir(parents=True, exist_ok=True)
            photo(i).save(raw / "src" / path, quality=95)
        role = "eval" if split == "eval" else "train"
        rows.append(
            dict(
                id=f"id{i:02d}",
                label=label,
                source="src",
                role=role,
                path=path,
                brand="",
                generator="src" if label == "ai" else "",
                group=f"g{i // 2}",
                split=split,
            )
        )
    return pd.DataFrame(rows)


def test_train_photos_are_the_real_train_rows_only(tmp_path):
    split = make_split(tmp_path)
    chosen = train_photos(split)
    assert set(chosen["split"]) == {"train"} and set(chosen["label"]) == {"real"}
    assert len(chosen) == 8


def test_stage_reads_only_real_train_photos_and_keeps_their_groups(tmp_path):
    split = make_split(tmp_path / "raw")  # val, test, eval and AI files do not exist
    made = simulate(split, tmp_path / "raw", tmp_path / "out", TINY, RECIPE, seed=1)
    index, summary = made.index, made.summary
    assert summary["images"] == 8 and len(index) == 8
    parents = split.set_index("id").loc[index["parent"]]
    assert set(parents["split"]) == {"train"} and set(parents["label"]) == {"real"}
    assert list(index["group"]) == list(parents["group"])  # a pair never spans two splits
    assert set(index["label"]) == {"ai"} and set(index["role"]) == {"train"}
    assert not (tmp_path / "out.partial").exists()


def test_an_interrupt_leaves_no_partial_folder(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # what Ctrl-C, or SIGTERM through run_main, raises mid-stage

    monkeypatch.setattr(sneakers.simulate, "reconstruct", interrupted)
    split = make_split(tmp_path / "raw")
    with pytest.raises(KeyboardInterrupt):
        simulate(split, tmp_path / "raw", tmp_path / "out", TINY, RECIPE, seed=1)
    assert not (tmp_path / "out.partial").exists() and not (tmp_path / "out").exists()


def test_fraction_picks_a_share_of_the_photos(tmp_path):
    split = make_split(tmp_path / "raw")
    half = TINY.model_copy(update={"fraction": 0.5})
    index = simulate(split, tmp_path / "raw", tmp_path / "out", half, RECIPE, seed=1).index
    assert len(index) == 4 and index["parent"].is_unique


def test_same_seed_same_fakes_other_seed_other_fakes(tmp_path):
    split = make_split(tmp_path / "raw")
    runs = [
        simulate(split, tmp_path / "raw", tmp_path / f"out{k}", TINY, RECIPE, seed).index
        for k, seed in enumerate((3, 3, 4))
    ]
    shard = "shard-00000.tar"
    first, again, other = ((tmp_path / f"out{k}" / shard).read_bytes() for k in range(3))
    assert first == again and runs[0].equals(runs[1])
    assert first != other


def test_disabled_writes_an_empty_index_and_reads_nothing(tmp_path):
    split = make_split(tmp_path / "missing-raw")
    made = simulate(split, tmp_path / "nowhere", tmp_path / "out", SimulateSettings(), RECIPE, 1)
    index, summary = made.index, made.summary
    assert made.fake_spectrum is None
    assert index.empty and summary == {"enabled": False, "images": 0, "seconds": summary["seconds"]}
    assert pd.read_csv(tmp_path / "out" / "index.csv").empty


def test_fakes_carry_the_periodic_spectral_peak(tmp_path):
    """Averaged over the fakes, the spectrum peaks at the period-4 frequency (two 2x transposed
    convolutions, moved by the recipe's 1.07 resample); the photos, standardized alike, do not.

    Only transposed convolutions leave sharp peaks: nearest and bilinear up-sampling filters
    have a zero at the frequency where the copies of the content's spectrum land, so their
    traces are broad bands that a peak test does not resolve (measured: 1.2-1.4 here).
    """
    split = make_split(tmp_path / "raw", readable=12)
    settings = TINY.model_copy(update={"steps": 150})
    made = simulate(split, tmp_path / "raw", tmp_path / "out", settings, RECIPE, seed=0)
    index = made.index
    fakes = [Image.open(io.BytesIO(read_image(tmp_path / "out", r))) for _, r in index.iterrows()]
    photos = [
        Image.open(io.BytesIO(RECIPE.apply((tmp_path / "raw" / "src" / p).read_bytes())))
        for p in index["path"]
    ]
    cycles = 1 / (4 * RECIPE.resample)
    assert peak_ratio(mean_spectrum(fakes), cycles) > 2 * peak_ratio(mean_spectrum(photos), cycles)
    peak = made.summary["peak_ratio"]["period_4"]  # what the stage reports, on its own sample
    assert peak["fakes"] > 2 * peak["photos"]


def params_with(**simulate: object) -> dict:
    """The repository's params.yaml with some simulate keys changed."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["simulate"].update(simulate)
    return params


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"patch": 20, "depth": 3}, r"^simulate\.patch: 20 is not a multiple of 2\*\*depth \(8\)"),
        ({"scales": [0.5]}, r"^simulate\.scales\[0\]: is 0\.5 \(use at least 1"),
        ({"scales": [1, 2, 0.9]}, r"^simulate\.scales\[2\]: is 0\.9 \(use at least 1"),
    ],
)
def test_settings_are_checked(changes: dict, message: str) -> None:
    """simulate's own rules: crops the autoencoder can halve depth times; fakes made at least
    at standardize.size (a scale below 1 would make them smaller than the photos)."""
    with pytest.raises(SneakersError, match=message):
        validate(params_with(**changes))
    assert validate(params_with(patch=24, depth=3, scales=[1, 1.5])).simulate.patch == 24
