"""standardize_manifest: accepted rows only, in byte-identical tar shards with a seekable index."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from sneakers import standardize
from sneakers.errors import SneakersError
from sneakers.params import StandardizeSettings, validate
from sneakers.shards import INDEX_COLUMNS, read_image
from sneakers.standardize import standardize_manifest

ROOT = Path(__file__).resolve().parents[1]
MAX_PIXELS = 1_000_000
SETTINGS = StandardizeSettings(size=48, fit="crop", jpeg_quality=90, shard_size=2, workers=1)
RECIPE = SETTINGS.recipe(MAX_PIXELS)


@pytest.fixture
def raw_and_manifest(
    tmp_path: Path,
    picture: Callable[..., Image.Image],
    encode: Callable[..., bytes],
    write: Callable[[Path, bytes], Path],
) -> tuple[Path, pd.DataFrame]:
    """Five accepted files and three that must not be standardized (one is not even an image)."""
    raw = tmp_path / "raw"
    rows = []

    def add(source: str, path: str, data: bytes, status: str, label: str, group: str = "") -> None:
        write(raw / source / path, data)
        sha = hashlib.sha256(data).hexdigest()
        rows.append(
            {
                "source": source,
                "role": "train",
                "path": path,
                "label": label,
                "brand": "",
                "generator": source if label == "ai" else "",
                "status": status,
                "reason": "" if status == "accepted" else "x",
                "group": group or None,
                "id": sha[:16] if status == "accepted" else None,
                "sha256": sha,
            }
        )

    add(
        "photos", "real/a.jpg", encode(picture(1, scale=10), "JPEG", quality=95), "accepted", "real"
    )
    add("photos", "real/b.png", encode(picture(2), "PNG"), "accepted", "real", "g00000")
    add("photos", "real/b2.jpg", encode(picture(2), "JPEG"), "duplicate", "real", "g00000")
    add("photos", "real/broken.jpg", b"\xff\xd8\xff not really", "rejected", "real")
    add("renders", "c.png", encode(picture(3).convert("RGBA"), "PNG"), "accepted", "ai")
    add("renders", "d.gif", encode(picture(4), "GIF"), "accepted", "ai")
    add("renders", "e.webp", encode(picture(5), "WEBP", quality=80), "accepted", "ai")
    add("renders", ".DS_Store", b"junk", "ignored", "ai")
    return raw, pd.DataFrame(rows)


def run(raw: Path, manifest: pd.DataFrame, out: Path, settings: StandardizeSettings = SETTINGS):
    return standardize_manifest(manifest, raw, out, settings, MAX_PIXELS)


def test_index_lists_all_accepted_rows_and_only_them(
    tmp_path: Path, raw_and_manifest: tuple[Path, pd.DataFrame]
) -> None:
    raw, manifest = raw_and_manifest
    index = run(raw, manifest, tmp_path / "std")
    accepted = manifest[manifest["status"] == "accepted"]
    assert list(index.columns) == INDEX_COLUMNS
    assert list(index["id"]) == list(accepted["id"])
    assert list(index["path"]) == ["real/a.jpg", "real/b.png", "c.png", "d.gif", "e.webp"]
    assert list(index["label"]) == ["real", "real", "ai", "ai", "ai"]
    assert index.loc[index["path"] == "real/b.png", "group"].item() == "g00000"
    on_disk = pd.read_csv(tmp_path / "std" / "index.csv", keep_default_na=False, na_values=[""])
    assert list(on_disk.columns) == INDEX_COLUMNS
    assert list(on_disk["id"]) == list(index["id"])


def test_shards_are_tar_files_and_the_index_points_into_them(
    tmp_path: Path, raw_and_manifest: tuple[Path, pd.DataFrame]
) -> None:
    raw, manifest = raw_and_manifest
    out = tmp_path / "std"
    index = run(raw, manifest, out)
    # shard_size 2 with 5 images: 2 + 2 + 1.
    assert sorted(p.name for p in out.iterdir()) == [
        "index.csv",
        "shard-00000.tar",
        "shard-00001.tar",
        "shard-00002.tar",
    ]
    assert list(index["shard"].value_counts().sort_index()) == [2, 2, 1]
    for _, row in index.iterrows():
        with tarfile.open(out / row["shard"]) as tar:
            member = tar.getmember(f"{row['id']}.jpg")
            assert (member.mtime, member.mode) == (0, 0o644)
            from_tar = tar.extractfile(member).read()
        assert read_image(out, row) == from_tar
        assert len(from_tar) == row["length"]
        expected = RECIPE.apply((raw / row["source"] / row["path"]).read_bytes())
        assert from_tar == expected
        with Image.open(io.BytesIO(from_tar)) as im:
            assert (im.format, im.size, im.mode) == ("JPEG", (48, 48), "RGB")


def test_second_run_is_byte_identical(
    tmp_path: Path, raw_and_manifest: tuple[Path, pd.DataFrame]
) -> None:
    raw, manifest = raw_and_manifest
    out = tmp_path / "std"
    run(raw, manifest, out)
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "stale.txt").write_text("left over")
    run(raw, manifest, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    assert not (tmp_path / "std.partial").exists()


def test_two_worker_pool_gives_the_same_bytes(
    tmp_path: Path, raw_and_manifest: tuple[Path, pd.DataFrame]
) -> None:
    """The real process pool: results must come back in input order, so shards are identical."""
    raw, manifest = raw_and_manifest
    one = run(raw, manifest, tmp_path / "one")
    settings = StandardizeSettings(size=48, fit="crop", jpeg_quality=90, shard_size=2, workers=2)
    two = run(raw, manifest, tmp_path / "two", settings)
    pd.testing.assert_frame_equal(one, two)
    for shard in sorted(set(one["shard"])):
        assert (tmp_path / "one" / shard).read_bytes() == (tmp_path / "two" / shard).read_bytes()


def test_parts_that_do_not_line_up_with_shards_give_the_same_bytes(
    tmp_path: Path, raw_and_manifest: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker parts of 2 images into shards of 3: several parts per shard, one cut short by a
    shard boundary; the shards must equal tarfile's own, written one image at a time."""
    raw, manifest = raw_and_manifest
    settings = StandardizeSettings(size=48, fit="crop", jpeg_quality=90, shard_size=3, workers=1)
    accepted = manifest[manifest["status"] == "accepted"].reset_index(drop=True)
    one = run(raw, manifest, tmp_path / "one", settings)
    monkeypatch.setattr(standardize, "PART_SIZE", 2)
    two = run(raw, manifest, tmp_path / "two", settings.model_copy(update={"workers": 2}))
    pd.testing.assert_frame_equal(one, two)
    assert list(two["shard"]) == ["shard-00000.tar"] * 3 + ["shard-00001.tar"] * 2
    for k, shard in enumerate(sorted(set(two["shard"]))):
        expected = io.BytesIO()
        with tarfile.open(fileobj=expected, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for _, row in accepted.iloc[3 * k : 3 * k + 3].iterrows():
                data = RECIPE.apply((raw / row["source"] / row["path"]).read_bytes())
                info = tarfile.TarInfo(f"{row['id']}.jpg")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
        assert (tmp_path / "two" / shard).read_bytes() == expected.getvalue()


def test_one_big_shard(tmp_path: Path, raw_and_manifest: tuple[Path, pd.DataFrame]) -> None:
    raw, manifest = raw_and_manifest
    settings = StandardizeSettings(size=48, fit="pad", jpeg_quality=75, shard_size=1000, workers=1)
    index = run(raw, manifest, tmp_path / "std", settings)
    assert set(index["shard"]) == {"shard-00000.tar"}
    assert list(index["offset"]) == sorted(index["offset"])


def test_nothing_accepted_is_a_user_error(
    tmp_path: Path, raw_and_manifest: tuple[Path, pd.DataFrame]
) -> None:
    raw, manifest = raw_and_manifest
    none = manifest.assign(status="rejected")
    with pytest.raises(SneakersError, match="no accepted image"):
        run(raw, none, tmp_path / "std")


def test_unreadable_accepted_file_says_to_rerun_merge(
    tmp_path: Path, raw_and_manifest: tuple[Path, pd.DataFrame]
) -> None:
    raw, manifest = raw_and_manifest
    (raw / "renders" / "d.gif").write_bytes(b"changed since merge")
    with pytest.raises(SneakersError, match=r"re-run `dvc repro merge`"):
        run(raw, manifest, tmp_path / "std")
    assert not (tmp_path / "std").exists()


def params_with(**standardize: object) -> dict:
    """The repository's params.yaml with some standardize keys changed."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["standardize"].update(standardize)
    return params


def test_settings_refuse_a_shrinking_resample() -> None:
    """The resample enlarges, then crops the centre back to size: below 1 it would shrink."""
    with pytest.raises(SneakersError, match=r"^standardize\.resample: is 0\.9 \(use at least 1"):
        validate(params_with(resample=0.9))
    assert validate(params_with(resample=1)).standardize.resample == 1
