"""Every kind of bad input a user's folder can hold, through fetch, merge and standardize.

Each file is accounted for (found = accepted + rejected + duplicate + ignored) with the status
and reason it deserves, and the accepted oddities come out of standardization correctly.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sneakers.files import read_csv, write_atomic
from sneakers.merge import build_manifest, summarize
from sneakers.params import ArchiveLimits, MergeSettings, PathSource, StandardizeSettings
from sneakers.shards import read_image
from sneakers.sources import fetch_all
from sneakers.standardize import standardize_manifest

SIZE = 48
MAX_PIXELS = 10_000_000


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size but carries almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def exif_rotated(upright: Image.Image) -> bytes:
    """Store the picture turned a quarter left with EXIF orientation 6 (turn right to view)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


def marked(picture: Callable[..., Image.Image], seed: int) -> Image.Image:
    """A square picture with a pure red block in its top-left corner."""
    im = picture(seed, scale=8).resize((72, 72))
    im.paste((255, 0, 0), (0, 0, 18, 18))
    return im


def build_corpus(
    folder: Path, outside: Path, picture: Callable[..., Image.Image], encode: Callable[..., bytes]
) -> dict[str, tuple[str, str]]:
    """Write the corpus; return {relative path: (expected status, expected reason)}."""
    expected: dict[str, tuple[str, str]] = {}

    def put(rel: str, data: bytes, status: str, reason: str = "") -> None:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[rel] = (status, reason)

    good = encode(picture(1), "JPEG", quality=92)
    put("good.jpg", good, "duplicate", "exact_duplicate")  # alias.jpg, first by path, is kept
    put("empty.jpg", b"", "rejected", "empty")
    put("notes.txt", b"just some text\n", "rejected", "not_an_image")
    put("truncated.jpg", encode(picture(2), "JPEG", quality=95)[:300], "rejected", "corrupt")
    put("garbage.jpg", good[:20] + bytes(range(256)) * 4, "rejected", "corrupt")
    put("signature-only.png", b"\x89PNG\r\n\x1a\n", "rejected", "corrupt")
    put(
        "drawing.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg"/>',
        "rejected",
        "unsupported_format",
    )
    put("photo.heic", b"\x00\x00\x00\x18ftypheic" + bytes(32), "rejected", "unsupported_format")
    put("bitmap.ppm", encode(picture(3), "PPM"), "rejected", "unsupported_format")
    put("bomb.png", png_header_only(60_000, 60_000), "rejected", "too_many_pixels")
    put("dot.png", encode(Image.new("RGB", (1, 1), "blue"), "PNG"), "rejected", "too_small")
    put("cmyk.jpg", encode(picture(4).convert("CMYK"), "JPEG"), "accepted")
    deep = (np.asarray(picture(5).convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    put("sixteen-bit.png", encode(Image.fromarray(deep), "PNG"), "accepted")
    palette = picture(6).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    put("palette-transparent.png", encode(palette, "PNG", transparency=0), "accepted")
    rgba = picture(7).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0).point(lambda _: 0))
    rgba.paste((10, 200, 10, 255), (20, 20, 50, 44))
    put("rgba.png", encode(rgba, "PNG"), "accepted")
    put("rotated.jpg", exif_rotated(marked(picture, 8)), "accepted")
    frames = [picture(9 + k) for k in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100)
    put("animated.gif", gif.getvalue(), "accepted")
    put("gray.webp", encode(picture(12).convert("L"), "WEBP", quality=90), "accepted")
    put("gray-alpha.png", encode(picture(13).convert("LA"), "PNG"), "accepted")
    put("bitmap.bmp", encode(picture(14), "BMP"), "accepted")
    put("scan.tiff", encode(picture(15), "TIFF"), "accepted")
    put("copy of good.jpg", good, "duplicate", "exact_duplicate")
    put(
        "good-resaved.jpg",
        encode(Image.open(io.BytesIO(good)), "JPEG", quality=70),
        "duplicate",
        "near_duplicate",
    )
    put("schuh ü 😀 (1).jpg", encode(picture(16), "JPEG"), "accepted")
    put("-rf --no-preserve-root.jpg", encode(picture(17), "JPEG"), "accepted")
    put("x" * 200 + ".jpg", encode(picture(18), "JPEG"), "accepted")
    put(".DS_Store", b"\x00\x00\x00\x01Bud1", "ignored", "os_junk")
    put("Thumbs.db", b"\xd0\xcf\x11\xe0", "ignored", "os_junk")
    put("__MACOSX/._good.jpg", b"\x00\x05\x16\x07", "ignored", "os_junk")
    put(".hidden.jpg", encode(picture(19), "JPEG"), "ignored", "hidden_file")
    (outside / "secret.jpg").write_bytes(encode(picture(20), "JPEG"))
    (folder / "escape.jpg").symlink_to(outside / "secret.jpg")
    expected["escape.jpg"] = ("rejected", "link_outside_source")
    (folder / "dangling.jpg").symlink_to(folder / "deleted.jpg")
    expected["dangling.jpg"] = ("rejected", "broken_link")
    (folder / "alias.jpg").symlink_to(folder / "good.jpg")
    expected["alias.jpg"] = ("accepted", "")  # copied as a file by fetch
    return expected


@pytest.fixture
def corpus(
    tmp_path: Path, picture: Callable[..., Image.Image], encode: Callable[..., bytes]
) -> tuple[Path, dict[str, tuple[str, str]]]:
    """A messy folder fetched into data/raw, with what each file should become."""
    folder, outside = tmp_path / "messy", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    expected = build_corpus(folder, outside, picture, encode)
    raw = tmp_path / "data" / "raw"
    source = PathSource(name="messy", path=str(folder), label="ai")
    fetch_all([source], raw, seed=0, limits=ArchiveLimits())
    return raw, expected


def test_every_input_is_accounted_for_with_its_reason(
    corpus: tuple[Path, dict[str, tuple[str, str]]],
) -> None:
    raw, expected = corpus
    source = PathSource(name="messy", path="unused", label="ai")
    manifest = build_manifest(raw, [source], [], MergeSettings(max_pixels=MAX_PIXELS, workers=1))
    got = {
        row.path: (row.status, row.reason if isinstance(row.reason, str) else "")
        for row in manifest.itertuples()
    }
    assert len(expected) >= 30
    assert got == expected
    summary = summarize(manifest)
    found = summary["files"]
    assert found == len(expected)
    assert found == sum(summary[s] for s in ("accepted", "rejected", "duplicate", "ignored"))
    kinds = {reason for _, reason in expected.values() if reason}
    assert len(kinds) >= 11


def test_accepted_oddities_standardize_correctly(
    corpus: tuple[Path, dict[str, tuple[str, str]]], tmp_path: Path
) -> None:
    raw, _ = corpus
    source = PathSource(name="messy", path="unused", label="ai")
    manifest = build_manifest(raw, [source], [], MergeSettings(max_pixels=MAX_PIXELS, workers=1))
    out = tmp_path / "standardized"
    settings = StandardizeSettings(size=SIZE, workers=1)
    index = standardize_manifest(manifest, raw, out, settings, MAX_PIXELS)
    assert len(index) == int((manifest["status"] == "accepted").sum())

    def image(path: str) -> np.ndarray:
        row = index[index["path"] == path].iloc[0]
        with Image.open(io.BytesIO(read_image(out, row))) as im:
            assert im.size == (SIZE, SIZE) and im.mode == "RGB" and im.format == "JPEG"
            assert "icc_profile" not in im.info and "exif" not in im.info
            return np.asarray(im).astype(int)

    for path in index["path"]:
        image(path)
    upright = image("rotated.jpg")
    corner = upright[: SIZE // 6, : SIZE // 6].mean(axis=(0, 1))
    assert corner[0] > 200 and corner[1] < 60 and corner[2] < 60, corner  # red stays top-left
    rgba = image("rgba.png")
    assert rgba[:4, :4].min() > 240  # transparent corner composited on white
    palette = image("palette-transparent.png")
    assert (palette > 240).all(axis=-1).any()  # the transparent palette entry became white
    deep = image("sixteen-bit.png")
    assert 20 < deep.mean() < 235  # 16-bit values scaled, not clipped to white


def headers(data: bytes, name: str) -> tuple[int, int]:
    """Offsets of a member's local header and of its central directory entry."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local = zf.getinfo(name).header_offset
    return local, data.rindex(name.encode()) - 46


def hostile_zip(picture: Callable[..., Image.Image], encode: Callable[..., bytes]) -> bytes:
    """Every kind of member that once stopped fetch or vanished, beside pictures that must
    survive them."""
    jpeg = [encode(picture(40 + k), "JPEG") for k in range(9)]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Duplicate name": meant
        zf.writestr("good.jpg", jpeg[0])
        zf.writestr("good.jpg", jpeg[1])
        zf.writestr("a", b"a file named like a folder")
        zf.writestr("a/b.jpg", jpeg[2])
        zf.writestr("win\\", b"")  # a Windows folder entry
        zf.writestr("win\\c.jpg", jpeg[3])
        zf.writestr("crc-stored.jpg", jpeg[4], zipfile.ZIP_STORED)
        zf.writestr("crc-deflated.jpg", jpeg[5])
        zf.writestr("method.jpg", jpeg[6])
        pipe = zipfile.ZipInfo("pipe.jpg")
        pipe.create_system, pipe.external_attr = 3, (stat.S_IFIFO | 0o644) << 16
        zf.writestr(pipe, b"")
        zf.writestr("x" * 300 + ".jpg", jpeg[7])
        zf.writestr("café.jpg", jpeg[8])
        zf.writestr("line\nbreak.jpg", encode(picture(49), "JPEG"))
    data = bytearray(out.getvalue())
    for name in ("crc-stored.jpg", "crc-deflated.jpg"):
        local = headers(bytes(data), name)[0]
        name_len, extra_len = struct.unpack("<HH", data[local + 26 : local + 30])
        data[local + 30 + name_len + extra_len + 200] ^= 0xFF
    local, central = headers(bytes(data), "method.jpg")
    for at in (local + 8, central + 10):
        data[at : at + 2] = struct.pack("<H", 97)  # WavPack: zipfile cannot unpack it
    local, central = headers(bytes(data), "café.jpg")
    for at in (local + 7, central + 9):
        data[at] &= ~0x08  # drop the UTF-8 flag (bit 11): the name now reads as cp437
    return bytes(data)


def test_fetch_and_merge_account_for_every_hostile_member_and_file(
    tmp_path: Path, picture: Callable[..., Image.Image], encode: Callable[..., bytes]
) -> None:
    archive = tmp_path / "hostile.zip"
    archive.write_bytes(hostile_zip(picture, encode))
    folder = tmp_path / "folder"
    folder.mkdir()
    Path(os.fsdecode(bytes(folder) + b"/caf\xe9.jpg")).write_bytes(encode(picture(60), "JPEG"))
    os.mkfifo(folder / "pipe.jpg")
    (folder / "ok.jpg").write_bytes(encode(picture(61), "JPEG"))
    sources = [
        PathSource(name="zipped", path=str(archive), label="ai"),
        PathSource(name="folder", path=str(folder), label="real"),
    ]
    raw = tmp_path / "raw"
    fetch_all(sources, raw, seed=0, limits=ArchiveLimits())
    manifest = build_manifest(raw, sources, [], MergeSettings(workers=1))
    got = sorted((r.source, r.path, r.status, r.reason or "") for r in manifest.itertuples())
    mojibake = "café".encode().decode("cp437") + ".jpg"
    # One row per file member (12 of the 13 entries: one is a folder entry) and per file.
    assert got == sorted(
        [
            ("zipped", "a", "rejected", "duplicate_name"),
            ("zipped", "a/b.jpg", "accepted", ""),
            ("zipped", "crc-deflated.jpg", "rejected", "corrupt"),
            ("zipped", "crc-stored.jpg", "rejected", "corrupt"),
            ("zipped", "good.jpg", "accepted", ""),
            ("zipped", "good.jpg", "rejected", "duplicate_name"),
            ("zipped", "line\nbreak.jpg", "accepted", ""),
            ("zipped", "method.jpg", "rejected", "unsupported_compression"),
            ("zipped", mojibake, "accepted", ""),
            ("zipped", "pipe.jpg", "rejected", "not_a_regular_file"),
            ("zipped", "win/c.jpg", "accepted", ""),
            ("zipped", "x" * 300 + ".jpg", "rejected", "unwritable"),
            ("folder", "caf\\xe9.jpg", "accepted", ""),
            ("folder", "ok.jpg", "accepted", ""),
            ("folder", "pipe.jpg", "rejected", "not_a_regular_file"),
        ]
    )
    renamed = manifest[manifest["path"] == "caf\\xe9.jpg"].iloc[0]
    assert "renamed by fetch" in renamed["detail"]
    # What the merge stage writes reads back the same.
    csv = tmp_path / "manifest.csv"
    write_atomic(csv, manifest.to_csv(index=False))
    back = read_csv(csv)
    assert back[["source", "path", "status"]].equals(manifest[["source", "path", "status"]])
