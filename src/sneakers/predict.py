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
import errno
import glob
import io
import itertools
import json
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from sneakers import artifact
from sneakers.artifact import DEFAULT_MIN_SIZE
from sneakers.data import CLASS_NAMES, decode
from sneakers.errors import SneakersError
from sneakers.explain import heatmaps, save_overlay
from sneakers.files import classify_entry, walk, write_new
from sneakers.inference import predict_proba, resolve_device, resolve_precision
from sneakers.params import RuntimeSettings
from sneakers.preprocess import Recipe
from sneakers.probe import judge_header

OUTPUT_FORMATS = ("table", "csv", "json")
COLUMNS = ("path", "p_ai", "label", "error")
PROGRESS_MIN = 64  # show a progress bar (on a terminal) from this many files on
EXIT_OK, EXIT_SOME_FAILED = 0, 2  # usage errors exit with 1 through errors.run_main
NOT_FOUND = "not_found: no such file or folder"
# What cannot stand in one line of valid UTF-8: control characters (newlines included), line
# separators, and lone surrogates, which is how Python holds a file name's non-UTF-8 bytes.
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket",
         stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}  # fmt: skip


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
            add(shown, link_error(shown))
        elif verdict["status"] == "rejected":
            add(shown, f"link_outside_folder: points to {verdict['detail']}, not followed")
        else:
            skipped.add(os.path.normpath(shown))

    def add_folder(folder: str) -> None:
        root = Path(folder).resolve()
        unlisted: list[OSError] = []
        for path in walk(root, unlisted):
            rel = path.relative_to(root)
            add_entry(root, rel, str(Path(folder) / rel))
        for err in unlisted:  # its files cannot be named, so the folder gets the row
            shown = str(Path(folder) / Path(err.filename).relative_to(root))
            add(shown, f"unreadable: folder could not be listed: {err.strerror}; its files "
                "were not scored")  # fmt: skip

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
            add(pattern, link_error(pattern))
        elif glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                notes.append(f"note: {pattern!r} matched no file")
            for match in matches:
                add_match(literal_base(pattern), match)
        else:
            add(pattern, missing(pattern))
    return Inputs(list(rows.values()), len(skipped - rows.keys()), tuple(notes))


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


# --- scoring ---


def prepared(
    rows: list[Row], pre: Recipe, bar: tqdm, min_size: int
) -> Iterator[tuple[Row, np.ndarray]]:
    """Rows that prepared cleanly, with their pixels; failures are recorded on their rows."""
    for row in rows:
        if row.error is None:
            pixels, row.error = prepare(row.path, pre, min_size)
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
    min_size: int = DEFAULT_MIN_SIZE,
) -> list[Row]:
    """Fill in p_ai and label (or error) on every row, batch_size images at a time; with
    overlays, also write each scored file's heatmap. Pictures with a side under min_size
    (the model's Card.smallest_side) are refused as too_small."""
    show = None if len(rows) >= PROGRESS_MIN else True  # None: only on a terminal
    with tqdm(total=len(rows), desc="predict", unit="img", disable=show, file=sys.stderr) as bar:
        batch: list[tuple[Row, np.ndarray]] = []
        for item in prepared(rows, pre, bar, min_size):
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
            overlays.save(row.path, pixels, h)


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
            print(f"note: no heatmap for {printable(shown)}: cannot write {printable(str(target))} "
                  f"({err.strerror or err})", file=sys.stderr)  # fmt: skip

    def summary(self) -> str:
        line = f"predict: {self.count} heatmaps (Grad-CAM, fp32) in {printable(str(self.folder))}"
        if self.renamed:
            line += f"; {self.renamed} under a new name (-2, -3, ...: the name was taken)"
        if self.failed:
            line += f"; {self.failed} not written (see the notes above)"
        return line


def numbered(path: Path) -> Iterator[Path]:
    """path, then path with -2, -3, ... after its stem: candidates for a file of our own."""
    yield path
    for n in itertools.count(2):
        yield path.with_name(f"{path.stem}-{n}{path.suffix}")


# --- output ---


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
            writer.writerow([r.path, "" if r.p_ai is None else repr(r.p_ai), r.label or "",
                             r.error or ""])  # fmt: skip
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


def write_output(text: str, output: Path | None) -> None:
    """To stdout, or to a new temporary file beside output and then renamed (never half a file,
    never another's file under the temporary name)."""
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
    tmp = None
    try:
        for name in numbered(output.with_name(output.name + ".partial")):
            try:
                write_new(name, text.encode())
            except FileExistsError:
                continue
            tmp = name
            break
        os.replace(tmp, output)
        tmp = None
    except OSError as err:
        raise SneakersError(f"cannot write {output}: {err.strerror or err}") from None
    finally:
        if tmp is not None:
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
    """The whole command; returns the exit code (0 all scored, 2 some failed, or some heatmap
    could not be written); runtime, the device, precision and batch size (the pipeline's
    runtime section by default); explain, a folder for one heatmap overlay per scored file.

    Everything a user can get wrong is checked before the first picture is read."""
    if fmt not in OUTPUT_FORMATS:
        raise SneakersError(f"--format {fmt!r}: use one of {', '.join(OUTPUT_FORMATS)}")
    if threshold is not None and not 0 < threshold < 1:
        raise SneakersError(f"--threshold {threshold}: must be between 0 and 1 (exclusive)")
    check_output(output)
    inputs = find_inputs(paths)
    if all(r.error == NOT_FOUND for r in inputs.rows):
        raise SneakersError(f"no input files found in {' '.join(paths)}")
    check_clobber(output, explain, inputs.rows, model_path)
    runtime = runtime or RuntimeSettings()
    torch_device = resolve_device(runtime.device, "--device")
    dtype = resolve_precision(runtime.precision, torch_device)
    loaded, model = artifact.load(model_path, torch_device)
    card = loaded.card
    shown = [r.path for r in inputs.rows]
    overlays = None if explain is None else Overlays(explain, shown, [output] if output else [])
    for note in inputs.notes:
        print(note, file=sys.stderr)
    if card.min_size is None:
        print(f"note: {model_path} does not record merge.min_size (written before model files "
              f"did): pictures under {card.smallest_side()} px, merge's default, are refused as "
              "too_small", file=sys.stderr)  # fmt: skip
    fixed_in = card.trained.eval_precision
    if threshold is None and dtype != fixed_in:
        print(f"note: the model's threshold was fixed on {fixed_in} scores and this run scores in "
              f"{dtype}: a picture within about 0.01 of it may be called otherwise (add "
              f"--precision {fixed_in} to score as validation did)", file=sys.stderr)  # fmt: skip
    cut = card.threshold if threshold is None else threshold
    started = time.perf_counter()
    rows = score(inputs.rows, model, card.preprocess, cut, torch_device, runtime.batch_size,
                 dtype, overlays, card.smallest_side())  # fmt: skip
    seconds = time.perf_counter() - started
    write_output(render(rows, fmt), output)
    how = f"{torch_device.type} {dtype}"
    print(summary(rows, inputs.skipped, seconds, how), file=sys.stderr)
    if overlays is not None:
        print(overlays.summary(), file=sys.stderr)
    failed = any(r.error is not None for r in rows) or (overlays is not None and overlays.failed)
    return EXIT_SOME_FAILED if failed else EXIT_OK
