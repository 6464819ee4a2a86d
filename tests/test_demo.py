"""Tests for the synthetic demo sources: layout, encodings, determinism and perceptual hashes."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

import imagehash
import pytest
import yaml
from PIL import Image, JpegImagePlugin

from sneakers.demo import BRANDS, generate_source
from sneakers.errors import SneakersError
from sneakers.params import DemoCompiled, DemoPhotos, DemoRenders, validate

ROOT = Path(__file__).resolve().parents[1]
SEED = 7
PHOTOS = DemoPhotos(kind="photos", count=12)
RENDERS = DemoRenders(kind="renders", count=8, size=256)
COMPILED = DemoCompiled(kind="compiled", real=4, ai=4, extra_real=2, extra_ai=2, render_size=256)
# Standard IJG luminance quantization table (natural order), as libjpeg scales it by quality.
IJG_LUMA = [
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
]


def _quality(im: Image.Image) -> int | None:
    """The JPEG quality whose scaled IJG table equals the file's luminance table."""
    table = list(im.quantization[0])
    for q in range(1, 101):
        scale = 5000 // q if q < 50 else 200 - 2 * q
        if [min(max((b * scale + 50) // 100, 1), 255) for b in IJG_LUMA] == table:
            return q
    return None


def _phash(path: Path, size: int | None = None) -> imagehash.ImageHash:
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    if size:
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return imagehash.phash(rgb)


def _digests(paths: list[Path], root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[Path]]]:
    root = tmp_path_factory.mktemp("demo")
    out = {}
    for settings in (PHOTOS, RENDERS, COMPILED):
        kind = settings.kind
        out[kind] = (root / kind, generate_source(settings, root / kind, SEED))
    return out


def test_photos_layout(sources: dict[str, tuple[Path, list[Path]]]) -> None:
    root, paths = sources["photos"]
    assert len(paths) == 12 and paths == sorted(paths)
    qualities = set()
    for path in paths:
        split, brand, name = path.relative_to(root).parts
        index = int(re.fullmatch(rf"{brand}_(\d+)\.jpg", name).group(1))
        assert brand == BRANDS[index % 3] and split == ("test" if index % 5 == 4 else "train")
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (240, 240))
            assert "icc_profile" not in im.info
            q = _quality(im)
            assert q is not None and 85 <= q <= 95
            qualities.add(q)
    assert len(qualities) > 1
    assert sum(p.relative_to(root).parts[0] == "test" for p in paths) == 2


def test_renders_layout(sources: dict[str, tuple[Path, list[Path]]]) -> None:
    root, paths = sources["renders"]
    assert len(paths) == 8 and all(p.parent == root for p in paths)
    for path in paths:
        assert re.fullmatch(r"[a-z]{11}\.png", path.name)
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("PNG", "RGB", (256, 256))


def test_compiled_layout_and_encodings(sources: dict[str, tuple[Path, list[Path]]]) -> None:
    root, paths = sources["compiled"]
    rel = {str(p.relative_to(root)) for p in paths}
    assert {".DS_Store", "__MACOSX/real/._broken_0.jpg", "real/broken_0.jpg"} <= rel
    real = sorted((root / "real").glob("*.jpg"))
    ai = sorted((root / "ai-midjourney").glob("*.jpg"))
    dup = [p for p in real if p.name.endswith(" (1).jpg")]
    assert len(dup) == 1 and len(real) == 4 + 2 + 1 + 1 and len(ai) == 4 + 2
    assert len(paths) == len(real) + len(ai) + 2
    for path in real + ai:
        if path.name == "broken_0.jpg":
            with pytest.raises(OSError), Image.open(path) as im:
                im.load()
            continue
        with Image.open(path) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (240, 240))
            assert JpegImagePlugin.get_sampling(im) == 2 and not im.info.get("progressive")
            if path.parent.name == "ai-midjourney":
                assert re.fullmatch(r"[a-z]{11}\.jpg", path.name)
                assert _quality(im) == 90
                icc = im.info["icc_profile"]
                assert icc[36:40] == b"acsp" and icc[24:36] == bytes(12)
            else:
                assert "icc_profile" not in im.info
                assert _quality(im) == (95 if path not in dup else 80)


def test_sources_are_deterministic(
    sources: dict[str, tuple[Path, list[Path]]], tmp_path: Path
) -> None:
    for settings in (PHOTOS, RENDERS, COMPILED):
        root, paths = sources[settings.kind]
        again = generate_source(settings, tmp_path / settings.kind, SEED)
        assert _digests(again, tmp_path / settings.kind) == _digests(paths, root)
    other = generate_source(
        PHOTOS.model_copy(update={"count": 2}), tmp_path / "other_seed", SEED + 1
    )
    assert _digests(other, tmp_path / "other_seed") != _digests(
        sources["photos"][1][:2], sources["photos"][0]
    )


def test_compiled_copies_match_originals(sources: dict[str, tuple[Path, list[Path]]]) -> None:
    """Compiled copies are re-encodings of the same pictures, whatever the other counts are."""
    photos_root, _ = sources["photos"]
    renders_root, renders = sources["renders"]
    compiled_root, _ = sources["compiled"]
    for i in range(4):
        name = f"{BRANDS[i % 3]}_{i}.jpg"
        original = photos_root / ("test" if i % 5 == 4 else "train") / BRANDS[i % 3] / name
        copy = compiled_root / "real" / name
        with Image.open(original) as im:
            assert _phash(copy) - imagehash.phash(im.convert("RGB")) <= 4
    ai_names = {p.stem for p in (compiled_root / "ai-midjourney").glob("*.jpg")}
    render_by_name = {p.stem: p for p in renders}
    shared = ai_names & set(render_by_name)
    assert len(shared) == 4
    for stem in shared:
        copy = compiled_root / "ai-midjourney" / f"{stem}.jpg"
        assert _phash(copy) - _phash(render_by_name[stem], 240) <= 4


def test_distinct_pictures_are_far_apart(sources: dict[str, tuple[Path, list[Path]]]) -> None:
    root, compiled = sources["compiled"]
    pictures = [p for p in compiled if p.parent in (root / "real", root / "ai-midjourney")]
    pictures = [p for p in pictures if " (1)" not in p.name and p.name != "broken_0.jpg"]
    hashes = [_phash(p) for p in pictures]
    distances = [a - b for a, b in itertools.combinations(hashes, 2)]
    assert min(distances) >= 12
    dup = next(p for p in compiled if " (1)" in p.name)
    assert _phash(dup) - _phash(dup.with_name(dup.name.replace(" (1)", ""))) <= 4


def test_unknown_kind_is_rejected() -> None:
    """A demo kind the package cannot draw is refused when params.yaml is read."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["profiles"]["demo"][0]["demo"] = {"kind": "videos"}
    with pytest.raises(
        SneakersError, match=r"^data\.profiles\.demo\[0\]\.demo: needs kind: photos, renders"
    ):
        validate(params)
