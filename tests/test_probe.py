"""probe_bytes decodes every file fully and gives each failure its own reason code.

The encoding facts it records (JPEG quality, subsampling, ICC) are what separates the classes in
the compiled release, so they are checked exactly, on synthetic files and on the shared copy.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import imagehash
import pytest
from PIL import Image, ImageCms

from sneakers.jpeg import jpeg_quality
from sneakers.probe import judge_header, probe_bytes

SHARED = Path(__file__).resolve().parents[2] / "shared/data/shoes-real-vs-ai"
LIMITS = {"min_size": 32, "max_pixels": 1_000_000}
Encode = Callable[..., bytes]
Picture = Callable[..., Image.Image]


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG that claims a size but holds no pixel data: only the header can be read."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    signature = b"\x89PNG\r\n\x1a\n"
    return (
        signature + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_empty_file() -> None:
    row = probe_bytes(b"", **LIMITS)
    assert (row["status"], row["reason"], row["bytes"]) == ("rejected", "empty", 0)


def test_text_is_not_an_image() -> None:
    row = probe_bytes(b"shoe list\nnike, adidas\n", **LIMITS)
    assert (row["status"], row["reason"]) == ("rejected", "not_an_image")
    assert "format" not in row


def test_half_a_jpeg_passes_verify_but_is_corrupt(picture: Picture, encode: Encode) -> None:
    """verify() only parses markers; probe must decode every scan line to catch this."""
    data = encode(picture(1, scale=10), "JPEG", quality=95)
    half = data[: len(data) // 2]
    with Image.open(io.BytesIO(half)) as im:
        im.verify()  # would raise if the header were damaged: it is the data that is missing
    row = probe_bytes(half, **LIMITS)
    assert (row["status"], row["reason"]) == ("rejected", "corrupt")
    assert row["format"] == "JPEG"
    assert "truncated" in row["detail"]


def test_damaged_header_with_image_magic_is_corrupt() -> None:
    row = probe_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 8, **LIMITS)
    assert (row["status"], row["reason"]) == ("rejected", "corrupt")


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect/></svg>',
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"></svg>',
    ],
)
def test_svg_is_unsupported_not_garbage(svg: bytes) -> None:
    row = probe_bytes(svg, **LIMITS)
    assert (row["status"], row["reason"], row["format"]) == (
        "rejected",
        "unsupported_format",
        "SVG",
    )


@pytest.mark.parametrize("fmt", ["PPM", "ICO"])
def test_format_pillow_reads_but_we_do_not(fmt: str, picture: Picture, encode: Encode) -> None:
    im = picture(2).resize((64, 64))
    with Image.open(io.BytesIO(encode(im, fmt))) as check:
        assert check.format == fmt  # Pillow can read it ...
    row = probe_bytes(encode(im, fmt), **LIMITS)
    # ... but only the listed formats are accepted.
    assert (row["status"], row["reason"], row["format"]) == ("rejected", "unsupported_format", fmt)


def test_too_small(picture: Picture, encode: Encode) -> None:
    data = encode(picture(3, scale=4), "PNG")  # 36 x 32
    assert probe_bytes(data, min_size=32, max_pixels=10**6)["status"] == "accepted"
    row = probe_bytes(data, min_size=33, max_pixels=10**6)
    assert (row["status"], row["reason"], row["width"], row["height"]) == (
        "rejected",
        "too_small",
        36,
        32,
    )


def test_judge_header_is_the_rule_probe_bytes_applies(picture: Picture, encode: Encode) -> None:
    """The header verdict `sneakers predict` uses is merge's own: same reason, same detail."""
    files = {
        "empty": b"",
        "text": b"shoe list\n",
        "one-pixel": encode(Image.new("RGB", (1, 1)), "PNG"),
        "a-strip": encode(Image.new("RGB", (2000, 10)), "PNG"),
        "bomb": png_header_only(5000, 5000),
        "fine": encode(picture(1), "JPEG"),
    }
    verdicts = {}
    for name, data in files.items():
        _, rejected = judge_header(data, **LIMITS)
        row = probe_bytes(data, **LIMITS)
        assert (rejected or {}).get("reason", "") == row["reason"], name
        assert (rejected or {}).get("detail", "") == row["detail"], name
        verdicts[name] = row["reason"]
    assert verdicts == {
        "empty": "empty",
        "text": "not_an_image",
        "one-pixel": "too_small",
        "a-strip": "too_small",
        "bomb": "too_many_pixels",
        "fine": "",
    }


@pytest.mark.parametrize("side", [10_000, 60_000])
def test_too_many_pixels_is_decided_from_the_header(side: int) -> None:
    """A huge claim is refused from the header alone, without allocating gigabytes.

    60000 x 60000 is also above twice Pillow's own global limit, where Image.open itself raises
    DecompressionBombError: that must become a rejection, not an exception out of merge.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no DecompressionBombWarning leaks to the log
        row = probe_bytes(png_header_only(side, side), **LIMITS)
    assert (row["status"], row["reason"]) == ("rejected", "too_many_pixels")
    assert str(side * side) in row["detail"] or f"{side}x{side}" in row["detail"]


def test_pixel_limit_is_inclusive(picture: Picture, encode: Encode) -> None:
    data = encode(picture(4), "PNG")  # 72 x 64 = 4608 pixels
    assert probe_bytes(data, min_size=32, max_pixels=4608)["status"] == "accepted"
    assert probe_bytes(data, min_size=32, max_pixels=4607)["reason"] == "too_many_pixels"


@pytest.mark.parametrize("quality", [50, 75, 90, 95])
def test_jpeg_quality_is_exact(quality: int, picture: Picture, encode: Encode) -> None:
    row = probe_bytes(encode(picture(5), "JPEG", quality=quality), **LIMITS)
    assert row["status"] == "accepted"
    assert row["jpeg_quality"] == quality


def test_jpeg_quality_on_every_setting(picture: Picture, encode: Encode) -> None:
    """The estimate is exact across the range, not just at the four study qualities."""
    im = picture(6)
    for quality in range(10, 101, 3):
        with Image.open(io.BytesIO(encode(im, "JPEG", quality=quality))) as decoded:
            assert jpeg_quality(decoded) == quality


def test_accepted_jpeg_facts(picture: Picture, encode: Encode) -> None:
    im = picture(7)
    plain = probe_bytes(encode(im, "JPEG", quality=95), **LIMITS)
    tagged = probe_bytes(encode(im, "JPEG", quality=90, icc_profile=srgb_icc()), **LIMITS)
    full = probe_bytes(encode(im, "JPEG", quality=90, subsampling="4:4:4"), **LIMITS)
    assert plain["status"] == tagged["status"] == full["status"] == "accepted"
    assert (plain["format"], plain["width"], plain["height"], plain["mode"]) == (
        "JPEG",
        72,
        64,
        "RGB",
    )
    assert (plain["icc"], plain["subsampling"], plain["jpeg_quality"]) == (False, "4:2:0", 95)
    assert (tagged["icc"], tagged["subsampling"], tagged["jpeg_quality"]) == (True, "4:2:0", 90)
    assert (full["icc"], full["subsampling"]) == (False, "4:4:4")
    assert plain["frames"] == 1


def test_hashes_are_the_imagehash_strings(picture: Picture, encode: Encode) -> None:
    data = encode(picture(8), "PNG")
    row = probe_bytes(data, **LIMITS)
    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
    assert row["phash"] == str(imagehash.phash(rgb))
    assert row["dhash"] == str(imagehash.dhash(rgb))
    assert len(row["phash"]) == len(row["dhash"]) == 16
    other = probe_bytes(encode(picture(9), "PNG"), **LIMITS)
    assert other["phash"] != row["phash"]


def test_non_jpeg_facts(picture: Picture, encode: Encode) -> None:
    grey = probe_bytes(encode(picture(10).convert("L"), "PNG"), **LIMITS)
    assert (grey["format"], grey["mode"], grey["jpeg_quality"], grey["subsampling"]) == (
        "PNG",
        "L",
        None,
        "",
    )
    frames = [picture(11), picture(12)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    row = probe_bytes(gif, **LIMITS)
    assert (row["status"], row["format"], row["frames"]) == ("accepted", "GIF", 2)


def test_sha256_and_size_are_always_recorded() -> None:
    row = probe_bytes(b"abc", **LIMITS)
    assert row["sha256"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert row["bytes"] == 3


def shared_files(folder: str, count: int = 4) -> list[Path]:
    if not SHARED.is_dir():
        pytest.skip("../shared/data/shoes-real-vs-ai is absent: real-data checks skipped")
    files = sorted((SHARED / folder).glob("*.jpg"))
    assert len(files) >= count, f"{SHARED / folder} holds fewer than {count} JPEGs"
    return files[:: max(len(files) // count, 1)][:count]


@pytest.mark.shared
@pytest.mark.parametrize(
    ("folder", "quality", "icc"), [("real", 95, False), ("ai-midjourney", 90, True)]
)
def test_shared_release_encoding_separates_the_classes(
    folder: str, quality: int, icc: bool
) -> None:
    """The compiled release's documented shortcut: real is q95 without ICC, AI is q90 with."""
    for path in shared_files(folder):
        row = probe_bytes(path.read_bytes(), min_size=32, max_pixels=50_000_000)
        assert row["status"] == "accepted", path
        facts = (row["format"], row["jpeg_quality"], row["icc"], row["subsampling"])
        assert facts == ("JPEG", quality, icc, "4:2:0"), path
        assert (row["width"], row["height"]) == (240, 240), path
