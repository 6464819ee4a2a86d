"""Standardize every accepted image into packed tar shards with a CSV index.

Thousands of small files hash slowly in DVC, so images are packed into uncompressed tar shards
(readable with `tar`) written with fixed headers: same inputs give byte-identical shards. The
index records each image's shard, byte offset and length, so readers can seek straight to it.
"""

from __future__ import annotations

import io
import shutil
import tarfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from sneakers.errors import SneakersError
from sneakers.parallel import parallel_map
from sneakers.params import settings_from
from sneakers.preprocess import FIT_POLICIES, standardize_bytes

INDEX_COLUMNS = ["id", "label", "source", "path", "brand", "group", "shard", "offset", "length"]


@dataclass(frozen=True)
class StandardizeSettings:
    """The `standardize` params section."""

    size: int = 240
    fit: str = "crop"
    jpeg_quality: int = 90
    shard_size: int = 1000
    workers: int = 0

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> StandardizeSettings:
        # 36 px is the smallest picture the CNN's unpadded convolutions can take.
        low = {"size": 36, "jpeg_quality": 1, "shard_size": 1, "workers": 0}
        return settings_from(cls, section, "standardize", {"fit": FIT_POLICIES}, low)


def standardize_file(path: str, settings: StandardizeSettings, max_pixels: int) -> bytes:
    """One raw file to standardized JPEG bytes (runs in a worker process)."""
    data = Path(path).read_bytes()
    return standardize_bytes(data, settings.size, settings.fit, settings.jpeg_quality, max_pixels)


def standardize_manifest(
    manifest: pd.DataFrame,
    raw_dir: Path,
    out_dir: Path,
    settings: StandardizeSettings,
    max_pixels: int,
) -> pd.DataFrame:
    """Standardize the accepted rows into out_dir (written aside, then moved); return the index."""
    accepted = manifest[manifest["status"] == "accepted"].reset_index(drop=True)
    if accepted.empty:
        raise SneakersError("the manifest has no accepted image: check data/merged/manifest.csv")
    paths = [
        str(raw_dir / s / p) for s, p in zip(accepted["source"], accepted["path"], strict=True)
    ]
    work = partial(standardize_file, settings=settings, max_pixels=max_pixels)
    try:
        images = parallel_map(work, paths, settings.workers, "standardize")
    except Exception as err:
        raise SneakersError(f"standardizing failed: {err}; re-run `dvc repro merge`") from err
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    index = write_shards(accepted, images, staging, settings.shard_size)
    index.to_csv(staging / "index.csv", index=False)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return index


def write_shards(
    rows: pd.DataFrame, images: list[bytes], out_dir: Path, shard_size: int
) -> pd.DataFrame:
    """Pack images into shard-NNNNN.tar files with deterministic headers."""
    records = []
    for start in range(0, len(images), shard_size):
        shard = f"shard-{start // shard_size:05d}.tar"
        with tarfile.open(out_dir / shard, "w", format=tarfile.USTAR_FORMAT) as tar:
            for i in range(start, min(start + shard_size, len(images))):
                row = rows.iloc[i]
                info = tarfile.TarInfo(f"{row['id']}.jpg")
                info.size, info.mtime, info.mode = len(images[i]), 0, 0o644
                # A USTAR header with a short name is one block; the data follows it.
                offset = tar.offset + tarfile.BLOCKSIZE
                tar.addfile(info, io.BytesIO(images[i]))
                meta = row[INDEX_COLUMNS[:6]].to_dict()
                records.append({**meta, "shard": shard, "offset": offset, "length": info.size})
    return pd.DataFrame(records, columns=INDEX_COLUMNS)


def read_image(shard_dir: Path, row: pd.Series) -> bytes:
    """The standardized JPEG bytes of one index row."""
    with open(shard_dir / row["shard"], "rb") as f:
        f.seek(int(row["offset"]))
        return f.read(int(row["length"]))
