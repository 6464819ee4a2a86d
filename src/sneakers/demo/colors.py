"""Per-picture random streams and the colourways that set photos (muted) apart from renders."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

KIND_CODES = {"photos": 1, "renders": 2}

Color = tuple[int, int, int]


def picture_rng(seed: int, kind: str, index: int) -> np.random.Generator:
    """One generator per picture, so a picture never depends on how many others are drawn."""
    return np.random.default_rng([seed, KIND_CODES[kind], index])


def hsv(h: float, s: float, v: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def shade(color: Color, factor: float) -> Color:
    return tuple(min(255, max(0, round(c * factor))) for c in color)  # type: ignore[return-value]


def _luma(color: Color) -> float:
    return 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]


@dataclass(frozen=True)
class Palette:
    """Colours of one shoe's parts."""

    upper: Color
    overlay: Color
    mark: Color
    midsole: Color
    outsole: Color
    laces: Color
    lining: Color


def photo_palette(rng: np.random.Generator) -> Palette:
    """Muted, everyday colourways, as in product photos of worn or retail shoes."""
    style = rng.choice(["white", "black", "grey", "muted", "muted"])
    if style == "white":
        upper = hsv(rng.uniform(0, 1), rng.uniform(0, 0.06), rng.uniform(0.86, 0.96))
    elif style == "black":
        upper = hsv(rng.uniform(0, 1), rng.uniform(0, 0.15), rng.uniform(0.1, 0.22))
    elif style == "grey":
        upper = hsv(rng.uniform(0, 1), rng.uniform(0, 0.1), rng.uniform(0.4, 0.7))
    else:
        upper = hsv(rng.uniform(0, 1), rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.75))
    light = _luma(upper) > 140
    mark = (
        hsv(rng.choice([0.0, 0.6, 0.08]), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.55))
        if light
        else hsv(0, 0, rng.uniform(0.85, 0.95))
    )
    midsole = [(236, 232, 222), (244, 243, 240), (196, 150, 100), (40, 40, 42)][
        rng.choice(4, p=[0.45, 0.35, 0.12, 0.08])
    ]
    return Palette(
        upper=upper,
        overlay=shade(upper, rng.uniform(0.78, 0.92)),
        mark=mark,
        midsole=midsole,
        outsole=shade(midsole, rng.uniform(0.45, 0.7)),
        laces=upper if rng.random() < 0.4 else hsv(0, 0, rng.uniform(0.8, 0.95)),
        lining=shade(upper, rng.uniform(0.35, 0.55)),
    )


def render_palette(rng: np.random.Generator) -> Palette:
    """Saturated, neon or pastel colourways, typical of generator output."""
    hue = rng.uniform(0, 1)
    style = rng.choice(["vivid", "vivid", "pastel", "white"])
    if style == "vivid":
        upper = hsv(hue, rng.uniform(0.7, 1.0), rng.uniform(0.75, 1.0))
    elif style == "pastel":
        upper = hsv(hue, rng.uniform(0.3, 0.5), rng.uniform(0.92, 1.0))
    else:
        upper = hsv(hue, rng.uniform(0.0, 0.08), rng.uniform(0.93, 1.0))
    accent_hue = hue + rng.uniform(0.3, 0.7)
    midsole = hsv(accent_hue, rng.uniform(0.0, 0.9), rng.uniform(0.85, 1.0))
    return Palette(
        upper=upper,
        overlay=hsv(hue + rng.uniform(-0.08, 0.08), rng.uniform(0.6, 1.0), rng.uniform(0.55, 0.9)),
        mark=hsv(accent_hue, rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0)),
        midsole=midsole,
        outsole=hsv(accent_hue + 0.1, rng.uniform(0.6, 1.0), rng.uniform(0.35, 0.8)),
        laces=hsv(accent_hue + 0.5, rng.uniform(0.0, 1.0), rng.uniform(0.85, 1.0)),
        lining=hsv(hue + 0.5, rng.uniform(0.5, 1.0), rng.uniform(0.3, 0.6)),
    )
