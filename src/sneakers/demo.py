"""Synthetic demo sources: deterministic sneaker "photos" and "AI renders" without any network.

Kaggle is unreachable in the default pipeline run, so this module writes stand-ins for the three
real sources. Each picture is drawn from a seed with PIL, so every run writes the same bytes.
Picture ``i`` of a kind depends only on (seed, kind, i, size), which lets the compiled source
reproduce photos and renders exactly, whatever the other sources' counts are.

Photos and renders differ in content the way camera photos and generator output do (sensor
noise, defocus, uneven light and muted colours versus smooth vivid gradients, gloss and soft
shadows), so a small CNN can tell them apart after both are standardized identically.
"""

from __future__ import annotations

import colorsys
import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageDraw, ImageFilter

from sneakers.parallel import parallel_map
from sneakers.params import Demo, DemoCompiled, DemoPhotos

BRANDS = ("adidas", "converse", "nike")
KIND_CODES = {"photos": 1, "renders": 2}
COMPILED_SIZE = 240
EXTRA_START = 100_000  # picture indices of compiled-only pictures, far beyond any source count
BROKEN_INDEX = 200_000  # picture index of the truncated JPEG in the compiled source
SUPERSAMPLE = 3  # photos are drawn this many times larger, then reduced for anti-aliasing
RENDER_SUPERSAMPLE = 2

Color = tuple[int, int, int]
Points = np.ndarray  # (n, 2) shoe-local coordinates: x heel->toe in [0, 1], y up from the ground


# --------------------------------------------------------------------------------------------
# Randomness and colour helpers


def _rng(seed: int, kind: str, index: int) -> np.random.Generator:
    """One generator per picture, so a picture never depends on how many others are drawn."""
    return np.random.default_rng([seed, KIND_CODES[kind], index])


def _hsv(h: float, s: float, v: float) -> Color:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def _shade(color: Color, factor: float) -> Color:
    return tuple(min(255, max(0, round(c * factor))) for c in color)  # type: ignore[return-value]


def _luma(color: Color) -> float:
    return 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]


# --------------------------------------------------------------------------------------------
# Palettes


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


def _photo_palette(rng: np.random.Generator) -> Palette:
    """Muted, everyday colourways, as in product photos of worn or retail shoes."""
    style = rng.choice(["white", "black", "grey", "muted", "muted"])
    if style == "white":
        upper = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.06), rng.uniform(0.86, 0.96))
    elif style == "black":
        upper = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.15), rng.uniform(0.1, 0.22))
    elif style == "grey":
        upper = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.1), rng.uniform(0.4, 0.7))
    else:
        upper = _hsv(rng.uniform(0, 1), rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.75))
    light = _luma(upper) > 140
    mark = (
        _hsv(rng.choice([0.0, 0.6, 0.08]), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.55))
        if light
        else _hsv(0, 0, rng.uniform(0.85, 0.95))
    )
    midsole = [(236, 232, 222), (244, 243, 240), (196, 150, 100), (40, 40, 42)][
        rng.choice(4, p=[0.45, 0.35, 0.12, 0.08])
    ]
    return Palette(
        upper=upper,
        overlay=_shade(upper, rng.uniform(0.78, 0.92)),
        mark=mark,
        midsole=midsole,
        outsole=_shade(midsole, rng.uniform(0.45, 0.7)),
        laces=upper if rng.random() < 0.4 else _hsv(0, 0, rng.uniform(0.8, 0.95)),
        lining=_shade(upper, rng.uniform(0.35, 0.55)),
    )


def _render_palette(rng: np.random.Generator) -> Palette:
    """Saturated, neon or pastel colourways, typical of generator output."""
    hue = rng.uniform(0, 1)
    style = rng.choice(["vivid", "vivid", "pastel", "white"])
    if style == "vivid":
        upper = _hsv(hue, rng.uniform(0.7, 1.0), rng.uniform(0.75, 1.0))
    elif style == "pastel":
        upper = _hsv(hue, rng.uniform(0.3, 0.5), rng.uniform(0.92, 1.0))
    else:
        upper = _hsv(hue, rng.uniform(0.0, 0.08), rng.uniform(0.93, 1.0))
    accent_hue = hue + rng.uniform(0.3, 0.7)
    midsole = _hsv(accent_hue, rng.uniform(0.0, 0.9), rng.uniform(0.85, 1.0))
    return Palette(
        upper=upper,
        overlay=_hsv(hue + rng.uniform(-0.08, 0.08), rng.uniform(0.6, 1.0), rng.uniform(0.55, 0.9)),
        mark=_hsv(accent_hue, rng.uniform(0.75, 1.0), rng.uniform(0.8, 1.0)),
        midsole=midsole,
        outsole=_hsv(accent_hue + 0.1, rng.uniform(0.6, 1.0), rng.uniform(0.35, 0.8)),
        laces=_hsv(accent_hue + 0.5, rng.uniform(0.0, 1.0), rng.uniform(0.85, 1.0)),
        lining=_hsv(hue + 0.5, rng.uniform(0.5, 1.0), rng.uniform(0.3, 0.6)),
    )


# --------------------------------------------------------------------------------------------
# Shoe geometry (shoe-local coordinates)


@dataclass(frozen=True)
class Shoe:
    """Dimensions of one sneaker, in units of its length."""

    brand: str
    outsole: float  # outsole thickness
    sole: float  # outsole + midsole thickness
    collar: float  # height of the heel collar above the ground
    toe: float  # height of the toe box above the ground
    tongue: float  # how far the tongue sticks out above the collar
    spring: float  # toe spring: how far the toe lifts off the ground
    eyelets: int


def _shoe(rng: np.random.Generator, brand: str) -> Shoe:
    high = brand == "converse"
    outsole = rng.uniform(0.022, 0.035)
    sole = outsole + (rng.uniform(0.06, 0.08) if high else rng.uniform(0.04, 0.085))
    return Shoe(
        brand=brand,
        outsole=outsole,
        sole=sole,
        collar=sole + (rng.uniform(0.4, 0.48) if high else rng.uniform(0.2, 0.27)),
        toe=sole + rng.uniform(0.11, 0.15),
        tongue=rng.uniform(0.02, 0.06),
        spring=rng.uniform(0.01, 0.045),
        eyelets=int(rng.integers(7, 9) if high else rng.integers(5, 7)),
    )


def _chaikin(points: Points, iterations: int = 3, closed: bool = True) -> Points:
    """Corner-cutting smoothing: turns a few control points into a smooth outline."""
    pts = np.asarray(points, dtype=np.float64)
    for _ in range(iterations):
        nxt = np.roll(pts, -1, axis=0) if closed else pts[1:]
        cur = pts if closed else pts[:-1]
        q = 0.75 * cur + 0.25 * nxt
        r = 0.25 * cur + 0.75 * nxt
        mid = np.stack([q, r], axis=1).reshape(-1, 2)
        pts = mid if closed else np.vstack([pts[:1], mid, pts[-1:]])
    return pts


def _ground(shoe: Shoe, x: np.ndarray) -> np.ndarray:
    """Height of the sole's bottom: the toe springs up, the heel is slightly rounded."""
    toe = np.clip((x - 0.72) / 0.28, 0, 1) ** 2 * shoe.spring
    heel = np.clip((0.08 - x) / 0.08, 0, 1) ** 2 * 0.012
    return toe + heel


def _band(shoe: Shoe, low: float, high: float, x0: float = 0.0, x1: float = 1.0) -> Points:
    """A sole layer between two heights above the ground, with rounded ends."""
    xs = np.linspace(x0, x1, 24)
    g = _ground(shoe, xs)
    bottom = np.column_stack([xs, g + low])
    top = np.column_stack([xs, g + high])[::-1]
    return _chaikin(np.vstack([bottom, top]), 2)


def _lace_line(shoe: Shoe) -> tuple[np.ndarray, np.ndarray]:
    """Top edge of the vamp where the laces sit: from the tongue down to the toe box."""
    if shoe.brand == "converse":
        return np.array([0.34, shoe.collar - 0.05]), np.array([0.64, shoe.toe + 0.03])
    return np.array([0.41, shoe.collar - 0.045]), np.array([0.66, shoe.toe + 0.03])


def _upper(shoe: Shoe) -> Points:
    """Side silhouette of the upper: heel counter, collar, tongue, vamp and toe box."""
    s, c, t = shoe.sole, shoe.collar, shoe.toe
    a, b = _lace_line(shoe)
    if shoe.brand == "converse":
        heel = [(0.04, s - 0.01), (0.0, s + 0.12), (0.02, c - 0.1), (0.05, c + 0.01)]
        collar = [(0.18, c - 0.005), (0.29, c - 0.015)]
        tongue = [(0.31, c + shoe.tongue), (0.35, c + shoe.tongue - 0.005)]
    else:
        heel = [(0.035, s - 0.01), (-0.015, s + 0.35 * (c - s)), (0.0, c - 0.02), (0.03, c + 0.015)]
        collar = [(0.15, c + 0.0), (0.3, c + 0.0)]
        tongue = [(0.34, c + shoe.tongue), (0.39, c + shoe.tongue - 0.01)]
    vamp = [tuple(a), tuple(b), (0.82, t), (0.95, t - 0.045), (1.0, s + 0.02), (0.97, s - 0.01)]
    return _chaikin(np.array(heel + collar + tongue + vamp), 3)


def _ankle_opening(shoe: Shoe) -> Points:
    """Inner lining seen between the far collar and the dipping near collar."""
    c = shoe.collar
    if shoe.brand == "converse":
        pts = [(0.07, c - 0.01), (0.18, c - 0.018), (0.3, c - 0.03), (0.17, c - 0.045)]
    else:
        pts = [(0.05, c - 0.005), (0.16, c - 0.014), (0.32, c - 0.012), (0.31, c - 0.035)]
        pts += [(0.18, c - 0.085), (0.06, c - 0.03)]
    return _chaikin(np.array(pts), 3)


def _eyelet_rows(shoe: Shoe) -> tuple[np.ndarray, np.ndarray]:
    """Near-side eyelets below the lace line and far-side eyelets on it."""
    a, b = _lace_line(shoe)
    d = b - a
    normal = np.array([d[1], -d[0]]) / np.hypot(*d)
    normal = normal if normal[1] < 0 else -normal  # points down into the upper
    ts = np.linspace(0.05, 0.95, shoe.eyelets)[:, None]
    line = a + ts * d
    return line + normal * 0.042, line + normal * 0.004


def _swoosh(shoe: Shoe) -> Points:
    """Nike-like swoosh: a hook near the midfoot sweeping into a tail that points at the heel."""
    s = shoe.sole
    p0, p1, p2 = np.array([0.66, s + 0.11]), np.array([0.5, s - 0.04]), np.array([0.1, s + 0.16])
    t = np.linspace(0, 1, 40)[:, None]
    centre = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    tangent = 2 * (1 - t) * (p1 - p0) + 2 * t * (p2 - p1)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    width = 0.075 * np.sqrt(t) * (1 - t) ** 1.2 + 0.004
    return np.vstack([centre + normal * width * 0.35, (centre - normal * width)[::-1]])


def _stripes(shoe: Shoe) -> list[Points]:
    """Adidas-like three parallel slanted stripes from the midsole up to the eyelets."""
    near, _ = _eyelet_rows(shoe)
    xs, ys = near[:, 0], near[:, 1]
    stripes = []
    for k in range(3):
        bottom = 0.43 + 0.075 * k
        top = bottom - 0.055
        y_top = float(np.interp(top, xs, ys)) - 0.018
        y_bottom = shoe.sole + 0.005
        w = 0.019
        stripes.append(
            np.array(
                [(bottom - w, y_bottom), (bottom + w, y_bottom), (top + w, y_top), (top - w, y_top)]
            )
        )
    return stripes


def _star(cx: float, cy: float, r: float) -> Points:
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, r * 0.42)
    return np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)])


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 32) -> Points:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + rx * np.cos(a), cy + ry * np.sin(a)])


# --------------------------------------------------------------------------------------------
# Pose and drawing


@dataclass(frozen=True)
class Pose:
    """Where the shoe sits in the frame: rotation, size, centre and mirroring."""

    angle: float  # degrees
    length: float  # shoe length as a fraction of the image side
    cx: float  # centre, as fractions of the image side
    cy: float
    flip: bool
    mid: float  # local height that lands on the centre

    def affine(self, side: float) -> tuple[np.ndarray, np.ndarray]:
        """Matrix and offset mapping shoe-local points to pixels (y down)."""
        t = np.deg2rad(self.angle)
        rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
        m = rot @ np.diag([1.0, -1.0]) * self.length * side
        if self.flip:
            m = np.diag([-1.0, 1.0]) @ m
        offset = np.array([self.cx, self.cy]) * side - m @ np.array([0.5, self.mid])
        return m, offset

    def pixels(self, pts: Points, side: float) -> list[tuple[float, float]]:
        m, offset = self.affine(side)
        return [tuple(p) for p in np.asarray(pts) @ m.T + offset]

    def height(self, side: int) -> np.ndarray:
        """Shoe-local height above the ground of every pixel centre of a side x side image."""
        m, offset = self.affine(side)
        row = np.linalg.inv(m)[1].astype(np.float32)
        centres = np.arange(side, dtype=np.float32) + 0.5
        return row[0] * (centres[None, :] - offset[0]) + row[1] * (centres[:, None] - offset[1])


def _spread(seed: int, kind: str, index: int, dims: int = 5) -> np.ndarray:
    """Quasi-random point in [0, 1)^dims for picture ``index``: indices cover it evenly.

    Roberts' additive recurrence keeps two pictures of a kind from sharing a pose by chance,
    which would make distinct pictures look alike to perceptual hashes.
    """
    phi = 2.0
    for _ in range(40):
        phi = (1 + phi) ** (1 / (dims + 1))
    alpha = phi ** -np.arange(1.0, dims + 1)
    offset = np.random.default_rng([seed, KIND_CODES[kind]]).random(dims)
    return (offset + index * alpha) % 1.0


def _poses(rng: np.random.Generator, shoe: Shoe, spread: np.ndarray) -> list[Pose]:
    """One shoe, or a pair whose partner stands behind and beside it (drawn first)."""
    pair = rng.random() < 0.3
    length = (0.42 + 0.4 * spread[1]) * (0.8 if pair else 1.0)
    length *= 0.85 if shoe.collar - shoe.sole > 0.3 else 1.0  # keep tall high-tops in frame
    slack = max((1 - length) / 2, 0.05)
    main = Pose(
        angle=-25 + 50 * spread[0],
        length=length,
        cx=0.5 + slack * (2 * spread[2] - 1),
        cy=0.5 + 0.2 * (2 * spread[3] - 1) + (0.08 if pair else 0.0),
        flip=bool(spread[4] < 0.5),
        mid=(shoe.collar + shoe.tongue) / 2,
    )
    if not pair:
        return [main]
    partner = replace(
        main,
        angle=main.angle + rng.uniform(-12, 12),
        cx=main.cx + rng.uniform(-0.15, 0.15),
        cy=main.cy - rng.uniform(0.12, 0.2),
        length=main.length * rng.uniform(0.9, 1.0),
    )
    return [partner, main]


def _draw_shoe(shoe: Shoe, palette: Palette, pose: Pose, side: int) -> Image.Image:
    """Draw the shoe as flat-coloured parts on a transparent canvas."""
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    unit = pose.length * side  # pixels per shoe length

    def poly(pts: Points, color: Color) -> None:
        draw.polygon(pose.pixels(pts, side), fill=(*color, 255))

    def line(pts: Points, color: Color, width: float) -> None:
        draw.line(pose.pixels(pts, side), fill=(*color, 255), width=max(1, round(width * unit)))

    s, c = shoe.sole, shoe.collar
    poly(_upper(shoe), palette.upper)
    poly(_ankle_opening(shoe), palette.lining)
    heel_counter = np.array([(-0.01, s + 0.16), (0.12, s + 0.1), (0.22, s - 0.005), (0.0, s)])
    poly(_chaikin(heel_counter, 2), palette.overlay)
    toe_overlay = _chaikin(
        np.array([(0.72, shoe.toe + 0.01), (0.78, s + 0.04), (0.8, s)]), 2, False
    )
    line(toe_overlay, palette.overlay, 0.008)
    line(_chaikin(np.array([(0.02, s + 0.025), (0.5, s + 0.03), (0.97, s + 0.025)]), 2, False),
         _shade(palette.upper, 0.8), 0.004)  # fmt: skip
    _draw_brand(shoe, palette, poly, line)
    near, far = _eyelet_rows(shoe)
    for k in range(shoe.eyelets - 1):
        line(np.array([near[k], far[k + 1]]), palette.laces, 0.013)
        line(np.array([far[k], near[k + 1]]), _shade(palette.laces, 0.9), 0.013)
    for p in near:
        poly(_ellipse(p[0], p[1], 0.008, 0.008, 12), _shade(palette.upper, 0.45))
    poly(_band(shoe, 0.0, s), palette.midsole)
    poly(_band(shoe, 0.0, shoe.outsole), palette.outsole)
    for x in np.arange(0.04, 0.97, 0.035):
        g = float(_ground(shoe, np.array([x]))[0])
        line(np.array([(x, g), (x + 0.01, g + shoe.outsole * 0.7)]), _shade(palette.outsole, 0.6),
             0.006)  # fmt: skip
    if c - s > 0.3:  # high-tops get a wrap-around heel stripe like canvas sneakers
        line(np.array([(0.0, s * 0.6), (1.0, s * 0.6)]), palette.mark, 0.006)
    return canvas


def _draw_brand(
    shoe: Shoe,
    palette: Palette,
    poly: Callable[[Points, Color], None],
    line: Callable[[Points, Color, float], None],
) -> None:
    """Brand marks: swoosh, three stripes, or converse ankle patch and toe cap."""
    s, c = shoe.sole, shoe.collar
    if shoe.brand == "nike":
        poly(_swoosh(shoe), palette.mark)
        poly(np.array([(-0.012, c - 0.06), (0.035, c - 0.05), (0.035, c + 0.015), (0.0, c)]),
             palette.mark)  # fmt: skip
    elif shoe.brand == "adidas":
        for stripe in _stripes(shoe):
            poly(stripe, palette.mark)
        poly(np.array([(-0.015, s + 0.03), (0.06, s + 0.03), (0.05, s + 0.14), (-0.01, s + 0.14)]),
             palette.mark)  # fmt: skip
    else:
        upper = _upper(shoe)
        cap = upper[(upper[:, 0] > 0.84) & (upper[:, 1] > s - 0.02)]
        poly(np.vstack([cap, [(0.84, s - 0.01)]]), palette.midsole)
        line(np.array([(0.84, s), (0.86, s + 0.06), (0.95, s + 0.1)]), palette.outsole, 0.004)
        cx, cy = 0.14, c - 0.16
        poly(_ellipse(cx, cy, 0.058, 0.058), palette.mark)
        poly(_ellipse(cx, cy, 0.05, 0.05), (246, 244, 238))
        poly(_star(cx, cy, 0.032), _shade(palette.mark, 0.8))


# --------------------------------------------------------------------------------------------
# Backgrounds (float arrays, 0..255)


@lru_cache(maxsize=4)
def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1], cached: every picture of a size shares them."""
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side
    xx, yy = np.broadcast_arrays(centres[None, :], centres[:, None])
    return xx, yy


def _smooth_noise(rng: np.random.Generator, side: int, cells: int) -> np.ndarray:
    """Low-frequency blotches in [-1, 1] (floor texture, uneven light)."""
    small = Image.fromarray((rng.uniform(0, 255, (cells, cells))).astype(np.uint8), "L")
    big = np.asarray(small.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32)
    return big / 127.5 - 1.0


def _light_pools(rng: np.random.Generator, side: int, count: int, strength: float) -> np.ndarray:
    """Sum of soft round pools of light (positive) and shade (negative), like off-frame lamps."""
    x, y = _grid(side)
    field = np.zeros((side, side), np.float32)
    for _ in range(count):
        cx, cy = rng.uniform(-0.1, 1.1, 2)
        width = rng.uniform(0.08, 0.3)
        gain = rng.uniform(0.5, 1.0) * strength * rng.choice([-1.0, 1.0])
        field += gain * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * width**2))
    return field


def _mix(a: Color, b: Color, t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0, 1)[..., None]
    return np.array(a, np.float32) * (1 - t) + np.array(b, np.float32) * t


def _photo_background(rng: np.random.Generator, side: int) -> np.ndarray:
    """White sweep, light-grey studio paper, or a wall meeting a wooden/concrete floor."""
    x, y = _grid(side)
    kind = rng.choice(["white", "grey", "floor", "floor"])
    if kind in ("white", "grey"):
        level = rng.uniform(225, 250) if kind == "white" else rng.uniform(175, 215)
        tint = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.025, 0.025, 3)
        base = level * tint
        top, bottom = _shade(tuple(base), 1.0), _shade(tuple(base), rng.uniform(0.88, 1.05))
        return _mix(top, bottom, y + _smooth_noise(rng, side, 4) * 0.05)  # type: ignore[arg-type]
    horizon = rng.uniform(0.25, 0.6) + (x - 0.5) * rng.uniform(-0.25, 0.25)
    wall = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.15), rng.uniform(0.75, 0.95))
    if rng.random() < 0.5:
        wood = _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.55), rng.uniform(0.45, 0.8))
        planks = np.floor((x + y * rng.uniform(-0.4, 0.4)) * rng.uniform(5, 9))
        grain = np.sin(planks * 12.9898) * 0.08 + _smooth_noise(rng, side, 12) * 0.05
        floor = np.array(wood, np.float32) * (1 + grain[..., None])
    else:
        concrete = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.06), rng.uniform(0.5, 0.75))
        floor = np.array(concrete, np.float32) * (
            1 + _smooth_noise(rng, side, 16)[..., None] * 0.07
        )
    soft = 1.0 / (1.0 + np.exp(-(y - horizon) * side * 0.25))
    return np.array(wall, np.float32) * (1 - soft[..., None]) + floor * soft[..., None]


def _render_background(rng: np.random.Generator, side: int) -> np.ndarray:
    """Dramatic gradients, spotlit dark stages, pastel cycloramas, with optional bokeh orbs."""
    x, y = _grid(side)
    hue = rng.uniform(0, 1)
    kind = rng.choice(["gradient", "spotlight", "pastel", "dark"])
    if kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = (x - 0.5) * np.cos(a) + (y - 0.5) * np.sin(a) + 0.5
        c0 = _hsv(hue, rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0))
        c1 = _hsv(hue + rng.uniform(0.15, 0.5), rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0))
        bg = _mix(c0, c1, t)
    elif kind == "spotlight":
        r = np.hypot(x - rng.uniform(0.35, 0.65), y - rng.uniform(0.3, 0.6))
        bright = _hsv(hue, rng.uniform(0.4, 0.9), 1.0)
        bg = _mix(bright, _hsv(hue + 0.05, 0.9, rng.uniform(0.05, 0.25)), r / rng.uniform(0.5, 0.8))
    elif kind == "pastel":
        top = _hsv(hue, rng.uniform(0.12, 0.35), rng.uniform(0.9, 1.0))
        bottom = _hsv(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.2, 0.45), rng.uniform(0.8, 0.95))
        bg = _mix(top, bottom, (y - rng.uniform(0.4, 0.7)) * 3 + 0.5)
    else:
        gx, gy = rng.uniform(0.2, 0.8, 2)
        glow = np.exp(-(((x - gx) ** 2 + (y - gy) ** 2) / rng.uniform(0.03, 0.1)))
        bg = _mix((8, 8, 14), _hsv(hue, rng.uniform(0.7, 1.0), rng.uniform(0.5, 0.9)), glow)
    for _ in range(int(rng.integers(0, 6))):
        r = np.hypot(x - rng.uniform(0, 1), y - rng.uniform(0, 1))
        orb = np.clip(1 - r / rng.uniform(0.03, 0.09), 0, 1) ** 2 * rng.uniform(0.2, 0.5)
        bg = bg + (255 - bg) * orb[..., None]
    for _ in range(int(rng.integers(0, 3))):
        bg = _sphere(rng, bg, x, y)
    return bg


def _sphere(rng: np.random.Generator, bg: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A smooth shaded ball floating in the backdrop, a common generator prop."""
    cx, cy, r = rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.18)
    inside = np.clip((1 - np.hypot(x - cx, y - cy) / r) * r * x.shape[0] / 1.5, 0, 1)[..., None]
    lit = np.clip(1 - np.hypot(x - cx + 0.35 * r, y - cy + 0.35 * r) / (1.6 * r), 0, 1)
    color = _hsv(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.7, 1.0))
    ball = np.array(color, np.float32) * (0.45 + 0.6 * lit[..., None])
    return bg * (1 - inside) + ball * inside


# --------------------------------------------------------------------------------------------
# Finishes


def _shadow(pose: Pose, side: int, spread: float, lift: float) -> np.ndarray:
    """Blurred ellipse under the sole, in [0, 1]."""
    mask = Image.new("L", (side, side), 0)
    ellipse = _ellipse(0.5, -lift, 0.52, 0.03 + spread * 0.3, 48)
    ImageDraw.Draw(mask).polygon(pose.pixels(ellipse, side), fill=255)
    blurred = mask.filter(ImageFilter.GaussianBlur(side * spread))
    return np.asarray(blurred, dtype=np.float32) / 255.0


def _split(layer: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(layer, dtype=np.float32)
    return arr[..., :3], arr[..., 3:] / 255.0


def _photo_finish(rng: np.random.Generator, img: np.ndarray) -> Image.Image:
    """Camera look: uneven light, colour cast, slight defocus and sensor noise."""
    size = img.shape[0]
    x, y = _grid(size)
    a = rng.uniform(0, 2 * np.pi)
    light = 1 + rng.uniform(0.06, 0.2) * ((x - 0.5) * np.cos(a) + (y - 0.5) * np.sin(a))
    light += _light_pools(rng, size, 8, 0.28)
    light -= rng.uniform(0.08, 0.3) * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    cast = 1 + rng.uniform(-0.04, 0.04, 3).astype(np.float32)
    img = img * light[..., None] * cast
    blurred = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.4, 1.0) * size / 240)
    )
    sigma = rng.uniform(4, 8)
    noise = rng.standard_normal((size, size, 1), dtype=np.float32) * sigma
    noise = noise + rng.standard_normal((size, size, 3), dtype=np.float32) * sigma * 0.4
    out = np.asarray(blurred, dtype=np.float32) + noise
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def _photo(seed: int, index: int, size: int) -> tuple[Image.Image, int]:
    """A product photo of a muted shoe (or pair) on a plain or floor background; and its quality."""
    rng = _rng(seed, "photos", index)
    shoe = _shoe(rng, BRANDS[index % len(BRANDS)])
    palette = _photo_palette(rng)
    poses = _poses(rng, shoe, _spread(seed, "photos", index))
    quality = int(rng.integers(85, 96))
    img = _photo_background(rng, size)
    for pose in poses:
        shadow = _shadow(pose, size, rng.uniform(0.015, 0.03), 0.0)
        img = img * (1 - shadow[..., None] * rng.uniform(0.25, 0.45))
        rgb, alpha = _split(_draw_shoe(shoe, palette, pose, size * SUPERSAMPLE).reduce(SUPERSAMPLE))
        img = img * (1 - alpha) + rgb * alpha
    return _photo_finish(rng, img), quality


def _highlights(shoe: Shoe, pose: Pose, side: int, blur: float) -> np.ndarray:
    """Glossy specular streaks along the toe box, heel counter and midsole, in [0, 1]."""
    mask = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(mask)
    unit = pose.length * side
    s, t = shoe.sole, shoe.toe
    strokes = [
        [(0.7, t + 0.01), (0.84, t - 0.012), (0.94, t - 0.05)],
        [(0.005, s + 0.05), (0.0, s + 0.15)],
        [(0.1, s - 0.012), (0.6, s - 0.01), (0.9, s - 0.012)],
        [(0.45, s + 0.07), (0.6, s + 0.08)],
    ]
    for stroke in strokes:
        pts = _chaikin(np.array(stroke), 2, False)
        draw.line(pose.pixels(pts, side), fill=255, width=max(1, round(0.016 * unit)))
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(blur * side)), np.float32) / 255.0


def _glossy_shoe(
    rng: np.random.Generator, img: np.ndarray, shoe: Shoe, palette: Palette, pose: Pose
) -> np.ndarray:
    """Composite one studio-lit shoe: lit from above, with blurred specular highlights."""
    side = img.shape[0]
    layer = _draw_shoe(shoe, palette, pose, side * RENDER_SUPERSAMPLE).reduce(RENDER_SUPERSAMPLE)
    rgb, alpha = _split(layer)
    shading = 0.7 + 0.45 * np.clip(pose.height(side) / shoe.collar, 0, 1)
    gloss = _highlights(shoe, pose, side, rng.uniform(0.002, 0.006)) * rng.uniform(0.8, 1.0)
    rgb = rgb * shading[..., None]
    rgb = rgb + (255 - rgb) * gloss[..., None]
    return img * (1 - alpha) + rgb * alpha


def _dramatic_light(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Uneven studio light and a coloured atmospheric haze over the whole scene."""
    side = img.shape[0]
    light = 1 + _light_pools(rng, side, 6, 0.3)
    haze = np.clip(_light_pools(rng, side, 3, 1.0), 0, 1) * rng.uniform(40, 90)
    tint = np.array(_hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.8), 1.0), np.float32) / 255
    return img * light[..., None] + haze[..., None] * tint


def _render(seed: int, index: int, size: int) -> tuple[str, Image.Image]:
    """A generator-like render: vivid backdrop, glossy shoe (or pair), soft shadow; and its name.

    Drawn at half resolution and upsampled bicubically, like many image generators' outputs.
    """
    rng = _rng(seed, "renders", index)
    name = "".join(chr(ord("a") + int(k)) for k in rng.integers(0, 26, 11))
    shoe = _shoe(rng, str(rng.choice(BRANDS)))
    palette = _render_palette(rng)
    poses = _poses(rng, shoe, _spread(seed, "renders", index))
    half = max(size // 2, 1)
    img = _render_background(rng, half)
    lift = rng.choice([0.0, rng.uniform(0.05, 0.12)])  # some sneakers float above the floor
    for pose in poses:
        shadow = _shadow(pose, half, rng.uniform(0.03, 0.06), lift)
        img = img * (1 - shadow[..., None] * rng.uniform(0.35, 0.65))
        img = _glossy_shoe(rng, img, shoe, palette, pose)
    img = _dramatic_light(rng, img)
    small = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return name, small.resize((size, size), Image.Resampling.BICUBIC)


# --------------------------------------------------------------------------------------------
# Writers


@lru_cache(maxsize=1)
def _srgb_icc() -> bytes:
    """sRGB profile with its creation date zeroed, so files embedding it stay reproducible."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = bytes(12)
    return bytes(data)


def _jpeg(im: Image.Image, quality: int, icc: bool = False) -> bytes:
    buf = io.BytesIO()
    extra = {"icc_profile": _srgb_icc()} if icc else {}
    im.save(buf, "JPEG", quality=quality, subsampling=2, optimize=False, **extra)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _photo_name(index: int) -> str:
    return f"{BRANDS[index % len(BRANDS)]}_{index}"


def _reencode(jpeg: bytes, quality: int) -> bytes:
    """Decode a photo's JPEG and save it again, as a dataset compiler re-encoding images does."""
    im = Image.open(io.BytesIO(jpeg)).convert("RGB")
    if im.size != (COMPILED_SIZE, COMPILED_SIZE):
        im = im.resize((COMPILED_SIZE, COMPILED_SIZE), Image.Resampling.LANCZOS)
    return _jpeg(im, quality)


def _photo_jpeg(seed: int, index: int, size: int) -> bytes:
    im, quality = _photo(seed, index, size)
    return _jpeg(im, quality)


# --------------------------------------------------------------------------------------------
# Sources


def _photo_file(index: int, seed: int, size: int) -> bytes:
    return _photo_jpeg(seed, index, size)


def _render_file(index: int, seed: int, size: int) -> tuple[str, bytes]:
    name, im = _render(seed, index, size)
    return name, _png(im)


def _compiled_real_file(index: int, seed: int, size: int) -> bytes:
    return _reencode(_photo_jpeg(seed, index, size), 95)


def _compiled_ai_file(index: int, seed: int, size: int) -> tuple[str, bytes]:
    name, im = _render(seed, index, size)
    small = im.resize((COMPILED_SIZE, COMPILED_SIZE), Image.Resampling.LANCZOS)
    return name, _jpeg(small, 90, icc=True)


def _draw(fn: Callable[..., Any], indices: list[int], seed: int, size: int, desc: str) -> list:
    """Draw pictures in parallel (one per core), in index order, with a progress bar."""
    return list(parallel_map(partial(fn, seed=seed, size=size), indices, workers=0, desc=desc))


def _indices(settings: DemoPhotos) -> list[int]:
    """Picture indices `start` .. `start + count`: a source drawn from a later start (an eval
    source, say) holds pictures that no source from 0 holds."""
    return list(range(settings.start, settings.start + settings.count))


def _write_photos(settings: DemoPhotos, out_dir: Path, seed: int) -> list[Path]:
    """Kaggle nike-adidas-converse layout: train/test split by index, one folder per brand."""
    indices = _indices(settings)
    files = _draw(_photo_file, indices, seed, settings.size, "demo photos")
    written = []
    for i, data in zip(indices, files, strict=True):
        split = "test" if i % 5 == 4 else "train"
        brand = BRANDS[i % len(BRANDS)]
        written.append(_write(out_dir / split / brand / f"{_photo_name(i)}.jpg", data))
    return written


def _write_renders(settings: DemoPhotos, out_dir: Path, seed: int) -> list[Path]:
    """MidJourney-like dump: high-resolution PNGs with random names in one folder."""
    indices = _indices(settings)
    files = _draw(_render_file, indices, seed, settings.size, "demo renders")
    return [_write(out_dir / f"{name}.png", data) for name, data in files]


def _write_compiled(settings: DemoCompiled, out_dir: Path, seed: int) -> list[Path]:
    """Compiled real-vs-AI dataset: re-encoded copies of both sources plus its own quirks.

    Besides copies it holds pictures found nowhere else, a near-duplicate pair, OS junk and a
    truncated JPEG, so the pipeline has duplicates, junk and corrupt files to account for.
    """
    photo_size, render_size = settings.photo_size, settings.render_size
    extra_real = range(EXTRA_START, EXTRA_START + settings.extra_real)
    extra_ai = range(EXTRA_START, EXTRA_START + settings.extra_ai)
    real_ids = [*range(settings.real), *extra_real]
    ai_ids = [*range(settings.ai), *extra_ai]
    real_dir, ai_dir = out_dir / "real", out_dir / "ai-midjourney"
    reals = _draw(_compiled_real_file, real_ids, seed, photo_size, "demo compiled real")
    written = [
        _write(real_dir / f"{_photo_name(i)}.jpg", data)
        for i, data in zip(real_ids, reals, strict=True)
    ]
    if real_ids and real_ids[0] == 0:
        again = _reencode(_photo_jpeg(seed, 0, photo_size), 80)
        written.append(_write(real_dir / f"{_photo_name(0)} (1).jpg", again))
    ais = _draw(_compiled_ai_file, ai_ids, seed, render_size, "demo compiled ai")
    written += [_write(ai_dir / f"{name}.jpg", data) for name, data in ais]
    broken = _reencode(_photo_jpeg(seed, BROKEN_INDEX, photo_size), 95)
    written.append(_write(real_dir / "broken_0.jpg", broken[: len(broken) // 2]))
    written.append(_write(out_dir / ".DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(24)))
    apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(16)
    written.append(_write(out_dir / "__MACOSX" / "real" / "._broken_0.jpg", apple_double))
    return written


WRITERS: dict[str, Callable[[Any, Path, int], list[Path]]] = {
    "photos": _write_photos,
    "renders": _write_renders,
    "compiled": _write_compiled,
}


def generate_source(settings: Demo, out_dir: Path, seed: int) -> list[Path]:
    """Write one demo source's files under out_dir (created if missing); return them, sorted.

    Default-run stand-in for the Kaggle sources (see module docstring for the kinds and settings).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return sorted(WRITERS[settings.kind](settings, out_dir, seed))
