"""What an entry of a source folder is before anything is decoded: junk, a link, or a candidate."""

from __future__ import annotations

import itertools
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from sneakers.errors import SneakersError

FETCH_REPORT = "_fetch.json"  # what fetch refused, beside the source folders in data/raw
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX"}


def classify_entry(root: Path, path: Path) -> dict[str, str]:
    """Status, reason and detail for one entry under root (root must be resolved)."""
    parts = PurePosixPath(path.relative_to(root).as_posix()).parts
    junk = next((p for p in parts if p in JUNK_NAMES), None)
    if junk:
        return {"status": "ignored", "reason": "os_junk", "detail": junk}
    if any(p.startswith(".") for p in parts):
        return {"status": "ignored", "reason": "hidden_file", "detail": "name starts with '.'"}
    if path.is_symlink():
        try:
            target = path.resolve()
        except (RuntimeError, OSError):  # a loop: Python 3.11 raises RuntimeError, later OSError
            return {"status": "rejected", "reason": "broken_link", "detail": "a loop of links"}
        if not target.is_relative_to(root):  # even when broken: it would leave the source
            return {"status": "rejected", "reason": "link_outside_source", "detail": str(target)}
        if not target.exists():
            return {"status": "rejected", "reason": "broken_link", "detail": str(target)}
        if target.is_dir():
            return {"status": "ignored", "reason": "link_to_folder", "detail": "not followed"}
    return {"status": "candidate", "reason": "", "detail": ""}


def walk(root: Path, unlisted: list[OSError] | None = None) -> list[Path]:
    """Every file and every linked folder under root, sorted, never following links.

    Folders that cannot be listed are skipped; pass `unlisted` to get their errors.
    """
    found = []
    for folder, dirs, files in os.walk(root, onerror=None if unlisted is None else unlisted.append):
        here = Path(folder)
        found += [here / n for n in files] + [here / d for d in dirs if (here / d).is_symlink()]
    return sorted(found)


def safe_name(name: str) -> str:
    """A name as valid UTF-8 text: bytes that are not UTF-8 become \\xNN escapes.

    Linux file names are bytes; Python hands the undecodable ones over as lone surrogates,
    which no UTF-8 file (a CSV, JSON) can hold. Valid names come back unchanged.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def file_kind(mode: int) -> str:
    """What a stat mode says an entry is, in words, for a detail."""
    kinds = {
        stat.S_IFIFO: "named pipe (FIFO)",
        stat.S_IFSOCK: "socket",
        stat.S_IFDIR: "folder",
        stat.S_IFCHR: "character device",
        stat.S_IFBLK: "block device",
        stat.S_IFLNK: "link",
        stat.S_IFREG: "regular file",
    }
    return kinds.get(stat.S_IFMT(mode), f"file of type {stat.S_IFMT(mode):#o}")


def read_csv(path: Path) -> pd.DataFrame:
    """Read one of our CSVs: empty cells are missing, every other string stays as written."""
    if not path.exists():
        raise SneakersError(f"{path} is missing: run `dvc repro` to build it")
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write to a new temporary name, then rename: an interrupted run never leaves half a file,
    and a file already under the temporary name (another's, or a link) is never written over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = data.encode() if isinstance(data, str) else data
    for tmp in numbered(path.with_name(path.name + ".partial")):
        try:
            write_new(tmp, data)
        except FileExistsError:
            continue
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return


def numbered(path: Path) -> Iterator[Path]:
    """path, then path with -2, -3, ... after its stem: candidates for a file of our own."""
    yield path
    for n in itertools.count(2):
        yield path.with_name(f"{path.stem}-{n}{path.suffix}")


def write_new(path: Path, data: bytes) -> None:
    """Write data to a file that must not exist yet (O_EXCL: never another's file, never through
    a link; a taken name raises FileExistsError). A write that fails leaves nothing behind."""
    out = path.open("xb")
    try:
        with out:
            out.write(data)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    """Indented JSON with a final newline, written atomically."""
    write_atomic(path, json.dumps(value, indent=2) + "\n")
