"""The fixtures; the plain helpers they hand out (pictures, synthetic splits and training runs,
throwaway git + DVC repositories) live in helpers.py, where tests import them from."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from helpers import (
    Sandbox,
    Trained,
    encode_image,
    make_picture,
    make_sandbox,
    synthetic_splits,
    tiny_pipeline_params,
    train_synthetic,
    trained_in,
    write_bytes,
)
from PIL import Image

from sneakers.files import FETCH_REPORT

if TYPE_CHECKING:
    from sneakers.data import SplitData


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


@pytest.fixture
def deny_listing(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """deny_listing(name): listing any folder of that name raises PermissionError, as a folder
    we may not read does (simulated: the tests may run as root, which lists anything)."""
    real_scandir = os.scandir

    def deny(name: str) -> None:
        def scandir(path: str | Path = ".") -> object:
            if Path(path).name == name:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)

    return deny


@pytest.fixture(scope="session")
def make_splits() -> Callable[[], dict[str, SplitData]]:
    """Factory for fresh synthetic train/val/test splits (48 images of 40x40 each)."""
    return synthetic_splits


@pytest.fixture(scope="session")
def train_run() -> Callable[..., Trained]:
    """Factory: train_run(**overrides) trains on fresh synthetic splits (about a second)."""
    return train_synthetic


@pytest.fixture(scope="session")
def trained() -> Trained:
    """One shared synthetic training run in fp32; tests must treat it as read-only."""
    return trained_in("fp32")


@pytest.fixture(scope="session", params=["fp32", "bf16"])
def trained_at(request: pytest.FixtureRequest) -> Trained:
    """The shared run in each precision, whatever this CPU's `auto` means, so that a green run
    on one CPU kind is green on the other (bf16 is emulated, several times slower, on AVX2)."""
    return trained_in(request.param)


@pytest.fixture(scope="session")
def tiny_params() -> Callable[[], dict[str, Any]]:
    """Factory for a fresh copy of the tiny pipeline params (see tiny_pipeline_params)."""
    return tiny_pipeline_params


@pytest.fixture(scope="session")
def sandbox_factory() -> Callable[[Path, dict[str, Any]], Sandbox]:
    """Factory: sandbox_factory(empty_dir, params) -> a committed git + DVC Sandbox."""
    return make_sandbox
