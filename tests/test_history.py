"""The history audit: its DCT coefficients are the file's own, and it tells an aligned double
JPEG compression (q95 -> q90) from a single-quality one (q90 -> q90) under identical headers,
unless standardizing resamples every picture (the default)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.fft
import yaml
from PIL import Image, ImageFilter

from sneakers.audit import (
    VALUES,
    ZIGZAG_AC,
    grid_break,
    history_audit,
    history_features,
    luminance,
)
from sneakers.errors import SneakersError
from sneakers.jpeg import quality_table
from sneakers.merge import build_manifest
from sneakers.params import AuditSettings, MergeSettings, PathSource, StandardizeSettings, validate
from sneakers.probe import probe_bytes
from sneakers.shards import read_image
from sneakers.split import assign_splits
from sneakers.standardize import standardize_manifest

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64


def photo(seed: int, size: int = SIZE) -> Image.Image:
    """A camera-like picture: smooth random shapes and a little sensor noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    im = Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)
    im = im.filter(ImageFilter.GaussianBlur(1.5))
    noisy = np.asarray(im, dtype=np.float64) + rng.normal(0, 4, (size, size, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def jpeg(im: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality, subsampling="4:2:0")
    return out.getvalue()


def dequantized(data: bytes, table: np.ndarray) -> np.ndarray:
    """The luminance DCT coefficients of a decoded file divided by a table, unrounded."""
    y, _ = luminance(data)
    blocks = (y - 128.0).reshape(SIZE // 8, 8, SIZE // 8, 8).swapaxes(1, 2)
    return scipy.fft.dctn(blocks, type=2, axes=(2, 3), norm="ortho") / table


def test_coefficients_are_the_files_own_integers() -> None:
    """Divided by the file's own table, the decoded picture's DCT lands on integers (up to the
    decoder's rounding); by another quality's table it does not: the table's order, the
    transform's scaling and the luminance plane are all right."""
    data = jpeg(photo(1), 90)
    _, table = luminance(data)
    assert np.array_equal(table, quality_table(90))
    own = dequantized(data, table)
    stored = np.abs(np.rint(own)) >= 1  # the coefficients the encoder kept
    assert stored.sum() > 200

    def off(table: np.ndarray) -> float:
        x = dequantized(data, table)[stored]
        return float(np.abs(x - np.rint(x)).mean())

    assert off(table) < 0.1  # the file's own integers, up to the decoder's rounding
    assert off(table.T) > 0.15  # the table in the wrong order
    assert off(quality_table(80)) > 0.15  # another quality's table


def test_features_are_shares_of_blocks_per_frequency() -> None:
    features = history_features(jpeg(photo(2), 90), 90)
    assert features.shape == (len(ZIGZAG_AC) * len(VALUES),)
    per_frequency = features.reshape(len(ZIGZAG_AC), len(VALUES)).sum(axis=1)
    # Large low-frequency values fall outside -12..12; the highest frequencies are all inside.
    assert ((per_frequency > 0) & (per_frequency <= 1 + 1e-12)).all()
    assert per_frequency[-1] == pytest.approx(1)
    png = io.BytesIO()
    photo(2).save(png, "PNG")  # no table of its own: the given quality's is used
    assert history_features(png.getvalue(), 90).shape == features.shape


def test_grid_break_keeps_size_and_quality_and_moves_the_grid() -> None:
    data = jpeg(photo(3), 90)
    broken = grid_break(data, 1.07, 90)
    facts = probe_bytes(broken, min_size=1, max_pixels=2**40)
    assert (facts["width"], facts["height"], facts["jpeg_quality"]) == (SIZE, SIZE, 90)
    assert Image.open(io.BytesIO(broken)).size == (SIZE, SIZE)


def with_control_scale(scale: float) -> dict:
    """The repository's params.yaml with another audit.control_scale."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["audit"]["control_scale"] = scale
    return params


def test_control_scale_must_break_the_grid() -> None:
    """1 would keep the 8x8 grid the control must break; it is refused, as are scales past 2."""
    assert validate(with_control_scale(1.25)).audit.control_scale == 1.25
    assert validate(with_control_scale(2)).audit.control_scale == 2
    with pytest.raises(SneakersError, match=r"^audit\.control_scale: is 1 \(use more than 1"):
        validate(with_control_scale(1))
    with pytest.raises(SneakersError, match=r"^audit\.control_scale: is 2\.5 \(use at most 2"):
        validate(with_control_scale(2.5))


def synthetic_histories(tmp_path: Path, fetch_report: Callable[..., Path], n: int = 120) -> Path:
    """Raw files of two classes with the same content statistics: real saved q95, AI q90 (what
    standardizing at q90 turns into q95 -> q90 against q90 -> q90)."""
    raw = tmp_path / "raw" / "compiled"
    for i in range(n):
        label = "ai" if i % 2 else "real"
        (raw / label).mkdir(parents=True, exist_ok=True)
        (raw / label / f"{i}.jpg").write_bytes(jpeg(photo(100 + i), 90 if label == "ai" else 95))
    fetch_report(tmp_path / "raw", [{"name": "compiled"}])
    return tmp_path / "raw"


def audit_after(raw: Path, out: Path, settings: StandardizeSettings) -> dict:
    """Standardize the raw folder with settings and run the history audit on a seeded split."""
    source = PathSource(name="compiled", path="x", labels={"ai": "ai", "real": "real"})
    manifest = build_manifest(raw, [source], [], MergeSettings(workers=1))
    index = standardize_manifest(manifest, raw, out, settings, MergeSettings().max_pixels)
    headers = {
        (f["width"], f["jpeg_quality"], f["icc"], f["subsampling"])
        for f in (
            probe_bytes(read_image(out, r), min_size=1, max_pixels=2**40)
            for _, r in index.iterrows()
        )
    }
    assert headers == {(SIZE, 90, False, "4:2:0")}  # nothing in the headers tells them apart
    split = assign_splits(index, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    result = history_audit(manifest, split, index, (raw, out), AuditSettings(), 90, 0)
    assert result["gap"] == pytest.approx(
        result["standardized"]["balanced_accuracy"] - result["control"]["balanced_accuracy"]
    )
    assert result["standardized"]["n_test"] == result["control"]["n_test"] > 0
    return result


def test_history_audit_tells_q95_then_q90_from_q90_then_q90_without_a_resample(
    tmp_path: Path, fetch_report: Callable[..., Path]
) -> None:
    """Equal headers after standardizing at size with no resample, different histories: the
    audit sees it on the standardized files, and less after the grid-breaking control."""
    raw = synthetic_histories(tmp_path, fetch_report)
    settings = StandardizeSettings(size=SIZE, resample=1.0)
    result = audit_after(raw, tmp_path / "standardized", settings)
    assert result["raw"]["balanced_accuracy"] >= 0.9  # q95 against q90 files
    assert result["standardized"]["balanced_accuracy"] >= 0.9  # the double-JPEG trace...
    # ...of which the grid-breaking control removes a good part; what it keeps is the detail the
    # first, lower quality took from the AI pictures, which no resample gives back.
    assert result["gap"] >= 0.1


@pytest.mark.parametrize("jitter", [0.0, 0.2], ids=["fixed-1.07", "jitter-1.05-1.25"])
def test_the_default_resample_leaves_no_history_beyond_its_control(
    tmp_path: Path, fetch_report: Callable[..., Path], jitter: float
) -> None:
    """The same files through the default standardization (every picture resampled): the
    standardized pictures tell the histories apart no better than the grid-broken control."""
    raw = synthetic_histories(tmp_path, fetch_report, n=240)
    resample = StandardizeSettings().resample if not jitter else 1.05
    settings = StandardizeSettings(size=SIZE, resample=resample, resample_jitter=jitter)
    result = audit_after(raw, tmp_path / "standardized", settings)
    assert result["raw"]["balanced_accuracy"] >= 0.9
    assert result["standardized"]["balanced_accuracy"] <= 0.7  # near chance: 48 test pictures
