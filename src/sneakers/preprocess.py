"""The one preprocessing path: decode, orient, convert, fit, resample, encode.

The standardize stage and `sneakers predict` both call `standardize_bytes`, so a picture is
prepared the same way for training and for use. Both classes get identical treatment, which is
what removes the encoding shortcut (quality, ICC, size) of the compiled release. The resample
step removes what the headers do not show: each class's JPEG and resampling history in the
pixels (README, "Why standardize").
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps
from pydantic import BaseModel, ConfigDict

from sneakers.params import Fit, choices

# Decoders we accept; anything else is an unsupported format, not something to guess at.
# (Multi-picture JPEGs, MPO, come through the JPEG opener; Pillow has no opener named MPO.)
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
FIT_POLICIES = choices(Fit)
BACKGROUND = (255, 255, 255)
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half a picture
TURNED = range(2, 9)  # EXIF orientations that need a flip or a rotation; 1 is upright


@contextmanager
def pixel_limit(max_pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb limit at ours, for one open only: it is a process-wide
    setting, and other code in the process (a figure, a test's screenshot) keeps Pillow's.
    Pillow warns between the limit and twice it; our callers raise or reject instead."""
    default, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = default


def open_image(data: bytes, max_pixels: int, draft_size: int = 0) -> Image.Image:
    """Open and fully decode an image, refusing unsupported formats and decompression bombs.

    With draft_size, a JPEG is decoded in the DCT domain at no less than twice that size:
    faster, and the final resize still sees more pixels than it keeps.
    """
    with pixel_limit(max_pixels):
        im = Image.open(io.BytesIO(data), formats=FORMATS)
    if im.width * im.height > max_pixels:
        raise Image.DecompressionBombError(
            f"{im.width}x{im.height} exceeds the pixel limit of {max_pixels}"
        )
    if draft_size and im.format == "JPEG":
        im.draft(im.mode, (2 * draft_size, 2 * draft_size))
    im.load()
    return im


def to_rgb(im: Image.Image) -> Image.Image:
    """Upright 8-bit RGB: EXIF orientation applied, transparency composited on white.

    An upright RGB picture comes back as it is, not copied.
    """
    if im.getexif().get(ExifTags.Base.Orientation, 1) in TURNED:
        im = ImageOps.exif_transpose(im)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        im = Image.fromarray(_to_uint8(np.asarray(im)), mode="L")
    if im.mode in ("LA", "PA", "La", "RGBa"):
        im = im.convert("RGBA")
    if im.mode == "RGBA":
        canvas = Image.new("RGB", im.size, BACKGROUND)
        canvas.paste(im, mask=im.getchannel("A"))
        return canvas
    return im.convert("RGB") if im.mode != "RGB" else im


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Scale 16-bit, 32-bit integer or float pixels to 0..255 instead of clipping them."""
    values = pixels.astype(np.float64)
    top = values.max(initial=0.0)
    if pixels.dtype.kind == "f" and top <= 1.0:
        values = values * 255.0
    elif top > 255:
        values = values / 257.0
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def fit(im: Image.Image, size: int, policy: str) -> Image.Image:
    """Make a size x size picture: crop (cover, centre), pad (contain, white), stretch, or
    native: the centre size x size of a picture at least that big, never resized (B-Free: a
    resize erases a generator's pixel traces); smaller pictures are enlarged as crop does.

    A picture already size x size comes back as it is: every policy would only copy it.
    """
    if policy in FIT_POLICIES and im.size == (size, size):
        return im
    if policy == "stretch":
        return im.resize((size, size), Image.Resampling.LANCZOS)
    if policy == "native" and min(im.size) >= size:
        left, top = (im.width - size) // 2, (im.height - size) // 2
        return im.crop((left, top, left + size, top + size))
    if policy in ("crop", "native"):
        return ImageOps.fit(im, (size, size), Image.Resampling.LANCZOS)
    if policy == "pad":
        return ImageOps.pad(im, (size, size), Image.Resampling.LANCZOS, color=BACKGROUND)
    raise ValueError(f"unknown fit policy {policy!r}; choose one of {', '.join(FIT_POLICIES)}")


def encode_jpeg(im: Image.Image, quality: int) -> bytes:
    """Baseline JPEG, 4:2:0, no ICC and no EXIF, so every file is encoded alike."""
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality, subsampling="4:2:0", optimize=False, progressive=False)
    return out.getvalue()


def resample_crop(
    im: Image.Image, size: int, scale: float, jitter: float, key: bytes
) -> Image.Image:
    """Enlarge a size x size picture by a non-integer scale and crop size x size back out.

    Every picture then has the same last resample and a final 8x8 JPEG grid that no earlier
    encoding shares, whatever its class's history. With jitter, the scale is drawn from
    [scale, scale + jitter] and the crop offset from the margin, seeded by the file's bytes, so
    that the same file always gives the same picture (in the pipeline and in predict alike).
    """
    if scale == 1 and not jitter:
        return im
    if jitter:
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))
        big = round(size * (scale + rng.uniform(0, jitter)))
        left, top = (int(v) for v in rng.integers(0, big - size + 1, 2))
    else:
        big = round(size * scale)
        left = top = (big - size) // 2
    im = im.resize((big, big), Image.Resampling.LANCZOS)
    return im.crop((left, top, left + size, top + size))


def standardize_bytes(
    data: bytes,
    size: int,
    policy: str,
    quality: int,
    max_pixels: int,
    resample: float = 1.0,
    jitter: float = 0.0,
) -> bytes:
    """Raw file bytes in, standardized JPEG bytes out: fit, resample (1 = off), encode."""
    fitted = prepare(data, size, policy, max_pixels, resample, jitter)
    return finish(fitted, size, policy, quality, resample, jitter, data)


def prepare(
    data: bytes, size: int, policy: str, max_pixels: int, resample: float, jitter: float
) -> Image.Image:
    """Raw file bytes to the upright RGB picture at size x size, before resample and encode."""
    draft = 0 if policy == "native" else round(size * (resample + jitter))  # native: every pixel
    im = open_image(data, max_pixels, draft_size=draft)
    return fit(to_rgb(im), size, policy)


def finish(
    im: Image.Image,
    size: int,
    policy: str,
    quality: int,
    resample: float = 1.0,
    jitter: float = 0.0,
    key: bytes = b"",
) -> bytes:
    """A decoded RGB picture to standardized JPEG bytes: fit, resample, encode. `key` seeds the
    resample jitter (the raw file's bytes)."""
    fitted = fit(im, size, policy)
    return encode_jpeg(resample_crop(fitted, size, resample, jitter, key), quality)


class Recipe(BaseModel):
    """The settings that decide the pictures (`StandardizeSettings.picture_settings` and
    `merge.max_pixels`), as the model file records them, so that predict and evaluate's
    counterfactuals prepare pictures exactly as training did."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    size: int
    fit: Fit
    jpeg_quality: int
    max_pixels: int
    resample: float
    resample_jitter: float

    def apply(self, data: bytes) -> bytes:
        return standardize_bytes(
            data,
            self.size,
            self.fit,
            self.jpeg_quality,
            self.max_pixels,
            self.resample,
            self.resample_jitter,
        )

    def fitted(self, data: bytes) -> Image.Image:
        """Raw file bytes to the upright RGB picture at size x size, before resample and encode."""
        return prepare(
            data, self.size, self.fit, self.max_pixels, self.resample, self.resample_jitter
        )

    def finish(self, im: Image.Image, key: bytes) -> bytes:
        """A picture of any size through the rest of the recipe: fit, resample, encode."""
        return finish(
            im, self.size, self.fit, self.jpeg_quality, self.resample, self.resample_jitter, key
        )
