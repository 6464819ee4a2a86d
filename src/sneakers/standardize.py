"""Standardize every accepted image, in parallel, into tar shards with a CSV index (shards.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pandas as pd

from sneakers.errors import SneakersError
from sneakers.parallel import parallel_map
from sneakers.params import StandardizeSettings
from sneakers.shards import META_COLUMNS, ShardWriter, tar_member

# Images per worker task: small enough to keep both cores busy to the end, big enough that a
# task costs nothing to hand out.
PART_SIZE = 32


def standardize_file(path: str, settings: StandardizeSettings, max_pixels: int) -> bytes:
    """One raw file to standardized JPEG bytes."""
    return settings.recipe(max_pixels).apply(Path(path).read_bytes())


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
            except Exception as err:  # noqa: BLE001 - any failure is this file's: say which
                raise SneakersError(f"{path}: {err}") from None  # crosses the process boundary
            out.write(tar_member(name, data))
            lengths.append(len(data))
    return lengths


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
