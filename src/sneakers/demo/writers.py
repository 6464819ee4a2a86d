"""The demo sources on disk: each picture encoded and laid out as its Kaggle source lays it."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from PIL import Image, ImageCms

from sneakers.demo.scenes import photo, render
from sneakers.demo.shoe import BRANDS
from sneakers.parallel import parallel_map
from sneakers.params import Demo, DemoCompiled, DemoPhotos

COMPILED_SIZE = 240
EXTRA_START = 100_000  # picture indices of compiled-only pictures, far beyond any source count
BROKEN_INDEX = 200_000  # picture index of the truncated JPEG in the compiled source


@lru_cache(maxsize=1)
def _srgb_icc() -> bytes:
    """sRGB profile with its creation date zeroed, so files embedding it stay reproducible."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = bytes(12)
    return bytes(data)


def _jpeg(im: Image.Image, quality: int, icc: bool = False) -> bytes:
    buf = io.BytesIO()
    extra = {"icc_profile": _srgb_icc()} if icc else {}
    im.save(buf, "JPEG", quality=quality, subsampling=2, optimize=False, **extra)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _photo_name(index: int) -> str:
    return f"{BRANDS[index % len(BRANDS)]}_{index}"


def _reencode(jpeg: bytes, quality: int) -> bytes:
    """Decode a photo's JPEG and save it again, as a dataset compiler re-encoding images does."""
    im = Image.open(io.BytesIO(jpeg)).convert("RGB")
    if im.size != (COMPILED_SIZE, COMPILED_SIZE):
        im = im.resize((COMPILED_SIZE, COMPILED_SIZE), Image.Resampling.LANCZOS)
    return _jpeg(im, quality)


def _photo_jpeg(seed: int, index: int, size: int) -> bytes:
    im, quality = photo(seed, index, size)
    return _jpeg(im, quality)


def _photo_file(index: int, seed: int, size: int) -> bytes:
    return _photo_jpeg(seed, index, size)


def _render_file(index: int, seed: int, size: int) -> tuple[str, bytes]:
    name, im = render(seed, index, size)
    return name, _png(im)


def _compiled_real_file(index: int, seed: int, size: int) -> bytes:
    return _reencode(_photo_jpeg(seed, index, size), 95)


def _compiled_ai_file(index: int, seed: int, size: int) -> tuple[str, bytes]:
    name, im = render(seed, index, size)
    small = im.resize((COMPILED_SIZE, COMPILED_SIZE), Image.Resampling.LANCZOS)
    return name, _jpeg(small, 90, icc=True)


def _draw(fn: Callable[..., Any], indices: list[int], seed: int, size: int, desc: str) -> list:
    """Draw pictures in parallel (one per core), in index order, with a progress bar."""
    return list(parallel_map(partial(fn, seed=seed, size=size), indices, workers=0, desc=desc))


def _indices(settings: DemoPhotos) -> list[int]:
    """Picture indices `start` .. `start + count`: a source drawn from a later start (an eval
    source, say) holds pictures that no source from 0 holds."""
    return list(range(settings.start, settings.start + settings.count))


def _write_photos(settings: DemoPhotos, out_dir: Path, seed: int) -> list[Path]:
    """Kaggle nike-adidas-converse layout: train/test split by index, one folder per brand."""
    indices = _indices(settings)
    files = _draw(_photo_file, indices, seed, settings.size, "demo photos")
    written = []
    for i, data in zip(indices, files, strict=True):
        split = "test" if i % 5 == 4 else "train"
        brand = BRANDS[i % len(BRANDS)]
        written.append(_write(out_dir / split / brand / f"{_photo_name(i)}.jpg", data))
    return written


def _write_renders(settings: DemoPhotos, out_dir: Path, seed: int) -> list[Path]:
    """MidJourney-like dump: high-resolution PNGs with random names in one folder."""
    indices = _indices(settings)
    files = _draw(_render_file, indices, seed, settings.size, "demo renders")
    return [_write(out_dir / f"{name}.png", data) for name, data in files]


def _write_compiled(settings: DemoCompiled, out_dir: Path, seed: int) -> list[Path]:
    """Compiled real-vs-AI dataset: re-encoded copies of both sources plus its own quirks.

    Besides copies it holds pictures found nowhere else, a near-duplicate pair, OS junk and a
    truncated JPEG, so the pipeline has duplicates, junk and corrupt files to account for.
    """
    photo_size, render_size = settings.photo_size, settings.render_size
    extra_real = range(EXTRA_START, EXTRA_START + settings.extra_real)
    extra_ai = range(EXTRA_START, EXTRA_START + settings.extra_ai)
    real_ids = [*range(settings.real), *extra_real]
    ai_ids = [*range(settings.ai), *extra_ai]
    real_dir, ai_dir = out_dir / "real", out_dir / "ai-midjourney"
    reals = _draw(_compiled_real_file, real_ids, seed, photo_size, "demo compiled real")
    written = [
        _write(real_dir / f"{_photo_name(i)}.jpg", data)
        for i, data in zip(real_ids, reals, strict=True)
    ]
    if real_ids and real_ids[0] == 0:
        again = _reencode(_photo_jpeg(seed, 0, photo_size), 80)
        written.append(_write(real_dir / f"{_photo_name(0)} (1).jpg", again))
    ais = _draw(_compiled_ai_file, ai_ids, seed, render_size, "demo compiled ai")
    written += [_write(ai_dir / f"{name}.jpg", data) for name, data in ais]
    broken = _reencode(_photo_jpeg(seed, BROKEN_INDEX, photo_size), 95)
    written.append(_write(real_dir / "broken_0.jpg", broken[: len(broken) // 2]))
    written.append(_write(out_dir / ".DS_Store", b"\x00\x00\x00\x01Bud1" + bytes(24)))
    apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(16)
    written.append(_write(out_dir / "__MACOSX" / "real" / "._broken_0.jpg", apple_double))
    return written


WRITERS: dict[str, Callable[[Any, Path, int], list[Path]]] = {
    "photos": _write_photos,
    "renders": _write_renders,
    "compiled": _write_compiled,
}


def generate_source(settings: Demo, out_dir: Path, seed: int) -> list[Path]:
    """Write one demo source's files under out_dir (created if missing); return them, sorted.

    Default-run stand-in for the Kaggle sources (see `sneakers.demo` for the kinds and settings).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return sorted(WRITERS[settings.kind](settings, out_dir, seed))
