"""`sneakers predict`: score image files with a trained model, prepared exactly as training data.

Every file goes through the standardize stage's own function (`standardize_bytes`, with the
settings stored in the model file), is decoded the way training data is (`data.decode`), and is
scored in batches by one `inference.Scorer`. A file that cannot be scored gets a row with an
error (the reason codes of data/merged/manifest.csv), and the run goes on. Finding and reading
the files is `predict_inputs`; what is written, `predict_output`.

Preprocessing runs in this process, between batches. On 2 CPU cores a 240 px JPEG takes about
1.3 ms to read, standardize and decode against about 30 ms for the seed_cnn forward pass, and
benchmarks/predict_speed.py measures the whole path at 0.93-0.94 of the forward-only speed. A
pool of 2 spawned processes (each imports torch before its first picture) made a 128-image run
30% slower, so there is none.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sneakers import artifact
from sneakers.artifact import DEFAULT_MIN_SIZE, Card
from sneakers.data import CLASS_NAMES
from sneakers.errors import SneakersError
from sneakers.explain import heatmaps
from sneakers.inference import Scorer, resolve_device, resolve_precision
from sneakers.params import RuntimeSettings
from sneakers.predict_inputs import NOT_FOUND, Row, find_inputs, prepare
from sneakers.predict_output import (
    OUTPUT_FORMATS,
    Overlays,
    check_clobber,
    check_output,
    render,
    summary,
    write_output,
)
from sneakers.preprocess import Recipe

PROGRESS_MIN = 64  # show a progress bar (on a terminal) from this many files on
EXIT_OK, EXIT_SOME_FAILED = 0, 2  # usage errors exit with 1 through errors.run_main


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
    scorer: Scorer,
    pre: Recipe,
    threshold: float,
    overlays: Overlays | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
) -> list[Row]:
    """Fill in p_ai and label (or error) on every row, a scorer's batch of images at a time;
    with overlays, also write each scored file's heatmap. Pictures with a side under min_size
    (the model's Card.smallest_side) are refused as too_small."""
    show = None if len(rows) >= PROGRESS_MIN else True  # None: only on a terminal
    with tqdm(total=len(rows), desc="predict", unit="img", disable=show, file=sys.stderr) as bar:
        batch: list[tuple[Row, np.ndarray]] = []
        for item in prepared(rows, pre, bar, min_size):
            batch.append(item)
            if len(batch) == scorer.batch_size:
                score_batch(batch, scorer, threshold, overlays)
                batch = []
        if batch:
            score_batch(batch, scorer, threshold, overlays)
    return rows


def score_batch(
    batch: list[tuple[Row, np.ndarray]],
    scorer: Scorer,
    threshold: float,
    overlays: Overlays | None = None,
) -> None:
    """Stack as data.ShardImages.stack does, then score with the pipeline's Scorer."""
    images = torch.from_numpy(np.stack([p for _, p in batch])).permute(0, 3, 1, 2).contiguous()
    p_ai = scorer.proba(images)
    for (row, _), p in zip(batch, p_ai, strict=True):
        row.p_ai = float(p)
        row.label = CLASS_NAMES[1] if p >= threshold else CLASS_NAMES[0]
    if overlays is not None:
        heat = heatmaps(scorer.model, images, scorer.device)
        for (row, pixels), h in zip(batch, heat, strict=True):
            overlays.save(row.path, pixels, h)


def card_notes(card: Card, model_path: Path, precision: str, threshold: float | None) -> list[str]:
    """What the user should know about scoring with this model file in this precision."""
    notes = []
    if card.min_size is None:
        notes.append(
            f"note: {model_path} does not record merge.min_size (written before model files "
            f"did): pictures under {card.smallest_side()} px, merge's default, are refused as "
            "too_small"
        )
    fixed_in = card.trained.eval_precision
    if threshold is None and precision != fixed_in:
        notes.append(
            f"note: the model's threshold was fixed on {fixed_in} scores and this run scores in "
            f"{precision}: a picture within about 0.01 of it may be called otherwise (add "
            f"--precision {fixed_in} to score as validation did)"
        )
    return notes


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
    device = resolve_device(runtime.device, "--device")
    precision = resolve_precision(runtime.precision, device)
    loaded, model = artifact.load(model_path, device)
    scorer = Scorer(model, device, runtime.batch_size, precision)
    card = loaded.card
    shown = [r.path for r in inputs.rows]
    overlays = None if explain is None else Overlays(explain, shown, [output] if output else [])
    for note in [*inputs.notes, *card_notes(card, model_path, precision, threshold)]:
        print(note, file=sys.stderr)
    cut = card.threshold if threshold is None else threshold
    started = time.perf_counter()
    rows = score(inputs.rows, scorer, card.preprocess, cut, overlays, card.smallest_side())
    seconds = time.perf_counter() - started
    write_output(render(rows, fmt), output)
    print(summary(rows, inputs.skipped, seconds, f"{device.type} {precision}"), file=sys.stderr)
    if overlays is not None:
        print(overlays.summary(), file=sys.stderr)
    failed = any(r.error is not None for r in rows) or (overlays is not None and overlays.failed)
    return EXIT_SOME_FAILED if failed else EXIT_OK
