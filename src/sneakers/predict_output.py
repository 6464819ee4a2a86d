"""What `sneakers predict` writes: the rows as a table, CSV or JSON (to stdout or a file, never
half a file), the closing summary line, and the `--explain` heatmap overlays.

Every path and error is shown as one line of valid UTF-8 (`printable`), whatever bytes a file
name holds, and an --output that would replace a file this run reads is refused before any work.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sneakers.data import CLASS_NAMES
from sneakers.errors import SneakersError
from sneakers.explain import save_overlay
from sneakers.files import numbered, write_atomic
from sneakers.predict_inputs import Row

OUTPUT_FORMATS = ("table", "csv", "json")
COLUMNS = ("path", "p_ai", "label", "error")
# What cannot stand in one line of valid UTF-8: control characters (newlines included), line
# separators, and lone surrogates, which is how Python holds a file name's non-UTF-8 bytes.
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


# --- checks before any work ---


def check_output(output: Path | None) -> None:
    """Fail before any work if the output file could not be written there."""
    if output is None:
        return
    if output.is_dir():
        raise SneakersError(f"--output {output} is a folder: name a file")
    if not output.parent.is_dir():
        raise SneakersError(f"--output {output}: folder {output.parent} does not exist")
    try:
        with tempfile.TemporaryFile(dir=output.parent):
            pass
    except OSError as err:
        raise SneakersError(
            f"--output {output}: cannot write in {output.parent} ({err.strerror or err}): name "
            "a file in a folder you can write to"
        ) from None


def check_clobber(
    output: Path | None, explain: Path | None, inputs: list[Row], model_path: Path
) -> None:
    """Refuse an --output that would replace a file this run reads (an input, the model) or
    the --explain folder, before any work."""
    if output is None:
        return
    if explain is not None and output.resolve() == explain.resolve():
        raise SneakersError(f"--output {output} is the --explain folder: name another file")
    if not output.exists():
        return
    if output.is_file() and model_path.exists() and output.samefile(model_path):
        raise SneakersError(f"--output {output} is the model file: name another file")
    here = os.stat(output)
    for row in inputs:
        try:
            there = os.stat(row.path)
        except OSError:
            continue
        if (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino):
            raise SneakersError(
                f"--output {output} is one of the inputs ({printable(row.path)}): name a file "
                "that is not being scored"
            )


# --- the rows ---


def render(rows: list[Row], fmt: str) -> str:
    """The rows as an aligned table, CSV or a JSON list of objects, one line or object per row;
    paths and errors are `printable` in all three alike."""
    shown = [Row(printable(r.path), r.p_ai, r.label, r.error and printable(r.error)) for r in rows]
    if fmt == "json":
        return json.dumps([asdict(r) for r in shown], indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in shown:
            p_ai = "" if r.p_ai is None else repr(r.p_ai)
            writer.writerow([r.path, p_ai, r.label or "", r.error or ""])
        return out.getvalue()
    cells = [COLUMNS] + [
        (r.path, "-" if r.p_ai is None else f"{r.p_ai:.4f}", r.label or "-", r.error or "")
        for r in shown
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = [
        f"{c[0]:<{widths[0]}}  {c[1]:>{widths[1]}}  {c[2]:<{widths[2]}}  {c[3]}".rstrip()
        for c in cells
    ]
    return "\n".join(lines) + "\n"


def printable(text: str) -> str:
    """text as one line of valid UTF-8: a file name's bytes that are not UTF-8 (Linux allows
    any) as \\xNN, control characters as Python writes them (\\n, \\t, \\x1b)."""
    return UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode keeps a byte that is not UTF-8 as U+DC00 + byte
        return f"\\x{code - 0xDC00:02x}"
    return match.group().encode("unicode_escape").decode("ascii")


def write_output(text: str, output: Path | None) -> None:
    """To stdout, or atomically to output (`files.write_atomic`: never half a file, never
    another's file under the temporary name)."""
    if output is None:
        encoding = sys.stdout.encoding or "utf-8"
        # A terminal that is not UTF-8 (PYTHONIOENCODING=latin-1) gets \u escapes, not a crash.
        text = text.encode(encoding, "backslashreplace").decode(encoding)
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. `| head`: the reader left; that is not an error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return
    try:
        write_atomic(output, text)
    except OSError as err:
        raise SneakersError(f"cannot write {output}: {err.strerror or err}") from None


def summary(rows: list[Row], skipped: int, seconds: float, how: str) -> str:
    """One line: how many were scored, how many called AI, how many failed, and how fast."""
    scored = [r for r in rows if r.error is None]
    ai = sum(r.label == CLASS_NAMES[1] for r in scored)
    files = f"{len(rows)} file" + ("" if len(rows) == 1 else "s")
    line = (
        f"predict: {files}, {len(scored)} scored ({ai} ai, {len(scored) - ai} real), "
        f"{len(rows) - len(scored)} failed"
    )
    if skipped:
        line += f"; {skipped} skipped (OS junk, hidden files, linked folders)"
    rate = len(scored) / seconds if seconds > 0 else 0.0
    return line + f"; {seconds:.1f} s, {rate:.1f} images/s ({how})"


# --- heatmaps ---


class Overlays:
    """Where `--explain DIR` puts each file's heatmap: its path below the folder that holds all
    the inputs, under DIR, as .png (a.jpg -> DIR/a.png). A file is never overwritten, whoever
    made it: a taken name (a.jpg beside a.png, a file from an earlier run, an input) moves the
    heatmap to the next free one, a-2.png, a-3.png, ...

    The folder is made, and a file tried in it, when this is built, so that a place that cannot
    take heatmaps fails before any scoring; reserved names (--output) are never used."""

    def __init__(self, folder: Path, shown: Sequence[str], reserved: Iterable[Path] = ()) -> None:
        if folder.exists() and not folder.is_dir():
            raise SneakersError(f"--explain {folder} is a file: name a folder (made if missing)")
        blocker = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            raise SneakersError(f"--explain {folder}: {blocker} is a file: name a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as err:
            raise SneakersError(
                f"--explain {folder}: cannot write there ({err.strerror or err}): name a folder "
                "you can write to"
            ) from None
        parents = [os.path.dirname(os.path.abspath(path)) for path in shown]
        self.base = os.path.commonpath(parents) if parents else ""
        self.folder, self.reserved = folder, {p.resolve() for p in reserved}
        self.count = self.renamed = self.failed = 0

    def save(self, shown: str, pixels: np.ndarray, heat: np.ndarray) -> None:
        """Write one heatmap under the first free name; a place it cannot go is a note."""
        relative = Path(os.path.relpath(os.path.abspath(shown), self.base))
        target = (self.folder / relative).with_suffix(".png")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            for n, name in enumerate(numbered(target)):
                if name.resolve() in self.reserved:
                    continue
                try:
                    save_overlay(pixels, heat, name)
                except FileExistsError:
                    continue
                self.count, self.renamed = self.count + 1, self.renamed + (n > 0)
                return
        except OSError as err:
            self.failed += 1
            print(
                f"note: no heatmap for {printable(shown)}: cannot write {printable(str(target))} "
                f"({err.strerror or err})",
                file=sys.stderr,
            )

    def summary(self) -> str:
        line = f"predict: {self.count} heatmaps (Grad-CAM, fp32) in {printable(str(self.folder))}"
        if self.renamed:
            line += f"; {self.renamed} under a new name (-2, -3, ...: the name was taken)"
        if self.failed:
            line += f"; {self.failed} not written (see the notes above)"
        return line
