"""`sneakers predict`: score image files with a trained model, prepared exactly as training data.

Every file goes through the standardize stage's own function (`standardize_bytes`, with the
settings stored in the model file), is decoded the way training data is (`data.decode`), and is
scored in batches by `inference.predict_proba`. A file that cannot be scored gets a row with an
error (the reason codes of data/merged/manifest.csv), and the run goes on.

Preprocessing runs in this process, between batches. On 2 CPU cores a 240 px JPEG takes about
1.3 ms to read, standardize and decode against about 30 ms for the seed_cnn forward pass, and
benchmarks/predict_speed.py measures the whole path at 0.93-0.94 of the forward-only speed. A
pool of 2 spawned processes (each imports torch before its first picture) made a 128-image run
30% slower, so there is none.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from sneakers import artifact
from sneakers.data import CLASS_NAMES, decode
from sneakers.errors import SneakersError
from sneakers.explain import heatmaps, save_overlay
from sneakers.files import classify_entry, walk
from sneakers.inference import predict_proba, resolve_device, resolve_precision
from sneakers.params import RuntimeSettings
from sneakers.preprocess import Recipe
from sneakers.probe import read_header

OUTPUT_FORMATS = ("table", "csv", "json")
COLUMNS = ("path", "p_ai", "label", "error")
PROGRESS_MIN = 64  # show a progress bar (on a terminal) from this many files on
EXIT_OK, EXIT_SOME_FAILED = 0, 2  # usage errors exit with 1 through errors.run_main
NOT_FOUND = "not_found: no such file or folder"


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


# --- finding the files ---


def find_inputs(patterns: Sequence[str]) -> Inputs:
    """Expand files, folders (recursive, sorted, links never followed out) and glob patterns.

    A file named explicitly is scored whatever its name. Inside folders and glob matches, OS
    junk, hidden files and links to folders inside are skipped, and a link that leaves the
    folder (or a pattern's literal folder) gets an error row.
    """
    rows: dict[str, Row] = {}
    skipped: set[str] = set()
    notes = []

    def add(path: str, error: str | None = None) -> None:
        rows.setdefault(os.path.normpath(path), Row(path, error=error))

    def add_entry(root: Path, rel: Path, shown: str) -> None:
        """An entry under root (resolved), judged as the merge stage judges source entries."""
        verdict = classify_entry(root, root / rel)
        if verdict["status"] == "candidate":
            add(shown)
        elif verdict["reason"] == "broken_link":
            add(shown, f"broken_link: points to {verdict['detail']}, which does not exist")
        elif verdict["status"] == "rejected":
            add(shown, f"link_outside_folder: points to {verdict['detail']}, not followed")
        else:
            skipped.add(os.path.normpath(shown))

    def add_folder(folder: str) -> None:
        root = Path(folder).resolve()
        for path in walk(root):
            rel = path.relative_to(root)
            add_entry(root, rel, str(Path(folder) / rel))

    def add_match(base: str, match: str) -> None:
        """A glob match: `**` descends into linked folders, so the first link on the way
        down decides, as it would in a folder walk (which never goes through one)."""
        root, rel = Path(base).resolve(), Path(os.path.relpath(match, base))
        if ".." in rel.parts:  # the pattern itself climbs out of its folder: as if named
            add(match)
            return
        for depth in range(1, len(rel.parts)):
            if (root / Path(*rel.parts[:depth])).is_symlink():
                rel = Path(*rel.parts[:depth])
                add_entry(root, rel, str(Path(base) / rel))
                return
        if not os.path.isdir(match) or os.path.islink(match):
            add_entry(root, rel, match)
        elif classify_entry(root, root / rel)["status"] == "candidate":  # not __MACOSX/ itself
            add_folder(match)
        else:
            skipped.add(os.path.normpath(match))

    for pattern in patterns:
        if os.path.isdir(pattern):
            add_folder(pattern)
        elif os.path.lexists(pattern):  # before globbing: "shoe [1].jpg" is a name, not a pattern
            add(pattern)
        elif glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                notes.append(f"note: {pattern!r} matched no file")
            for match in matches:
                add_match(literal_base(pattern), match)
        else:
            add(pattern, NOT_FOUND)
    return Inputs(list(rows.values()), len(skipped - rows.keys()), tuple(notes))


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


def prepare(path: str, pre: Recipe) -> tuple[np.ndarray | None, str | None]:
    """Read, standardize and decode one file: (H x W x 3 uint8, None) or (None, error)."""
    if not os.path.isfile(path):  # a FIFO or device would block or never end
        return None, "not_a_file: not a regular file"
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        return None, f"unreadable: {err.strerror or err}"
    if not data:
        return None, "empty: file has 0 bytes"
    refused = check_header(data, pre.max_pixels)
    if refused:
        return None, refused
    try:
        jpeg = pre.apply(data)
    except Image.DecompressionBombError as err:
        return None, f"too_many_pixels: {err}"
    except Exception as err:  # noqa: BLE001 - any decoder failure means this file is unusable
        return None, f"corrupt: {type(err).__name__}: {err}"
    return decode(jpeg), None


def check_header(data: bytes, max_pixels: int) -> str | None:
    """Why a file cannot be scored, judged from its header as the merge stage judges it, or None.

    Only files that Pillow names as one of our formats reach standardize_bytes.
    """
    _, rejected = read_header(data, max_pixels)
    return f"{rejected['reason']}: {rejected['detail']}" if rejected else None


# --- scoring ---


def prepared(rows: list[Row], pre: Recipe, bar: tqdm) -> Iterator[tuple[Row, np.ndarray]]:
    """Rows that prepared cleanly, with their pixels; failures are recorded on their rows."""
    for row in rows:
        if row.error is None:
            pixels, row.error = prepare(row.path, pre)
            if pixels is not None:
                yield row, pixels
        bar.update()


def score(
    rows: list[Row],
    model: nn.Module,
    pre: Recipe,
    threshold: float,
    device: torch.device,
    batch_size: int,
    precision: str,
    overlays: Overlays | None = None,
) -> list[Row]:
    """Fill in p_ai and label (or error) on every row, batch_size images at a time; with
    overlays, also write each scored file's heatmap."""
    show = None if len(rows) >= PROGRESS_MIN else True  # None: only on a terminal
    with tqdm(total=len(rows), desc="predict", unit="img", disable=show, file=sys.stderr) as bar:
        batch: list[tuple[Row, np.ndarray]] = []
        for item in prepared(rows, pre, bar):
            batch.append(item)
            if len(batch) == batch_size:
                score_batch(batch, model, threshold, device, precision, overlays)
                batch = []
        if batch:
            score_batch(batch, model, threshold, device, precision, overlays)
    return rows


def score_batch(
    batch: list[tuple[Row, np.ndarray]],
    model: nn.Module,
    threshold: float,
    device: torch.device,
    precision: str,
    overlays: Overlays | None = None,
) -> None:
    """Stack as data.ShardImages.stack does, then score with the pipeline's predict_proba."""
    images = torch.from_numpy(np.stack([p for _, p in batch])).permute(0, 3, 1, 2).contiguous()
    p_ai = predict_proba(model, images, device, len(batch), precision)
    for (row, _), p in zip(batch, p_ai, strict=True):
        row.p_ai = float(p)
        row.label = CLASS_NAMES[1] if p >= threshold else CLASS_NAMES[0]
    if overlays is not None:
        heat = heatmaps(model, images, device)
        for (row, pixels), h in zip(batch, heat, strict=True):
            save_overlay(pixels, h, overlays.place(row.path))


class Overlays:
    """Where `--explain DIR` puts each file's heatmap: its path below the folder that holds all
    the inputs, under DIR, as .png (a.jpg -> DIR/a.png); a second file that lands on the same
    name (a.jpg beside a.png) gets -2, -3, ..."""

    def __init__(self, folder: Path, shown: Sequence[str]) -> None:
        if folder.exists() and not folder.is_dir():
            raise SneakersError(f"--explain {folder} is a file: name a folder (made if missing)")
        parents = [os.path.dirname(os.path.abspath(path)) for path in shown]
        self.base = os.path.commonpath(parents) if parents else ""
        self.folder, self.used, self.count = folder, set[Path](), 0

    def place(self, shown: str) -> Path:
        relative = Path(os.path.relpath(os.path.abspath(shown), self.base))
        target = (self.folder / relative).with_suffix(".png")
        n = 2
        while target in self.used:
            target, n = target.with_name(f"{relative.stem}-{n}.png"), n + 1
        self.used.add(target)
        self.count += 1
        return target


# --- output ---


def render(rows: list[Row], fmt: str) -> str:
    """The rows as an aligned table, CSV or a JSON list of objects."""
    if fmt == "json":
        return json.dumps([asdict(r) for r in rows], indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([r.path, "" if r.p_ai is None else repr(r.p_ai), r.label or "",
                             r.error or ""])  # fmt: skip
        return out.getvalue()
    cells = [COLUMNS] + [
        (r.path, "-" if r.p_ai is None else f"{r.p_ai:.4f}", r.label or "-", r.error or "")
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    lines = [
        f"{c[0]:<{widths[0]}}  {c[1]:>{widths[1]}}  {c[2]:<{widths[2]}}  {c[3]}".rstrip()
        for c in cells
    ]
    return "\n".join(lines) + "\n"


def check_output(output: Path | None) -> None:
    """Fail before any work if the output file could not be written there."""
    if output is None:
        return
    if output.is_dir():
        raise SneakersError(f"--output {output} is a folder: name a file")
    if not output.parent.is_dir():
        raise SneakersError(f"--output {output}: folder {output.parent} does not exist")


def write_output(text: str, output: Path | None) -> None:
    """To stdout, or to a temporary name beside output and then renamed (never half a file)."""
    if output is None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # e.g. `| head`: the reader left; that is not an error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return
    tmp = output.with_name(output.name + ".partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, output)
    except OSError as err:
        raise SneakersError(f"cannot write {output}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)


def summary(rows: list[Row], skipped: int, seconds: float, how: str) -> str:
    """One line: how many were scored, how many called AI, how many failed, and how fast."""
    scored = [r for r in rows if r.error is None]
    ai = sum(r.label == CLASS_NAMES[1] for r in scored)
    files = f"{len(rows)} file" + ("" if len(rows) == 1 else "s")
    line = (f"predict: {files}, {len(scored)} scored ({ai} ai, {len(scored) - ai} real), "
            f"{len(rows) - len(scored)} failed")  # fmt: skip
    if skipped:
        line += f"; {skipped} skipped (OS junk, hidden files, linked folders)"
    rate = len(scored) / seconds if seconds > 0 else 0.0
    return line + f"; {seconds:.1f} s, {rate:.1f} images/s ({how})"


def run(
    paths: Sequence[str],
    model_path: Path,
    fmt: str = "table",
    output: Path | None = None,
    threshold: float | None = None,
    runtime: RuntimeSettings | None = None,
    explain: Path | None = None,
) -> int:
    """The whole command; returns the exit code (0 all scored, 2 some failed); runtime, the
    device, precision and batch size (the pipeline's runtime section by default); explain, a
    folder for one heatmap overlay per scored file."""
    if fmt not in OUTPUT_FORMATS:
        raise SneakersError(f"--format {fmt!r}: use one of {', '.join(OUTPUT_FORMATS)}")
    if threshold is not None and not 0 < threshold < 1:
        raise SneakersError(f"--threshold {threshold}: must be between 0 and 1 (exclusive)")
    check_output(output)
    inputs = find_inputs(paths)
    if all(r.error == NOT_FOUND for r in inputs.rows):
        raise SneakersError(f"no input files found in {' '.join(paths)}")
    for note in inputs.notes:
        print(note, file=sys.stderr)
    overlays = None if explain is None else Overlays(explain, [r.path for r in inputs.rows])
    runtime = runtime or RuntimeSettings()
    torch_device = resolve_device(runtime.device, "--device")
    dtype = resolve_precision(runtime.precision, torch_device)
    loaded, model = artifact.load(model_path, torch_device)
    card = loaded.card
    cut = card.threshold if threshold is None else threshold
    started = time.perf_counter()
    rows = score(inputs.rows, model, card.preprocess, cut, torch_device, runtime.batch_size,
                 dtype, overlays)  # fmt: skip
    seconds = time.perf_counter() - started
    write_output(render(rows, fmt), output)
    how = f"{torch_device.type} {dtype}"
    print(summary(rows, inputs.skipped, seconds, how), file=sys.stderr)
    if overlays is not None:
        print(f"predict: {overlays.count} heatmaps (Grad-CAM, fp32) in {explain}", file=sys.stderr)
    return EXIT_OK if all(r.error is None for r in rows) else EXIT_SOME_FAILED
