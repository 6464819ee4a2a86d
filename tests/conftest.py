"""Shared fixtures for the data tests: tiny synthetic pictures, encoders and raw-folder builders.

The pictures are 9x8 grids of grey levels where horizontally adjacent cells always differ by a
large step, so their perceptual hashes are decisive: re-encoding or resizing one moves its
hashes by at most 2 bits, while two different seeds stay about 20 bits apart. That makes the
near-duplicate tests deterministic instead of depending on lucky seeds.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sneakers.files import FETCH_REPORT

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


@pytest.fixture
def picture() -> Callable[..., Image.Image]:
    """Factory for distinct, hash-stable pictures: picture(seed, scale=8)."""
    return make_picture


@pytest.fixture
def encode() -> Callable[..., bytes]:
    """Factory for encoded bytes: encode(image, "JPEG", quality=90)."""
    return encode_image


@pytest.fixture
def write() -> Callable[[Path, bytes], Path]:
    """Write bytes to a path, creating parent folders."""
    return write_bytes


@pytest.fixture
def fetch_report() -> Callable[[Path, list[dict[str, Any]]], Path]:
    """Write data/raw/_fetch.json as the fetch stage does, for merge tests on hand-made dirs.

    Each entry needs a name; kind, origin, files and refused get fetch's defaults.
    """

    def _write(raw_dir: Path, entries: list[dict[str, Any]]) -> Path:
        sources = []
        for entry in entries:
            folder = raw_dir / entry["name"]
            files = sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0
            sources.append(
                {
                    "name": entry["name"],
                    "kind": entry.get("kind", "path"),
                    "origin": entry.get("origin", f"/elsewhere/{entry['name']}"),
                    "files": entry.get("files", files),
                    "refused": entry.get("refused", []),
                }
            )
        raw_dir.mkdir(parents=True, exist_ok=True)
        path = raw_dir / FETCH_REPORT
        path.write_text(json.dumps({"sources": sources}, indent=2) + "\n")
        return path

    return _write
