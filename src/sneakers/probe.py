"""Inspect one candidate file: decode it fully and record what the manifest needs.

Every candidate is decoded with `load()`, not just `verify()`: verify passes a JPEG cut in
half, load does not. The encoding facts (JPEG quality, chroma subsampling, ICC profile) are
recorded because in the compiled release they alone separate the classes.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import imagehash
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from sneakers.jpeg import jpeg_quality
from sneakers.preprocess import FORMATS, open_image, pixel_limit, to_rgb

SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"II*\x00", b"MM\x00*")
SNIFFED = {b"<svg": "SVG", b"<?xml": "SVG", b"ftypheic": "HEIC", b"ftypavif": "AVIF"}


def sniff_format(data: bytes) -> str:
    """Name a type we do not read, so the reason says 'unsupported' rather than 'not an image'."""
    head = data[:64].lstrip()
    for magic, name in SNIFFED.items():
        if head.startswith(magic) or magic in head[:16]:
            return name
    return ""


def probe_bytes(data: bytes, *, min_size: int, max_pixels: int) -> dict[str, Any]:
    """Facts and verdict for one file: status accepted or rejected, with reason and detail."""
    row: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    facts, rejected = judge_header(data, min_size=min_size, max_pixels=max_pixels)
    row.update(facts)
    if rejected:
        return {**row, **rejected}
    fmt = facts["format"]
    try:
        im = open_image(data, max_pixels)
    except Image.DecompressionBombError as err:
        return {**row, **_reject("too_many_pixels", str(err))}
    except Exception as err:  # noqa: BLE001 - any decoder failure means the file is unusable
        return {**row, **_reject("corrupt", f"{type(err).__name__}: {err}")}
    row.update(
        mode=im.mode,
        frames=getattr(im, "n_frames", 1),
        icc=bool(im.info.get("icc_profile")),
        jpeg_quality=jpeg_quality(im) if fmt in ("JPEG", "MPO") else None,
        subsampling=SUBSAMPLING.get(JpegImagePlugin.get_sampling(im), "")
        if fmt in ("JPEG", "MPO")
        else "",
    )
    rgb = to_rgb(im)
    row.update(phash=str(imagehash.phash(rgb)), dhash=str(imagehash.dhash(rgb)))
    return {**row, "status": "accepted", "reason": "", "detail": ""}


def judge_header(
    data: bytes, *, min_size: int, max_pixels: int
) -> tuple[dict[str, Any], dict[str, str] | None]:
    """Format and size, and the rejection that the bytes and header alone imply (or None).

    The one rule for what may be scored, shared by merge and `sneakers predict` (with the
    min_size and max_pixels the model was trained under), so that both refuse the same files
    for the same reasons; what then fails to decode is `corrupt` (or `too_many_pixels`) in both.
    """
    if not data:
        return {}, _reject("empty", "file has 0 bytes")
    facts, rejected = read_header(data, max_pixels)
    if rejected:
        return facts, rejected
    width, height = facts["width"], facts["height"]
    if min(width, height) < min_size:
        return facts, _reject("too_small", f"{width}x{height} < {min_size} px")
    return facts, None


def read_header(data: bytes, max_pixels: int) -> tuple[dict[str, Any], dict[str, str] | None]:
    """Format and size from the header alone, and the rejection they already imply (or None);
    judge_header adds the rules that need more than the header's format and pixel count."""
    try:
        with pixel_limit(max_pixels), Image.open(io.BytesIO(data)) as header:
            fmt, width, height = header.format or "", header.width, header.height
    except Image.DecompressionBombError as err:
        return {}, _reject("too_many_pixels", str(err))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        if data.startswith(IMAGE_MAGIC):
            return {}, _reject("corrupt", "image header is truncated or damaged")
        fmt = sniff_format(data)
        if fmt:
            return {"format": fmt}, _reject("unsupported_format", f"{fmt} is not read")
        return {}, _reject("not_an_image", "no image decoder recognises this file")
    facts = {"format": fmt, "width": width, "height": height}
    if fmt not in FORMATS:
        return facts, _reject("unsupported_format", f"{fmt} is not one of {', '.join(FORMATS)}")
    if width * height > max_pixels:
        return facts, _reject("too_many_pixels", f"{width}x{height} > {max_pixels} pixels")
    return facts, None


def _reject(reason: str, detail: str) -> dict[str, str]:
    return {"status": "rejected", "reason": reason, "detail": detail}
