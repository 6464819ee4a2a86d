"""Evaluate's history test: does the model score how a file was made rather than what it shows?

A test picture, resampled so that its own grid is gone, is saved as a raw file of one class's
typical history (format, quality, size), then standardized and scored: content fixed, history
swapped. The history audit (`sneakers.audit`) measures the same leak without a model.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from PIL import Image


@dataclass(frozen=True)
class History:
    """How a class's raw files were typically made: format, JPEG quality (if JPEG) and size."""

    format: str
    quality: int | None
    width: int
    height: int

    def describe(self) -> str:
        quality = f" q{self.quality}" if self.quality else ""
        return f"{self.format}{quality} {self.width}x{self.height}"


def dominant_histories(manifest: pd.DataFrame) -> dict[str, History]:
    """Per label, the most common (format, quality, size) among its accepted raw training files."""
    accepted = manifest[(manifest["status"] == "accepted") & (manifest["role"] == "train")]
    out = {}
    for label, rows in accepted.groupby("label"):
        quality = (
            rows["jpeg_quality"].astype("Int64").astype(object).where(rows["format"] == "JPEG")
        )
        keys = pd.DataFrame(
            {
                "format": rows["format"],
                "quality": quality,
                "width": rows["width"],
                "height": rows["height"],
            }
        )
        top = keys.value_counts(dropna=False).index[0]
        fmt, q, w, h = top
        out[str(label)] = History(str(fmt), None if pd.isna(q) else int(q), int(w), int(h))
    return out


def resample(pixels: np.ndarray, scale: float) -> Image.Image:
    """An H x W x 3 picture resized by scale (bicubic): a grid-breaking resample."""
    im = Image.fromarray(pixels)
    return im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC)


def with_history(im: Image.Image, history: History | None) -> bytes:
    """The picture saved as a raw file of that history (resized to its size, its format and
    quality), or losslessly (PNG, size kept) for history None."""
    out = io.BytesIO()
    if history is None:
        im.save(out, "PNG")
        return out.getvalue()
    im = im.resize((history.width, history.height), Image.Resampling.LANCZOS)
    if history.format == "JPEG":
        im.save(out, "JPEG", quality=history.quality or 75, subsampling="4:2:0")
    else:
        im.save(out, history.format)
    return out.getvalue()
