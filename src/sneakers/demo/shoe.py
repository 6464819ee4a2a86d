"""Sneaker outlines in shoe-local units, so one geometry serves every pose, size and brand."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BRANDS = ("adidas", "converse", "nike")

Points = np.ndarray  # (n, 2) shoe-local coordinates: x heel->toe in [0, 1], y up from the ground


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


def random_shoe(rng: np.random.Generator, brand: str) -> Shoe:
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


def chaikin(points: Points, iterations: int = 3, closed: bool = True) -> Points:
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


def ground(shoe: Shoe, x: np.ndarray) -> np.ndarray:
    """Height of the sole's bottom: the toe springs up, the heel is slightly rounded."""
    toe = np.clip((x - 0.72) / 0.28, 0, 1) ** 2 * shoe.spring
    heel = np.clip((0.08 - x) / 0.08, 0, 1) ** 2 * 0.012
    return toe + heel


def band(shoe: Shoe, low: float, high: float, x0: float = 0.0, x1: float = 1.0) -> Points:
    """A sole layer between two heights above the ground, with rounded ends."""
    xs = np.linspace(x0, x1, 24)
    g = ground(shoe, xs)
    bottom = np.column_stack([xs, g + low])
    top = np.column_stack([xs, g + high])[::-1]
    return chaikin(np.vstack([bottom, top]), 2)


def _lace_line(shoe: Shoe) -> tuple[np.ndarray, np.ndarray]:
    """Top edge of the vamp where the laces sit: from the tongue down to the toe box."""
    if shoe.brand == "converse":
        return np.array([0.34, shoe.collar - 0.05]), np.array([0.64, shoe.toe + 0.03])
    return np.array([0.41, shoe.collar - 0.045]), np.array([0.66, shoe.toe + 0.03])


def upper(shoe: Shoe) -> Points:
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
    return chaikin(np.array(heel + collar + tongue + vamp), 3)


def ankle_opening(shoe: Shoe) -> Points:
    """Inner lining seen between the far collar and the dipping near collar."""
    c = shoe.collar
    if shoe.brand == "converse":
        pts = [(0.07, c - 0.01), (0.18, c - 0.018), (0.3, c - 0.03), (0.17, c - 0.045)]
    else:
        pts = [(0.05, c - 0.005), (0.16, c - 0.014), (0.32, c - 0.012), (0.31, c - 0.035)]
        pts += [(0.18, c - 0.085), (0.06, c - 0.03)]
    return chaikin(np.array(pts), 3)


def eyelet_rows(shoe: Shoe) -> tuple[np.ndarray, np.ndarray]:
    """Near-side eyelets below the lace line and far-side eyelets on it."""
    a, b = _lace_line(shoe)
    d = b - a
    normal = np.array([d[1], -d[0]]) / np.hypot(*d)
    normal = normal if normal[1] < 0 else -normal  # points down into the upper
    ts = np.linspace(0.05, 0.95, shoe.eyelets)[:, None]
    line = a + ts * d
    return line + normal * 0.042, line + normal * 0.004


def swoosh(shoe: Shoe) -> Points:
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


def stripes(shoe: Shoe) -> list[Points]:
    """Adidas-like three parallel slanted stripes from the midsole up to the eyelets."""
    near, _ = eyelet_rows(shoe)
    xs, ys = near[:, 0], near[:, 1]
    out = []
    for k in range(3):
        bottom = 0.43 + 0.075 * k
        top = bottom - 0.055
        y_top = float(np.interp(top, xs, ys)) - 0.018
        y_bottom = shoe.sole + 0.005
        w = 0.019
        out.append(
            np.array(
                [(bottom - w, y_bottom), (bottom + w, y_bottom), (top + w, y_top), (top - w, y_top)]
            )
        )
    return out


def star(cx: float, cy: float, r: float) -> Points:
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, r, r * 0.42)
    return np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)])


def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 32) -> Points:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + rx * np.cos(a), cy + ry * np.sin(a)])
