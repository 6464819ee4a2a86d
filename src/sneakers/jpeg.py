"""libjpeg's luminance quantization tables, kept once: probe reads a file's quality off them
and the history audit divides DCT coefficients by them."""

from __future__ import annotations

import numpy as np
from PIL import Image

BLOCK = 8
# IJG standard luminance quantization table (ITU T.81, Annex K), natural order.
IJG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
)


def quality_table(quality: int) -> np.ndarray:
    """The 8x8 luminance table libjpeg (and so Pillow) writes for a quality setting."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((IJG_LUMA * scale + 50) // 100, 1, 255)


QUALITY_TABLES = {q: np.sort(quality_table(q), axis=None) for q in range(1, 101)}


def table_of(im: Image.Image) -> np.ndarray:
    """The luminance quantization table of an opened JPEG, 8x8 in natural order."""
    return np.asarray(im.quantization[0], dtype=np.float64).reshape(BLOCK, BLOCK)


def jpeg_quality(im: Image.Image) -> int:
    """Estimate the IJG quality that produced a JPEG's luminance table (exact for libjpeg files).

    Tables are compared sorted, so the zigzag-versus-natural order question cannot bite.
    """
    table = np.sort(np.asarray(im.quantization[0], dtype=np.int64))
    errors = {q: int(np.abs(ref - table).sum()) for q, ref in QUALITY_TABLES.items()}
    return min(errors, key=lambda q: (errors[q], -q))
