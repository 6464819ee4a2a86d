"""Perturbations change pictures the way their names say, deterministically."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from sneakers.params import AugmentSettings
from sneakers.perturb import CONDITIONS, apply_to_batch, augment_batch, blur, jpeg, rescale
from sneakers.probe import jpeg_quality


def noisy(seed: int = 0, size: int = 64) -> Image.Image:
    """A picture full of fine detail, which every perturbation here degrades."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def batch(seeds: range | tuple[int, ...]) -> torch.Tensor:
    """An N x 3 x H x W uint8 batch of noisy pictures."""
    return torch.stack([torch.from_numpy(np.array(noisy(s))).permute(2, 0, 1) for s in seeds])


def detail(im: Image.Image) -> float:
    """Mean absolute difference between neighbouring pixels: high-frequency energy."""
    a = np.asarray(im, dtype=float)
    return float(np.abs(np.diff(a, axis=1)).mean())


@pytest.mark.parametrize("quality", [90, 75, 50])
def test_jpeg_recompresses_at_that_quality(quality: int) -> None:
    out = jpeg(quality)(noisy())
    assert out.size == (64, 64) and out.mode == "RGB"
    buffer = io.BytesIO()
    noisy().save(buffer, "JPEG", quality=quality, subsampling="4:2:0")
    assert np.array_equal(np.asarray(out), np.asarray(Image.open(buffer).convert("RGB")))
    assert jpeg_quality(Image.open(buffer)) == quality


def test_lower_quality_loses_more_detail() -> None:
    losses = [
        np.abs(np.asarray(jpeg(q)(noisy()), float) - np.asarray(noisy())).mean()
        for q in (90, 75, 50)
    ]
    assert losses[0] < losses[1] < losses[2]


def test_rescale_keeps_size_and_loses_detail() -> None:
    out = rescale(0.5)(noisy())
    assert out.size == (64, 64)
    assert detail(out) < 0.6 * detail(noisy())


def test_blur_sigma_one_smooths() -> None:
    assert detail(blur(1.0)(noisy())) < 0.5 * detail(noisy())


def test_conditions_are_the_issue_list() -> None:
    assert list(CONDITIONS) == [
        "clean",
        "jpeg_q90",
        "jpeg_q75",
        "jpeg_q50",
        "downscale_0.5x",
        "blur_sigma1",
    ]
    assert CONDITIONS["clean"] is None


def test_apply_to_batch_maps_every_image() -> None:
    images = batch((1, 2))
    out = apply_to_batch(images, blur(1.0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    for k in range(2):
        expected = np.asarray(blur(1.0)(noisy(k + 1)))
        assert np.array_equal(out[k].permute(1, 2, 0).numpy(), expected)


def test_augmentation_is_seeded_and_changes_pictures() -> None:
    images = torch.stack([torch.from_numpy(np.array(noisy(s))).permute(2, 0, 1) for s in range(8)])
    settings = AugmentSettings(enabled=True, p_jpeg=1.0, p_blur=1.0)
    first = augment_batch(images, settings, np.random.default_rng(3))
    again = augment_batch(images, settings, np.random.default_rng(3))
    other = augment_batch(images, settings, np.random.default_rng(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == images.shape and not torch.equal(first, images)


def test_augmentation_with_nothing_enabled_is_identity() -> None:
    images = torch.stack([torch.from_numpy(np.array(noisy(s))).permute(2, 0, 1) for s in range(4)])
    settings = AugmentSettings(enabled=True, p_jpeg=0.0, p_blur=0.0, hflip=False, crop=1.0)
    assert torch.equal(augment_batch(images, settings, np.random.default_rng(0)), images)


def flat(colour: tuple[int, int, int], size: int = 32) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1).expand(3, size, size)[None]


def test_each_new_switch_alone_does_what_it_says() -> None:
    """Resize alone keeps a flat picture flat (and blurs detail); colour alone shifts a flat
    picture's colour and keeps it flat."""
    off = AugmentSettings(enabled=True, p_jpeg=0.0, p_blur=0.0, hflip=False, crop=1.0)
    resize = off.model_copy(update={"p_resize": 1.0, "resize_scale": [0.5, 0.5]})
    images = batch(range(2))
    out = augment_batch(images, resize, np.random.default_rng(0))
    assert detail(Image.fromarray(out[0].permute(1, 2, 0).numpy())) < 0.8 * detail(noisy(0))
    assert torch.equal(
        augment_batch(flat((90, 140, 200)), resize, np.random.default_rng(0)), flat((90, 140, 200))
    )
    colour = off.model_copy(update={"p_color": 1.0, "color": 0.3})
    shifted = augment_batch(flat((90, 140, 200)), colour, np.random.default_rng(0))
    assert not torch.equal(shifted, flat((90, 140, 200)))
    assert (shifted == shifted[..., :1, :1]).all()  # still flat
