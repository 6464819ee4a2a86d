"""Whole pictures around the drawn shoe, camera photo or generator render, each from a seed."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from sneakers.demo.colors import (
    Color,
    Palette,
    hsv,
    photo_palette,
    picture_rng,
    render_palette,
    shade,
)
from sneakers.demo.draw import Pose, draw_shoe, quasi_random, random_poses
from sneakers.demo.shoe import BRANDS, Shoe, chaikin, ellipse, random_shoe

SUPERSAMPLE = 3  # photos are drawn this many times larger, then reduced for anti-aliasing
RENDER_SUPERSAMPLE = 2


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
        top, bottom = shade(tuple(base), 1.0), shade(tuple(base), rng.uniform(0.88, 1.05))
        return _mix(top, bottom, y + _smooth_noise(rng, side, 4) * 0.05)  # type: ignore[arg-type]
    horizon = rng.uniform(0.25, 0.6) + (x - 0.5) * rng.uniform(-0.25, 0.25)
    wall = hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.15), rng.uniform(0.75, 0.95))
    if rng.random() < 0.5:
        wood = hsv(rng.uniform(0.05, 0.1), rng.uniform(0.3, 0.55), rng.uniform(0.45, 0.8))
        planks = np.floor((x + y * rng.uniform(-0.4, 0.4)) * rng.uniform(5, 9))
        grain = np.sin(planks * 12.9898) * 0.08 + _smooth_noise(rng, side, 12) * 0.05
        floor = np.array(wood, np.float32) * (1 + grain[..., None])
    else:
        concrete = hsv(rng.uniform(0, 1), rng.uniform(0, 0.06), rng.uniform(0.5, 0.75))
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
        c0 = hsv(hue, rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0))
        c1 = hsv(hue + rng.uniform(0.15, 0.5), rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0))
        bg = _mix(c0, c1, t)
    elif kind == "spotlight":
        r = np.hypot(x - rng.uniform(0.35, 0.65), y - rng.uniform(0.3, 0.6))
        bright = hsv(hue, rng.uniform(0.4, 0.9), 1.0)
        bg = _mix(bright, hsv(hue + 0.05, 0.9, rng.uniform(0.05, 0.25)), r / rng.uniform(0.5, 0.8))
    elif kind == "pastel":
        top = hsv(hue, rng.uniform(0.12, 0.35), rng.uniform(0.9, 1.0))
        bottom = hsv(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.2, 0.45), rng.uniform(0.8, 0.95))
        bg = _mix(top, bottom, (y - rng.uniform(0.4, 0.7)) * 3 + 0.5)
    else:
        gx, gy = rng.uniform(0.2, 0.8, 2)
        glow = np.exp(-(((x - gx) ** 2 + (y - gy) ** 2) / rng.uniform(0.03, 0.1)))
        bg = _mix((8, 8, 14), hsv(hue, rng.uniform(0.7, 1.0), rng.uniform(0.5, 0.9)), glow)
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
    color = hsv(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.7, 1.0))
    ball = np.array(color, np.float32) * (0.45 + 0.6 * lit[..., None])
    return bg * (1 - inside) + ball * inside


def _shadow(pose: Pose, side: int, spread: float, lift: float) -> np.ndarray:
    """Blurred ellipse under the sole, in [0, 1]."""
    mask = Image.new("L", (side, side), 0)
    outline = ellipse(0.5, -lift, 0.52, 0.03 + spread * 0.3, 48)
    ImageDraw.Draw(mask).polygon(pose.pixels(outline, side), fill=255)
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


def photo(seed: int, index: int, size: int) -> tuple[Image.Image, int]:
    """A product photo of a muted shoe (or pair) on a plain or floor background; and its quality."""
    rng = picture_rng(seed, "photos", index)
    shoe = random_shoe(rng, BRANDS[index % len(BRANDS)])
    palette = photo_palette(rng)
    poses = random_poses(rng, shoe, quasi_random(seed, "photos", index))
    quality = int(rng.integers(85, 96))
    img = _photo_background(rng, size)
    for pose in poses:
        shadow = _shadow(pose, size, rng.uniform(0.015, 0.03), 0.0)
        img = img * (1 - shadow[..., None] * rng.uniform(0.25, 0.45))
        rgb, alpha = _split(draw_shoe(shoe, palette, pose, size * SUPERSAMPLE).reduce(SUPERSAMPLE))
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
        pts = chaikin(np.array(stroke), 2, False)
        draw.line(pose.pixels(pts, side), fill=255, width=max(1, round(0.016 * unit)))
    return np.asarray(mask.filter(ImageFilter.GaussianBlur(blur * side)), np.float32) / 255.0


def _glossy_shoe(
    rng: np.random.Generator, img: np.ndarray, shoe: Shoe, palette: Palette, pose: Pose
) -> np.ndarray:
    """Composite one studio-lit shoe: lit from above, with blurred specular highlights."""
    side = img.shape[0]
    layer = draw_shoe(shoe, palette, pose, side * RENDER_SUPERSAMPLE).reduce(RENDER_SUPERSAMPLE)
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
    tint = np.array(hsv(rng.uniform(0, 1), rng.uniform(0.2, 0.8), 1.0), np.float32) / 255
    return img * light[..., None] + haze[..., None] * tint


def render(seed: int, index: int, size: int) -> tuple[str, Image.Image]:
    """A generator-like render: vivid backdrop, glossy shoe (or pair), soft shadow; and its name.

    Drawn at half resolution and upsampled bicubically, like many image generators' outputs.
    """
    rng = picture_rng(seed, "renders", index)
    name = "".join(chr(ord("a") + int(k)) for k in rng.integers(0, 26, 11))
    shoe = random_shoe(rng, str(rng.choice(BRANDS)))
    palette = render_palette(rng)
    poses = random_poses(rng, shoe, quasi_random(seed, "renders", index))
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
