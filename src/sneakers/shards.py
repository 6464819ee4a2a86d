"""Packed tar shards of standardized JPEGs, and the CSV index that finds each image in them.

Thousands of small files hash slowly in DVC, so images are packed into uncompressed tar shards
(readable with `tar`) written with fixed headers: same inputs give byte-identical shards. The
index records each image's shard, byte offset and length, so readers seek straight to it. The
standardize and simulate stages write shards; train, evaluate and audit read them.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

# From the manifest.
META_COLUMNS = ["id", "label", "source", "role", "path", "brand", "generator", "group"]
INDEX_COLUMNS = [*META_COLUMNS, "shard", "offset", "length"]


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
            self.records.append(
                {**meta, "shard": shard, "offset": offset + tarfile.BLOCKSIZE, "length": length}
            )
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


def read_image(shard_dir: Path, row: pd.Series) -> bytes:
    """The standardized JPEG bytes of one index row."""
    return read_member(shard_dir / row["shard"], int(row["offset"]), int(row["length"]))


def read_member(shard: Path, offset: int, length: int) -> bytes:
    """length bytes at offset in a shard: one image's JPEG."""
    with open(shard, "rb") as f:
        f.seek(offset)
        return f.read(length)
