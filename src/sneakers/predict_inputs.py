"""What `sneakers predict` scores: the files its PATH arguments name, each read, standardized and
decoded exactly as training data was, or the reason it cannot be.

Files, folders and glob patterns are expanded as the merge stage walks a source folder
(`files.walk`, `files.classify_entry`): OS junk, hidden files and linked folders inside are
skipped, and a link that leaves its folder gets an error row instead of being followed.
"""

from __future__ import annotations

import errno
import glob
import itertools
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sneakers.artifact import DEFAULT_MIN_SIZE
from sneakers.data import decode
from sneakers.files import classify_entry, walk
from sneakers.preprocess import Recipe
from sneakers.probe import judge_header

NOT_FOUND = "not_found: no such file or folder"
KINDS = {
    stat.S_ISDIR: "a folder",
    stat.S_ISFIFO: "a FIFO (named pipe)",
    stat.S_ISSOCK: "a socket",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
}


@dataclass
class Row:
    """One input file and its outcome: P(ai) and label, or why it could not be scored."""

    path: str
    p_ai: float | None = None
    label: str | None = None
    error: str | None = None


@dataclass
class Inputs:
    """What the PATH arguments name: rows to score (some already failed), and what was left out."""

    rows: list[Row]
    skipped: int = 0  # OS junk, hidden files and linked folders inside folders
    notes: tuple[str, ...] = ()


# A path as it will be shown, and its row, or None where it is skipped.
Found = tuple[str, Row | None]


# --- finding the files ---


def find_inputs(patterns: Sequence[str]) -> Inputs:
    """Expand files, folders (recursive, sorted, links never followed out) and glob patterns.

    A file named explicitly is scored whatever its name. Inside folders and glob matches, OS
    junk, hidden files and links to folders inside are skipped, and a link that leaves the
    folder (or a pattern's literal folder) gets an error row. A path found twice is one row.
    """
    rows: dict[str, Row] = {}
    skipped: set[str] = set()
    notes = []
    for pattern in patterns:
        if os.path.lexists(pattern) or not glob.has_magic(pattern):
            found = named(pattern)  # before globbing: "shoe [1].jpg" is a name, not a pattern
        else:
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                notes.append(f"note: {pattern!r} matched no file")
            base = literal_base(pattern)
            found = itertools.chain.from_iterable(matched(base, match) for match in matches)
        for shown, row in found:
            if row is None:
                skipped.add(os.path.normpath(shown))
            else:
                rows.setdefault(os.path.normpath(shown), row)
    return Inputs(list(rows.values()), len(skipped - rows.keys()), tuple(notes))


def named(path: str) -> Iterator[Found]:
    """A path given as it is: a folder's files, or the file itself, there or not."""
    if os.path.isdir(path):
        yield from in_folder(path)
    elif os.path.lexists(path):
        yield path, Row(path, error=link_error(path))
    else:
        yield path, Row(path, error=missing(path))


def in_folder(folder: str) -> Iterator[Found]:
    """Every entry under folder, sorted, judged by `entry`; a subfolder that cannot be listed
    gets the row, since its files cannot be named."""
    root = Path(folder).resolve()
    unlisted: list[OSError] = []
    for path in walk(root, unlisted):
        rel = path.relative_to(root)
        shown = str(Path(folder) / rel)
        yield shown, entry(root, rel, shown)
    for err in unlisted:
        shown = str(Path(folder) / Path(err.filename).relative_to(root))
        error = f"unreadable: folder could not be listed: {err.strerror}; its files were not scored"
        yield shown, Row(shown, error=error)


def matched(base: str, match: str) -> Iterator[Found]:
    """A glob match under base, the pattern's literal folder. `**` descends into linked folders,
    so the first link on the way down decides, as it would in a folder walk (which never goes
    through one)."""
    root, rel = Path(base).resolve(), Path(os.path.relpath(match, base))
    if ".." in rel.parts:  # the pattern itself climbs out of its folder: as if named
        yield match, Row(match)
        return
    for depth in range(1, len(rel.parts)):
        if (root / Path(*rel.parts[:depth])).is_symlink():
            link = Path(*rel.parts[:depth])
            shown = str(Path(base) / link)
            yield shown, entry(root, link, shown)
            return
    if not os.path.isdir(match) or os.path.islink(match):
        yield match, entry(root, rel, match)
    elif classify_entry(root, root / rel)["status"] == "candidate":  # not __MACOSX/ itself
        yield from in_folder(match)
    else:
        yield match, None


def entry(root: Path, rel: Path, shown: str) -> Row | None:
    """The row of an entry under root (resolved), judged as the merge stage judges source
    entries, or None for one that is skipped."""
    verdict = classify_entry(root, root / rel)
    if verdict["status"] == "candidate":
        return Row(shown)
    if verdict["reason"] == "broken_link":
        return Row(shown, error=link_error(shown))
    if verdict["status"] == "rejected":
        return Row(shown, error=f"link_outside_folder: points to {verdict['detail']}, not followed")
    return None


def link_error(path: str) -> str | None:
    """Why a link cannot be followed (it points nowhere, or into a loop), or None."""
    if not os.path.islink(path):
        return None
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "broken_link: a loop of links"
        return f"broken_link: points to {os.path.realpath(path)}, which does not exist"
    return None


def missing(path: str) -> str:
    """Why a path that does not exist as far as we can see is missing: not there, or not ours
    to look at (a folder on the way that we may not read)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return NOT_FOUND
    except OSError as err:
        return f"unreadable: {err.strerror or err}"
    return NOT_FOUND  # there after all: it appeared after the look before


def literal_base(pattern: str) -> str:
    """The folder a glob pattern searches: its leading parts without wildcards."""
    parts = Path(pattern).parts
    literal = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        literal.append(part)
    return str(Path(*literal)) if literal else "."


# --- preparing one file ---


def prepare(
    path: str, pre: Recipe, min_size: int = DEFAULT_MIN_SIZE
) -> tuple[np.ndarray | None, str | None]:
    """Read, standardize and decode one file: (H x W x 3 uint8, None) or (None, error).

    What may be scored is merge's rule (probe.judge_header), with the model's min_size and
    max_pixels: a picture merge would have refused gets the reason it would have given.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:  # gone since it was found, a broken link, or behind a folder we may not read
        return None, link_error(path) or missing(path)
    if not stat.S_ISREG(mode):  # a FIFO or device would block or never end
        kind = next((name for test, name in KINDS.items() if test(mode)), "a special file")
        return None, f"not_a_file: {kind}, not a regular file"
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return None, f"unreadable: {err.strerror or err}"
    _, rejected = judge_header(data, min_size=min_size, max_pixels=pre.max_pixels)
    if rejected:
        return None, f"{rejected['reason']}: {rejected['detail']}"
    try:
        jpeg = pre.apply(data)
    except Image.DecompressionBombError as err:
        return None, f"too_many_pixels: {err}"
    except Exception as err:  # noqa: BLE001 - any decoder failure means this file is unusable
        return None, f"corrupt: {type(err).__name__}: {err}"
    return decode(jpeg), None
