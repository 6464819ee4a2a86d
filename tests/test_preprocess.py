"""standardize_bytes: every input mode comes out as the same kind of JPEG, and looks right.

The output encoding must not depend on the input (that is the shortcut the step removes), so
each case checks the full encoding contract and then a few pixels that prove the conversion
(transparency, 16-bit range, orientation, frames, fit) did what it should.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin, UnidentifiedImageError
from pydantic import ValidationError

from sneakers.params import StandardizeSettings
from sneakers.preprocess import FIT_POLICIES, Recipe, fit, resample_crop, standardize_bytes, to_rgb
from sneakers.probe import jpeg_quality

SIZE = 64
QUALITY = 85
MAX_PIXELS = 10_000_000
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def save(im: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def markers(data: bytes) -> list[int]:
    """JPEG marker codes from SOI up to the start of scan (header segments only)."""
    assert data[:2] == b"\xff\xd8"
    found, pos = [], 2
    while pos < len(data):
        assert data[pos] == 0xFF, f"no marker at {pos}"
        code = data[pos + 1]
        found.append(code)
        if code == 0xDA:  # start of scan: entropy-coded data follows
            break
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return found


def standard(data: bytes, policy: str = "stretch", size: int = SIZE) -> np.ndarray:
    """Standardize, check the encoding contract, and return the decoded pixels."""
    out = standardize_bytes(data, size, policy, QUALITY, MAX_PIXELS)
    codes = markers(out)
    assert 0xC0 in codes, "not a baseline JPEG (SOF0)"
    assert not {0xC1, 0xC2, 0xC3} & set(codes), "progressive or extended JPEG"
    assert 0xE1 not in codes, "APP1 (EXIF) present"
    assert 0xE2 not in codes, "APP2 (ICC) present"
    with Image.open(io.BytesIO(out)) as im:
        assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (size, size))
        assert jpeg_quality(im) == QUALITY
        assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0
        assert "icc_profile" not in im.info and "exif" not in im.info
        assert not im.info.get("progressive")
        return np.asarray(im).astype(int)


def near(pixel: np.ndarray, color: tuple[int, int, int], tol: int = 12) -> bool:
    return bool(np.abs(pixel - np.array(color)).max() <= tol)


def grey_mode_l() -> bytes:
    return save(Image.new("L", (SIZE, SIZE), 100), "PNG")


def grey_with_alpha() -> bytes:
    im = Image.new("LA", (SIZE, SIZE), (0, 0))  # left half black opaque, right transparent
    im.paste((0, 255), (0, 0, SIZE // 2, SIZE))
    return save(im, "PNG")


def palette_with_transparency() -> bytes:
    im = Image.new("P", (SIZE, SIZE), 0)
    im.putpalette([0, 0, 0, *RED] + [0] * 762)
    im.paste(1, (0, 0, SIZE // 2, SIZE))  # left half red, right half index 0 (transparent)
    return save(im, "PNG", transparency=0)


def half_transparent_red() -> bytes:
    im = Image.new("RGBA", (SIZE, SIZE), (0, 0, 255, 0))  # fully transparent blue ...
    im.paste((255, 0, 0, 128), (0, 0, SIZE // 2, SIZE))  # ... and half-opaque red
    return save(im, "PNG")


def cmyk_red() -> bytes:
    return save(Image.new("CMYK", (SIZE, SIZE), (0, 255, 255, 0)), "JPEG", quality=95)


def sixteen_bit_gradient() -> bytes:
    ramp = np.tile(np.linspace(0, 65535, SIZE).astype(np.uint16), (SIZE, 1))
    im = Image.fromarray(ramp)
    assert im.mode == "I;16"
    return save(im, "PNG")


def one_bit() -> bytes:
    im = Image.new("1", (SIZE, SIZE), 0)
    im.paste(1, (SIZE // 2, 0, SIZE, SIZE))
    return save(im, "PNG")


def animated_gif() -> bytes:
    first, second = Image.new("RGB", (SIZE, SIZE), RED), Image.new("RGB", (SIZE, SIZE), BLUE)
    return save(first, "GIF", save_all=True, append_images=[second], duration=50, loop=0)


def cmyk_tiff() -> bytes:
    return save(Image.new("CMYK", (SIZE, SIZE), (0, 255, 255, 0)), "TIFF")


def srgb_tagged_jpeg() -> bytes:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return save(Image.new("RGB", (SIZE, SIZE), GREEN), "JPEG", quality=95, icc_profile=icc)


def multi_picture_jpeg() -> bytes:
    """MPO, as phone cameras write it: the first picture is the one to use."""
    first, second = Image.new("RGB", (SIZE, SIZE), RED), Image.new("RGB", (SIZE, SIZE), BLUE)
    data = save(first, "MPO", save_all=True, append_images=[second], quality=95)
    assert Image.open(io.BytesIO(data)).format == "MPO"
    return data


def left_right(px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    row = SIZE // 2
    return px[row, 4], px[row, SIZE - 5]


CASES: dict[str, tuple[Callable[[], bytes], Callable[[np.ndarray], bool]]] = {
    "L": (grey_mode_l, lambda px: near(px[32, 32], (100, 100, 100), 3)),
    "LA": (
        grey_with_alpha,
        lambda px: near(left_right(px)[0], (0, 0, 0)) and near(left_right(px)[1], WHITE),
    ),
    "P+transparency": (
        palette_with_transparency,
        lambda px: near(left_right(px)[0], RED) and near(left_right(px)[1], WHITE),
    ),
    "RGBA": (
        half_transparent_red,
        lambda px: near(left_right(px)[0], (255, 127, 127), 6) and near(left_right(px)[1], WHITE),
    ),
    "CMYK-JPEG": (cmyk_red, lambda px: near(px[32, 32], RED)),
    "CMYK-TIFF": (cmyk_tiff, lambda px: near(px[32, 32], RED)),
    "1-bit": (
        one_bit,
        lambda px: near(left_right(px)[0], (0, 0, 0)) and near(left_right(px)[1], WHITE),
    ),
    "GIF-first-frame": (animated_gif, lambda px: near(px[32, 32], RED)),
    "ICC-tagged": (srgb_tagged_jpeg, lambda px: near(px[32, 32], GREEN)),
    "MPO": (multi_picture_jpeg, lambda px: near(px[32, 32], RED)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_mode_gives_the_same_encoding_and_right_pixels(case: str) -> None:
    make, looks_right = CASES[case]
    assert looks_right(standard(make())), f"{case}: pixels are not what the input shows"


def test_sixteen_bit_keeps_its_range_instead_of_clipping() -> None:
    """A naive convert() clips every value above 255 to white; the ramp must stay a ramp."""
    row = standard(sixteen_bit_gradient())[SIZE // 2, :, 0]
    assert row[2] < 20, "the dark end became bright"
    assert row[-3] > 235, "the bright end is not bright"
    assert 90 < row[SIZE // 2] < 170, "the middle is not mid-grey"
    assert np.all(np.diff(row[2:-2].astype(int)) >= -4), "the ramp is not increasing"


def test_exif_orientation_is_applied() -> None:
    """Stored 80x48 with a red top-left marker; orientation 6 means 'rotate 90 clockwise'.

    Displayed, the picture is taller than wide and the marker sits at the top right.
    """
    stored = Image.new("RGB", (80, 48), BLUE)
    stored.paste(RED, (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    px = standard(save(stored, "JPEG", quality=95, exif=exif.tobytes()), "stretch")
    corners = {"tl": px[4, 4], "tr": px[4, SIZE - 5], "bl": px[SIZE - 5, 4], "br": px[-5, -5]}
    assert near(corners["tr"], RED, 30)
    assert all(near(corners[c], BLUE, 30) for c in ("tl", "bl", "br"))


def three_bands() -> Image.Image:
    """96x48: red | green | blue thirds of 24 | 48 | 24 px, so the centre square is green."""
    im = Image.new("RGB", (96, 48), GREEN)
    im.paste(RED, (0, 0, 24, 48))
    im.paste(BLUE, (72, 0, 96, 48))
    return im


def test_fit_crop_keeps_the_centre() -> None:
    px = standard(save(three_bands(), "PNG"), "crop")
    assert near(px[32, 2], GREEN, 30) and near(px[32, 61], GREEN, 30) and near(px[2, 32], GREEN)
    assert not (np.abs(px - np.array(RED)).max(axis=2) < 60).any(), "cropped red band visible"


def test_fit_pad_adds_white_bars() -> None:
    px = standard(save(three_bands(), "PNG"), "pad")
    # 96x48 contained in 64x64 is 64x32: 16 px white bars above and below.
    assert near(px[4, 32], WHITE) and near(px[SIZE - 5, 32], WHITE)
    assert near(px[32, 4], RED, 30) and near(px[32, 32], GREEN, 30) and near(px[32, 59], BLUE, 30)


def test_fit_stretch_keeps_everything_without_bars() -> None:
    px = standard(save(three_bands(), "PNG"), "stretch")
    for y in (2, 32, 61):
        assert near(px[y, 4], RED, 30) and near(px[y, 32], GREEN, 30) and near(px[y, 59], BLUE, 30)


def test_fit_native_keeps_the_centre_pixels_of_a_large_picture_and_enlarges_a_small_one() -> None:
    """B-Free's lesson: no resize for a picture at least the output size, so a generator's
    pixel-level traces survive; a smaller one is enlarged exactly as crop enlarges it."""
    rng = np.random.default_rng(2)
    big = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    out = np.asarray(fit(Image.fromarray(big), 40, "native"))
    assert np.array_equal(out, big[15:55, 25:65])
    small = Image.fromarray(big[:30, :36])
    assert np.array_equal(np.asarray(fit(small, 40, "native")), np.asarray(fit(small, 40, "crop")))


def test_native_fit_decodes_a_large_jpeg_at_full_scale(encode: Callable[..., bytes]) -> None:
    """No DCT draft for native: the crop must be of the file's own pixels."""
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (320, 360, 3), dtype=np.uint8)
    data = encode(Image.fromarray(pixels), "JPEG", quality=95)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    out = Recipe(
        size=48,
        fit="native",
        resample=1.0,
        resample_jitter=0.0,
        jpeg_quality=90,
        max_pixels=MAX_PIXELS,
    ).fitted(data)
    assert np.array_equal(np.asarray(out), decoded[136:184, 156:204])


def test_unknown_fit_policy_is_refused() -> None:
    assert FIT_POLICIES == ("crop", "pad", "stretch", "native")
    with pytest.raises(ValueError, match="unknown fit policy 'zoom'"):
        fit(three_bands(), SIZE, "zoom")


@pytest.mark.parametrize("case", ["RGBA", "CMYK-JPEG", "GIF-first-frame"])
def test_same_input_gives_identical_bytes(case: str) -> None:
    data = CASES[case][0]()
    first = standardize_bytes(data, SIZE, "crop", QUALITY, MAX_PIXELS)
    assert standardize_bytes(data, SIZE, "crop", QUALITY, MAX_PIXELS) == first


def test_large_jpeg_draft_decoding_still_gives_the_exact_size(
    picture: Callable[..., Image.Image], encode: Callable[..., bytes]
) -> None:
    """JPEGs are decoded at a reduced DCT scale first; the output must still be size x size."""
    big = encode(picture(3, scale=40), "JPEG", quality=90)  # 360 x 320
    px = standard(big, "crop", size=48)
    assert px.shape == (48, 48, 3)


@pytest.mark.parametrize("limit", [9_999, 4_000])
def test_pixel_limit_raises_the_bomb_error(limit: int) -> None:
    """Just over the limit and over twice it (Pillow's own threshold) fail the same way."""
    before = Image.MAX_IMAGE_PIXELS
    data = save(Image.new("RGB", (100, 100), RED), "PNG")
    with pytest.raises(Image.DecompressionBombError):
        standardize_bytes(data, SIZE, "crop", QUALITY, max_pixels=limit)
    assert standardize_bytes(data, SIZE, "crop", QUALITY, max_pixels=10_000)
    # ... and the limit was ours for those opens only: Pillow's process-wide one is unchanged.
    assert before == Image.MAX_IMAGE_PIXELS


def test_bytes_that_are_no_image_are_unidentified() -> None:
    with pytest.raises(UnidentifiedImageError):
        standardize_bytes(b"not an image at all", SIZE, "crop", QUALITY, MAX_PIXELS)


@pytest.mark.parametrize("policy", FIT_POLICIES)
def test_fit_at_the_target_size_gives_the_pixels_the_resize_would(policy: str) -> None:
    """fit returns a picture already at the target size as it is: no policy would change it."""
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    expected = {
        "crop": lambda: ImageOps.fit(im, (40, 40), Image.Resampling.LANCZOS),
        "pad": lambda: ImageOps.pad(im, (40, 40), Image.Resampling.LANCZOS),
        "stretch": lambda: im.resize((40, 40), Image.Resampling.LANCZOS),
        "native": lambda: im,
    }[policy]()
    assert np.array_equal(np.asarray(fit(im, 40, policy)), np.asarray(expected))


def test_upright_rgb_is_not_copied_and_turned_pictures_still_turn() -> None:
    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    assert to_rgb(im) is im
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 clockwise to view
    turned = Image.open(io.BytesIO(save(im, "JPEG", quality=95, exif=exif.tobytes())))
    assert to_rgb(turned).size == (20, 30)
    assert np.array_equal(np.asarray(to_rgb(turned)), np.asarray(ImageOps.exif_transpose(turned)))


# --- the resample step: every picture, including those already at size ---


def noise(size: int = SIZE, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_no_resample_leaves_the_fitted_picture_as_it_is() -> None:
    im = noise()
    assert resample_crop(im, SIZE, 1.0, 0.0, b"key") is im


def test_a_fixed_resample_enlarges_then_crops_the_centre() -> None:
    im = noise()
    out = resample_crop(im, SIZE, 1.07, 0.0, b"any key")
    big = im.resize((round(SIZE * 1.07),) * 2, Image.Resampling.LANCZOS)
    margin = (big.width - SIZE) // 2
    expected = big.crop((margin, margin, margin + SIZE, margin + SIZE))
    assert out.size == (SIZE, SIZE)
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    assert resample_crop(im, SIZE, 1.07, 0.0, b"another key").tobytes() == out.tobytes()


def test_a_jittered_resample_is_seeded_by_the_file() -> None:
    """Same bytes, same picture (pipeline and predict agree); other bytes, other scale/offset."""
    im = noise()
    first = resample_crop(im, SIZE, 1.05, 0.2, b"file one")
    assert first.size == (SIZE, SIZE)
    assert resample_crop(im, SIZE, 1.05, 0.2, b"file one").tobytes() == first.tobytes()
    others = {resample_crop(im, SIZE, 1.05, 0.2, bytes([k])).tobytes() for k in range(8)}
    assert len(others) == 8


def test_the_default_recipe_resamples_pictures_already_at_size() -> None:
    """A picture at size goes through the resample too, so no class keeps its 8x8 grid."""
    data = save(noise(), "JPEG", quality=95)
    plain = standardize_bytes(data, SIZE, "crop", QUALITY, MAX_PIXELS)
    settings = StandardizeSettings(size=SIZE, jpeg_quality=QUALITY)
    recipe = Recipe(**settings.picture_settings(), max_pixels=MAX_PIXELS)
    assert (recipe.resample, recipe.resample_jitter) == (1.07, 0.0)
    resampled = recipe.apply(data)
    assert plain != resampled
    with Image.open(io.BytesIO(resampled)) as im:
        assert (im.size, jpeg_quality(im)) == ((SIZE, SIZE), QUALITY)
    # As a model file records it and reads it back, the recipe gives the same pictures.
    assert Recipe.model_validate(recipe.model_dump()).apply(data) == resampled
    # Resample off is the plain path; a recipe that records no resample is refused, not guessed.
    assert recipe.model_copy(update={"resample": 1.0}).apply(data) == plain
    unresampled = recipe.model_dump(exclude={"resample", "resample_jitter"})
    with pytest.raises(ValidationError, match="resample"):
        Recipe(**unresampled)
