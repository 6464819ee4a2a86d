"""Image perturbations: robustness conditions at evaluation, random augmentation in training.

Both classes get the same treatment, so a detector that survives them is not reading how a
file was encoded (Wang et al. 2020 trained with random JPEG and blur for the same reason).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from sneakers.params import AugmentSettings

Perturbation = Callable[[Image.Image], Image.Image]


def jpeg(quality: int) -> Perturbation:
    """Re-encode as JPEG at a quality (4:2:0), as sharing sites and compilers do."""

    def apply(im: Image.Image) -> Image.Image:
        out = io.BytesIO()
        im.save(out, "JPEG", quality=quality, subsampling="4:2:0")
        return Image.open(out).convert("RGB")

    return apply


def rescale(factor: float) -> Perturbation:
    """Resize by a factor and back (bilinear): below 1 the detail lost to a thumbnail."""

    def apply(im: Image.Image) -> Image.Image:
        small = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
        return im.resize(small, Image.Resampling.BILINEAR).resize(
            im.size, Image.Resampling.BILINEAR
        )

    return apply


def blur(sigma: float) -> Perturbation:
    """Gaussian blur with standard deviation sigma (pixels)."""
    return lambda im: im.filter(ImageFilter.GaussianBlur(radius=sigma))


# The fixed evaluation conditions, applied to both classes of the test split.
CONDITIONS: dict[str, Perturbation | None] = {
    "clean": None,
    "jpeg_q90": jpeg(90),
    "jpeg_q75": jpeg(75),
    "jpeg_q50": jpeg(50),
    "downscale_0.5x": rescale(0.5),
    "blur_sigma1": blur(1.0),
}


def apply_to_batch(images: torch.Tensor, perturbation: Perturbation) -> torch.Tensor:
    """Apply a perturbation to every image of an N x 3 x H x W uint8 tensor."""
    out = [
        np.asarray(perturbation(Image.fromarray(im.permute(1, 2, 0).numpy())), dtype=np.uint8)
        for im in images
    ]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def augment(im: Image.Image, settings: AugmentSettings, rng: np.random.Generator) -> Image.Image:
    """One random augmentation of one image; the rng makes it reproducible."""
    if settings.crop < 1:
        side = round(min(im.size) * rng.uniform(settings.crop, 1.0))
        x = int(rng.integers(0, im.width - side + 1))
        y = int(rng.integers(0, im.height - side + 1))
        im = im.crop((x, y, x + side, y + side)).resize(im.size, Image.Resampling.BILINEAR)
    if settings.hflip and rng.random() < 0.5:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # New switches draw only when on, so runs without them keep their random streams.
    if settings.p_resize and rng.random() < settings.p_resize:
        im = rescale(float(rng.uniform(*settings.resize_scale)))(im)
    if settings.p_color and rng.random() < settings.p_color:
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            im = enhance(im).enhance(float(rng.uniform(1 - settings.color, 1 + settings.color)))
    if rng.random() < settings.p_blur:
        im = blur(float(rng.uniform(*settings.blur_sigma)))(im)
    if rng.random() < settings.p_jpeg:
        low, high = settings.jpeg_quality
        im = jpeg(int(rng.integers(low, high + 1)))(im)
    return im


def augment_batch(
    images: torch.Tensor, settings: AugmentSettings, rng: np.random.Generator
) -> torch.Tensor:
    """Augment every image of a uint8 batch (CPU, before the copy to the device)."""
    return apply_to_batch(images, lambda im: augment(im, settings, rng))
