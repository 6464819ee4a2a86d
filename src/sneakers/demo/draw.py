"""Where a shoe sits in the frame, and its flat drawing: the layer photos and renders share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from sneakers.demo.colors import KIND_CODES, Color, Palette, shade
from sneakers.demo.shoe import (
    Points,
    Shoe,
    ankle_opening,
    band,
    chaikin,
    ellipse,
    eyelet_rows,
    ground,
    star,
    stripes,
    swoosh,
    upper,
)


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


def quasi_random(seed: int, kind: str, index: int, dims: int = 5) -> np.ndarray:
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


def random_poses(rng: np.random.Generator, shoe: Shoe, spread: np.ndarray) -> list[Pose]:
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


def draw_shoe(shoe: Shoe, palette: Palette, pose: Pose, side: int) -> Image.Image:
    """Draw the shoe as flat-coloured parts on a transparent canvas."""
    canvas = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    unit = pose.length * side  # pixels per shoe length

    def poly(pts: Points, color: Color) -> None:
        draw.polygon(pose.pixels(pts, side), fill=(*color, 255))

    def line(pts: Points, color: Color, width: float) -> None:
        draw.line(pose.pixels(pts, side), fill=(*color, 255), width=max(1, round(width * unit)))

    s, c = shoe.sole, shoe.collar
    poly(upper(shoe), palette.upper)
    poly(ankle_opening(shoe), palette.lining)
    heel_counter = np.array([(-0.01, s + 0.16), (0.12, s + 0.1), (0.22, s - 0.005), (0.0, s)])
    poly(chaikin(heel_counter, 2), palette.overlay)
    toe_overlay = chaikin(np.array([(0.72, shoe.toe + 0.01), (0.78, s + 0.04), (0.8, s)]), 2, False)
    line(toe_overlay, palette.overlay, 0.008)
    seam = chaikin(np.array([(0.02, s + 0.025), (0.5, s + 0.03), (0.97, s + 0.025)]), 2, False)
    line(seam, shade(palette.upper, 0.8), 0.004)
    _draw_brand(shoe, palette, poly, line)
    near, far = eyelet_rows(shoe)
    for k in range(shoe.eyelets - 1):
        line(np.array([near[k], far[k + 1]]), palette.laces, 0.013)
        line(np.array([far[k], near[k + 1]]), shade(palette.laces, 0.9), 0.013)
    for p in near:
        poly(ellipse(p[0], p[1], 0.008, 0.008, 12), shade(palette.upper, 0.45))
    poly(band(shoe, 0.0, s), palette.midsole)
    poly(band(shoe, 0.0, shoe.outsole), palette.outsole)
    for x in np.arange(0.04, 0.97, 0.035):
        g = float(ground(shoe, np.array([x]))[0])
        tread = np.array([(x, g), (x + 0.01, g + shoe.outsole * 0.7)])
        line(tread, shade(palette.outsole, 0.6), 0.006)
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
        poly(swoosh(shoe), palette.mark)
        heel_tab = np.array([(-0.012, c - 0.06), (0.035, c - 0.05), (0.035, c + 0.015), (0.0, c)])
        poly(heel_tab, palette.mark)
    elif shoe.brand == "adidas":
        for stripe in stripes(shoe):
            poly(stripe, palette.mark)
        heel_tab = np.array(
            [(-0.015, s + 0.03), (0.06, s + 0.03), (0.05, s + 0.14), (-0.01, s + 0.14)]
        )
        poly(heel_tab, palette.mark)
    else:
        outline = upper(shoe)
        cap = outline[(outline[:, 0] > 0.84) & (outline[:, 1] > s - 0.02)]
        poly(np.vstack([cap, [(0.84, s - 0.01)]]), palette.midsole)
        line(np.array([(0.84, s), (0.86, s + 0.06), (0.95, s + 0.1)]), palette.outsole, 0.004)
        cx, cy = 0.14, c - 0.16
        poly(ellipse(cx, cy, 0.058, 0.058), palette.mark)
        poly(ellipse(cx, cy, 0.05, 0.05), (246, 244, 238))
        poly(star(cx, cy, 0.032), shade(palette.mark, 0.8))
