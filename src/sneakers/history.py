"""History audit: do the pixels still tell how each class's files were made?

Identical headers can hide two histories (docs: "Why standardize"): a q95 photo re-encoded at
q90 on the same 8x8 grid keeps a double-quantization trace in its DCT coefficients that a q90
image re-encoded at q90 does not (Barni et al. 2017). The audit reads those coefficients and
fits a classifier on their histograms alone, on the pipeline's own split: on the raw files, on
the standardized ones and, as a control, on the standardized ones after a grid-breaking
resample and re-encode (which erases an aligned double-JPEG trace). Standardized well above
its control means standardization left a class-specific history in the pixels.

The coefficients are computed, not read from the file: decode the luminance plane (Pillow's
JPEG decoder in YCbCr mode, so no colour conversion), blockwise orthonormal DCT with SciPy, and
divide by the file's own luminance quantization table. That recovers the stored integers up to
the decoder's rounding, needs no compiled JPEG reader, and works for PNGs and resampled
pictures alike (divided by the standardized quality's table).

The same module builds the evaluate stage's counterfactual: a test picture, resampled so that
its own grid is gone, saved as a raw file of one class's typical history (format, quality,
size), then standardized and scored: content fixed, history swapped.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
import scipy.fft
from PIL import Image

from sneakers.preprocess import encode_jpeg

BLOCK = 8
# The 15 lowest AC frequencies in JPEG's zig-zag order, as (row, column) of the 8x8 block:
# most of an image's non-zero coefficients, where double quantization shows first.
ZIGZAG_AC = (
    (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1),
    (3, 0), (4, 0), (3, 1), (2, 2), (1, 3), (0, 4), (0, 5),
)  # fmt: skip
VALUES = np.arange(-12, 13)  # histogram bins: quantized values -12..12, one bin each


@cache
def quality_table(quality: int) -> np.ndarray:
    """libjpeg's luminance table at a quality, 8x8, as Pillow writes it."""
    probe = Image.new("L", (BLOCK, BLOCK))
    return table_of(Image.open(io.BytesIO(encode_jpeg(probe, quality))))


def table_of(im: Image.Image) -> np.ndarray:
    """The luminance quantization table of an opened JPEG, 8x8 in natural order."""
    return np.asarray(im.quantization[0], dtype=np.float64).reshape(BLOCK, BLOCK)


def luminance(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """The Y plane as float, and the file's luminance table (None if it is no JPEG)."""
    im = Image.open(io.BytesIO(data))
    if im.format == "JPEG":
        im.draft("YCbCr", im.size)  # the decoder's own Y plane, not Y recomputed from RGB
        y = np.asarray(im.convert("YCbCr"))[..., 0]
        return y.astype(np.float64), table_of(im)
    return np.asarray(im.convert("L"), dtype=np.float64), None


def coefficient_histograms(y: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per-frequency histograms of quantized DCT coefficients over the picture's whole 8x8
    blocks: 15 frequencies x 25 values, each histogram a share of the blocks."""
    h, w = (d - d % BLOCK for d in y.shape)
    if h == 0 or w == 0:
        return np.zeros(len(ZIGZAG_AC) * len(VALUES))
    blocks = (y[:h, :w] - 128.0).reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2)
    coefficients = scipy.fft.dctn(blocks, type=2, axes=(2, 3), norm="ortho") / table
    rows, cols = zip(*ZIGZAG_AC, strict=True)
    quantized = np.rint(coefficients[:, :, rows, cols]).reshape(-1, len(ZIGZAG_AC))
    edges = np.append(VALUES - 0.5, VALUES[-1] + 0.5)
    counts = [np.histogram(quantized[:, k], bins=edges)[0] for k in range(len(ZIGZAG_AC))]
    return np.concatenate(counts) / len(quantized)


def history_features(data: bytes, quality: int) -> np.ndarray:
    """The audit's features for one file: the histograms of its luminance DCT coefficients,
    quantized by its own table (or by `quality`'s where it has none)."""
    y, table = luminance(data)
    return coefficient_histograms(y, quality_table(quality) if table is None else table)


def grid_break(data: bytes, scale: float, quality: int) -> bytes:
    """The control: resample by `scale` (bicubic), crop the centre back to the original size,
    re-encode at `quality`. The 8x8 grid moves and an aligned double-JPEG trace is gone."""
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    h, w = pixels.shape[:2]
    big = resample(pixels, scale)
    left, top = (big.width - w) // 2, (big.height - h) // 2
    return encode_jpeg(big.crop((left, top, left + w, top + h)), quality)


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
        keys = pd.DataFrame({"format": rows["format"], "quality": quality,
                             "width": rows["width"], "height": rows["height"]})  # fmt: skip
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
