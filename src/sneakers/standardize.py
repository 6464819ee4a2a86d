"""Standardize every accepted image into packed tar shards with a CSV index.

Thousands of small files hash slowly in DVC, so images are packed into uncompressed tar shards
(readable with `tar`) written with fixed headers: same inputs give byte-identical shards. The
index records each image's shard, byte offset and length, so readers can seek straight to it.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from sneakers.errors import SneakersError
from sneakers.parallel import parallel_map
from sneakers.params import settings_from
from sneakers.preprocess import FIT_POLICIES, Recipe

# Images per worker task: small enough to keep both cores busy to the end, big enough that a
# task costs nothing to hand out.
PART_SIZE = 32
META_COLUMNS = ["id", "label", "source", "role", "path", "brand", "group"]  # from the manifest
INDEX_COLUMNS = [*META_COLUMNS, "shard", "offset", "length"]


@dataclass(frozen=True)
class StandardizeSettings:
    """The `standardize` params section."""

    size: int = 240
    fit: str = "crop"
    resample: float = 1.07
    resample_jitter: float = 0.0
    jpeg_quality: int = 90
    shard_size: int = 1000
    workers: int = 0

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> StandardizeSettings:
        # 36 px is the smallest picture the CNN's unpadded convolutions can take.
        low = {"size": 36, "resample": 1, "resample_jitter": 0, "jpeg_quality": 1,
               "shard_size": 1, "workers": 0}  # fmt: skip
        return settings_from(cls, section, "standardize", {"fit": FIT_POLICIES}, low)

    def recipe(self, max_pixels: int) -> Recipe:
        """The settings that decide the pictures: what the model file records for predict."""
        return Recipe(self.size, self.fit, self.jpeg_quality, max_pixels, self.resample,
                      self.resample_jitter)  # fmt: skip


def standardize_file(path: str, settings: StandardizeSettings, max_pixels: int) -> bytes:
    """One raw file to standardized JPEG bytes."""
    return settings.recipe(max_pixels).apply(Path(path).read_bytes())


def tar_member(name: str, data: bytes) -> bytes:
    """One tar member as it lies in the shard: a USTAR header block with fixed mtime and mode,
    the bytes, and NUL padding to the next block. Short names keep the header to one block."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    header = info.tobuf(tarfile.USTAR_FORMAT, tarfile.ENCODING, "surrogateescape")
    return header + data + tarfile.NUL * _padding(len(data))


def _padding(length: int) -> int:
    """NUL bytes after a member's data, up to the next 512-byte block."""
    return -length % tarfile.BLOCKSIZE


def standardize_part(
    task: tuple[str, list[str], list[str]], settings: StandardizeSettings, max_pixels: int
) -> list[int]:
    """Standardize a run of raw files into one part file of tar members; return each image's
    length in bytes.

    Runs in a worker process. The bytes go through the page cache rather than back through the
    pool's pipe, and the tar headers are built here too, so the parent only appends whole parts
    to shards: it took a fifth of a core when it did more (docs/performance.md).
    """
    part, names, paths = task
    lengths = []
    with open(part, "wb") as out:
        for name, path in zip(names, paths, strict=True):
            try:
                data = standardize_file(path, settings, max_pixels)
            except Exception as err:
                raise SneakersError(f"{path}: {err}") from None  # crosses the process boundary
            out.write(tar_member(name, data))
            lengths.append(len(data))
    return lengths


class ShardWriter:
    """Appends runs of tar members to shard-NNNNN.tar files, shard_size images each, and keeps
    where each image's bytes lie. A run never spans two shards."""

    def __init__(self, out_dir: Path, shard_size: int) -> None:
        self.out_dir, self.shard_size = out_dir, shard_size
        self.records: list[dict[str, Any]] = []
        self.file: BinaryIO | None = None

    def add(self, members: bytes, metas: list[dict[str, Any]], lengths: list[int]) -> None:
        shard_no = len(self.records) // self.shard_size
        assert (len(self.records) + len(metas) - 1) // self.shard_size == shard_no, "run spans"
        shard = f"shard-{shard_no:05d}.tar"
        if len(self.records) % self.shard_size == 0:
            self.close()
            self.file = open(self.out_dir / shard, "wb")  # noqa: SIM115
        offset = self.file.tell()
        self.file.write(members)
        for meta, length in zip(metas, lengths, strict=True):
            self.records.append({**meta, "shard": shard, "offset": offset + tarfile.BLOCKSIZE,
                                 "length": length})  # fmt: skip
            offset += tarfile.BLOCKSIZE + length + _padding(length)

    def close(self) -> None:
        """End the open shard as tarfile does: two zero blocks, then zeros to a whole record."""
        if self.file is not None:
            end = self.file.tell() + 2 * tarfile.BLOCKSIZE
            self.file.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE + -end % tarfile.RECORDSIZE))
            self.file.close()
            self.file = None

    def index(self) -> pd.DataFrame:
        return pd.DataFrame(self.records, columns=INDEX_COLUMNS)


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
    metas = accepted[META_COLUMNS].to_dict("records")
    root = str(raw_dir)  # os.path, not pathlib: a Path per image cost 15 µs (docs/performance.md)
    paths = [os.path.join(root, m["source"], m["path"]) for m in metas]
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    runs = _runs(len(metas), settings.shard_size)
    tasks = [
        (str(staging / f"part-{k:05d}.bin"), [f"{m['id']}.jpg" for m in metas[run]], paths[run])
        for k, run in enumerate(runs)
    ]
    work = partial(standardize_part, settings=settings, max_pixels=max_pixels)
    parts = parallel_map(work, tasks, settings.workers, "standardize", 1, lambda t: len(t[1]))
    shards = ShardWriter(staging, settings.shard_size)
    try:
        for run, (part, _, _), lengths in zip(runs, tasks, _as_user_error(parts), strict=True):
            shards.add(Path(part).read_bytes(), metas[run], lengths)
            os.remove(part)
        shards.close()
    except BaseException:
        parts.close()  # stop the workers before their folder goes
        shards.close()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    index = shards.index()
    index.to_csv(staging / "index.csv", index=False)
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return index


def _runs(n: int, shard_size: int) -> list[slice]:
    """Consecutive runs of at most PART_SIZE images that never cross a shard boundary."""
    return [
        slice(start, min(start + PART_SIZE, shard + shard_size, n))
        for shard in range(0, n, shard_size)
        for start in range(shard, min(shard + shard_size, n), PART_SIZE)
    ]


def _as_user_error(parts: Iterator[list[int]]) -> Iterator[list[int]]:
    """A failure to standardize (not one to write) becomes one line that says what to do."""
    try:
        yield from parts
    except SneakersError as err:
        raise SneakersError(f"standardizing failed: {err}; re-run `dvc repro merge`") from err


def read_image(shard_dir: Path, row: pd.Series) -> bytes:
    """The standardized JPEG bytes of one index row."""
    with open(shard_dir / row["shard"], "rb") as f:
        f.seek(int(row["offset"]))
        return f.read(int(row["length"]))
