"""build_manifest: one row per file found, every duplicate and rejection accounted for.

The raw folder is built by hand with three sources that overlap the way the study's Kaggle
sources do: exact copies, re-encoded and resized copies, a copy filed under the other label,
unlabeled folders, OS junk and entries that fetch refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sneakers.errors import SneakersError
from sneakers.files import read_csv
from sneakers.merge import (
    COLUMNS,
    INDEXED_THRESHOLD,
    build_manifest,
    near_pairs,
    summarize,
    tie_named_groups,
)
from sneakers.params import MergeSettings, PathSource

BRANDS = ["adidas", "converse", "nike"]
STATUSES = ("accepted", "rejected", "duplicate", "ignored")  # every row has exactly one
SETTINGS = MergeSettings(min_size=32, max_pixels=1_000_000, near_threshold=4, workers=1)
SOURCES = [
    PathSource(name="shop", path="/x/shop", label="real", brand="folder"),
    PathSource(name="renders", path="/x/renders", label="ai"),
    PathSource(
        name="compiled",
        path="/x/compiled.zip",
        labels={"real": "real", "ai-midjourney": "ai"},
        brand="prefix",
        generator="midjourney",
    ),
]
REFUSED = [
    {
        "path": "real/escape.jpg",
        "status": "rejected",
        "reason": "link_outside_source",
        "detail": "/etc/passwd",
    },
]

# (source, path) -> (status, reason) for every file the raw folder holds or fetch refused.
EXPECTED = {
    ("shop", ".DS_Store"): ("ignored", "os_junk"),
    ("shop", "Nike/e.png"): ("accepted", ""),
    ("shop", "adidas/b.jpg"): ("duplicate", "near_duplicate"),  # a 2x copy comes later
    ("shop", "converse/c.jpg"): ("accepted", ""),  # same size as the q95 copy: earlier wins
    ("shop", "notes.txt"): ("rejected", "not_an_image"),
    ("shop", "nike/a.jpg"): ("accepted", ""),
    ("shop", "nike/a_copy.jpg"): ("duplicate", "exact_duplicate"),  # within the source
    ("shop", "tiny.png"): ("rejected", "too_small"),
    ("renders", "six.png"): ("rejected", "label_conflict"),
    ("renders", "x.png"): ("accepted", ""),
    ("renders", "y.png"): ("accepted", ""),
    ("compiled", "__MACOSX/real/._nike_1.jpg"): ("ignored", "os_junk"),
    ("compiled", "ai-midjourney/x.jpg"): ("duplicate", "near_duplicate"),  # re-encoded q60
    ("compiled", "other/unsorted.jpg"): ("rejected", "unlabeled"),
    ("compiled", "real/6.jpg"): ("rejected", "label_conflict"),
    ("compiled", "real/adidas_2.jpg"): ("accepted", ""),  # 2x larger than shop's copy
    ("compiled", "real/converse_3.jpg"): ("duplicate", "near_duplicate"),
    ("compiled", "real/escape.jpg"): ("rejected", "link_outside_source"),  # from _fetch.json
    ("compiled", "real/nike_1.jpg"): ("duplicate", "exact_duplicate"),  # across sources
    ("compiled", "real/nike_7.jpg"): ("accepted", ""),
    ("compiled", "real/puma_8.jpg"): ("accepted", ""),
}


@pytest.fixture
def raw(
    tmp_path: Path,
    picture: Callable[..., Image.Image],
    encode: Callable[..., bytes],
    write: Callable[[Path, bytes], Path],
    fetch_report: Callable[[Path, list[dict[str, Any]]], Path],
) -> Path:
    """data/raw with the three overlapping sources and their _fetch.json."""
    raw = tmp_path / "raw"
    shop, renders, compiled = raw / "shop", raw / "renders", raw / "compiled"
    original = encode(picture(1), "JPEG", quality=90)
    write(shop / "nike" / "a.jpg", original)
    write(shop / "nike" / "a_copy.jpg", original)
    write(shop / "Nike" / "e.png", encode(picture(5), "PNG"))
    write(shop / "adidas" / "b.jpg", encode(picture(2), "JPEG", quality=90))
    write(shop / "converse" / "c.jpg", encode(picture(3), "JPEG", quality=75))
    write(shop / ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(shop / "notes.txt", b"prices\n")
    write(shop / "tiny.png", encode(picture(12, scale=2), "PNG"))  # 18 x 16
    write(renders / "x.png", encode(picture(10), "PNG"))
    write(renders / "y.png", encode(picture(9), "PNG"))
    write(renders / "six.png", encode(picture(6), "PNG"))
    write(compiled / "real" / "nike_1.jpg", original)
    write(compiled / "real" / "adidas_2.jpg", encode(picture(2, scale=16), "JPEG", quality=90))
    write(compiled / "real" / "converse_3.jpg", encode(picture(3), "JPEG", quality=95))
    write(compiled / "real" / "6.jpg", encode(picture(6), "JPEG", quality=80))
    write(compiled / "real" / "nike_7.jpg", encode(picture(7), "JPEG", quality=95))
    write(compiled / "real" / "puma_8.jpg", encode(picture(8), "JPEG", quality=95))
    write(compiled / "ai-midjourney" / "x.jpg", encode(picture(10), "JPEG", quality=60))
    write(compiled / "other" / "unsorted.jpg", encode(picture(11), "JPEG", quality=90))
    write(compiled / "__MACOSX" / "real" / "._nike_1.jpg", b"\x00\x05\x16\x07resource")
    fetch_report(
        raw, [{"name": "shop"}, {"name": "renders"}, {"name": "compiled", "refused": REFUSED}]
    )
    return raw


@pytest.fixture
def manifest(raw: Path) -> pd.DataFrame:
    return build_manifest(raw, SOURCES, BRANDS, SETTINGS)


def row(manifest: pd.DataFrame, source: str, path: str) -> pd.Series:
    hits = manifest[(manifest["source"] == source) & (manifest["path"] == path)]
    assert len(hits) == 1, f"{source}/{path} appears {len(hits)} times"
    return hits.iloc[0]


def test_one_row_per_file_with_the_right_verdict(manifest: pd.DataFrame, raw: Path) -> None:
    files = [p.relative_to(raw) for p in raw.rglob("*") if p.is_file()]
    found = {(f.parts[0], "/".join(f.parts[1:])) for f in files if len(f.parts) > 1}
    listed = set(zip(manifest["source"], manifest["path"], strict=True))
    assert listed == found | {("compiled", "real/escape.jpg")}
    assert len(manifest) == len(listed)
    verdicts = {(r.source, r.path): (r.status, r.reason) for r in manifest.itertuples()}
    assert verdicts == EXPECTED


def test_columns_order_and_statuses_add_up(manifest: pd.DataFrame) -> None:
    assert list(manifest.columns) == COLUMNS
    # Rows come in profile order of the sources, then by path, so the CSV is stable.
    assert list(manifest["source"].drop_duplicates()) == ["shop", "renders", "compiled"]
    for _, part in manifest.groupby("source", sort=False):
        assert list(part["path"]) == sorted(part["path"])
    counts = manifest["status"].value_counts()
    assert len(manifest) == sum(counts.get(s, 0) for s in STATUSES)
    assert set(counts.index) == set(STATUSES)


def test_duplicate_groups_and_kept_members(manifest: pd.DataFrame) -> None:
    def group_of(source: str, path: str) -> str:
        value = row(manifest, source, path)["group"]
        assert isinstance(value, str) and value.startswith("g"), f"{source}/{path}: {value!r}"
        return value

    exact = group_of("shop", "nike/a.jpg")
    assert group_of("shop", "nike/a_copy.jpg") == exact == group_of("compiled", "real/nike_1.jpg")
    assert group_of("shop", "adidas/b.jpg") == group_of("compiled", "real/adidas_2.jpg")
    assert group_of("shop", "converse/c.jpg") == group_of("compiled", "real/converse_3.jpg")
    assert group_of("renders", "x.png") == group_of("compiled", "ai-midjourney/x.jpg")
    assert group_of("renders", "six.png") == group_of("compiled", "real/6.jpg")
    assert manifest["group"].nunique() == 5
    assert pd.isna(row(manifest, "shop", "Nike/e.png")["group"])
    assert pd.isna(row(manifest, "compiled", "real/nike_7.jpg")["group"])

    assert row(manifest, "shop", "nike/a_copy.jpg")["detail"] == "kept shop/nike/a.jpg"
    assert row(manifest, "compiled", "real/nike_1.jpg")["detail"] == "kept shop/nike/a.jpg"
    assert row(manifest, "shop", "adidas/b.jpg")["detail"] == "kept compiled/real/adidas_2.jpg"
    big = row(manifest, "compiled", "real/adidas_2.jpg")
    assert (big["width"], big["height"]) == (144, 128)
    assert row(manifest, "compiled", "real/converse_3.jpg")["detail"] == "kept shop/converse/c.jpg"
    # The lossless original wins over its re-encoded copy.
    assert row(manifest, "compiled", "ai-midjourney/x.jpg")["detail"] == "kept renders/x.png"


def test_an_eval_source_loses_its_copies_of_training_files_and_training_loses_none(
    raw: Path,
) -> None:
    """With the shop as an eval source, its copies of training pictures leave it, and the
    training sources keep exactly what they keep without the shop."""
    sources = [SOURCES[0].model_copy(update={"role": "eval"}), *SOURCES[1:]]
    manifest = build_manifest(raw, sources, BRANDS, SETTINGS)
    verdicts = {(r.source, r.path): (r.status, r.reason or "") for r in manifest.itertuples()}
    assert verdicts == {
        **EXPECTED,
        ("shop", "nike/a.jpg"): ("duplicate", "exact_duplicate"),
        ("compiled", "real/nike_1.jpg"): ("accepted", ""),
        ("shop", "converse/c.jpg"): ("duplicate", "near_duplicate"),
        ("compiled", "real/converse_3.jpg"): ("accepted", ""),
    }
    assert (
        row(manifest, "shop", "nike/a.jpg")["detail"] == "of training file compiled/real/nike_1.jpg"
    )
    assert set(manifest.loc[manifest["source"] == "shop", "role"]) == {"eval"}
    without = build_manifest(raw, SOURCES[1:], BRANDS, SETTINGS)
    kept = manifest[(manifest["role"] == "train") & (manifest["status"] == "accepted")]
    alone = without[without["status"] == "accepted"]
    pairs = ["source", "path"]
    assert set(kept[pairs].itertuples(index=False)) == set(alone[pairs].itertuples(index=False))


def test_label_conflict_rejects_the_whole_group(manifest: pd.DataFrame) -> None:
    for source, path in (("renders", "six.png"), ("compiled", "real/6.jpg")):
        conflict = row(manifest, source, path)
        assert conflict["status"] == "rejected" and conflict["reason"] == "label_conflict"
        assert "ai and real" in conflict["detail"]
        assert pd.isna(conflict["id"])


def test_ids_only_on_accepted_rows(manifest: pd.DataFrame) -> None:
    accepted = manifest["status"] == "accepted"
    assert manifest.loc[accepted, "id"].notna().all()
    assert manifest.loc[~accepted, "id"].isna().all()
    assert manifest.loc[accepted, "id"].is_unique
    assert (manifest.loc[accepted, "id"] == manifest.loc[accepted, "sha256"].str[:16]).all()


def test_labels_and_brands(manifest: pd.DataFrame) -> None:
    expected = {
        ("shop", "nike/a.jpg"): ("real", "nike"),
        ("shop", "Nike/e.png"): ("real", "nike"),  # folder names match case-insensitively
        ("shop", "adidas/b.jpg"): ("real", "adidas"),
        ("shop", "notes.txt"): ("real", ""),
        ("renders", "x.png"): ("ai", ""),  # no brand rule
        ("compiled", "real/nike_7.jpg"): ("real", "nike"),
        ("compiled", "real/adidas_2.jpg"): ("real", "adidas"),
        ("compiled", "real/puma_8.jpg"): ("real", ""),  # not a listed brand
        ("compiled", "ai-midjourney/x.jpg"): ("ai", ""),
        ("compiled", "real/escape.jpg"): ("real", ""),
    }
    for (source, path), (label, brand) in expected.items():
        found = row(manifest, source, path)
        assert (found["label"], found["brand"]) == (label, brand), f"{source}/{path}"
    unlabeled = row(manifest, "compiled", "other/unsorted.jpg")
    assert pd.isna(unlabeled["label"]) or unlabeled["label"] == ""
    assert "real, ai-midjourney" in unlabeled["detail"]


def test_an_ai_picture_names_its_generator_and_a_real_one_none(manifest: pd.DataFrame) -> None:
    """A source's `generator`, or its name where it has none, on its AI pictures only."""
    assert row(manifest, "compiled", "ai-midjourney/x.jpg")["generator"] == "midjourney"
    assert row(manifest, "renders", "x.png")["generator"] == "renders"
    reals = manifest[manifest["label"] == "real"]
    assert len(reals) and reals["generator"].fillna("").eq("").all()


def test_files_made_from_one_input_form_one_group_with_their_duplicates() -> None:
    """A source's group pattern ties input_image000_* together; a duplicate group that holds
    one of them (here of a file in another source) joins the whole group."""
    paths = [
        "input_image000_encoded.jpg",
        "input_image000_sample01.jpg",
        "input_image001_encoded.jpg",
        "input_image001_sample01.jpg",
        "loose.jpg",
    ]
    frame = pd.DataFrame(
        {
            "source": ["gan"] * 5 + ["other", "other"],
            "path": [*paths, "copy.jpg", "alone.jpg"],
            "status": "accepted",
            "group": [None, None, None, "g00000", None, "g00000", None],
        }
    )
    tied = tie_named_groups(frame, {"gan": r"input_image\d+"})
    group = dict(zip(tied["path"], tied["group"], strict=True))
    assert group["input_image000_encoded.jpg"] == group["input_image000_sample01.jpg"]
    assert group["input_image000_encoded.jpg"] == "gan:input_image000"
    assert group["input_image001_encoded.jpg"] == group["copy.jpg"] == "g00000"
    assert group["input_image001_sample01.jpg"] == "g00000"
    assert pd.isna(group["loose.jpg"]) and pd.isna(group["alone.jpg"])  # each its own
    assert tie_named_groups(frame, {}).equals(frame)


def test_encoding_facts_are_recorded(manifest: pd.DataFrame) -> None:
    q95 = row(manifest, "compiled", "real/converse_3.jpg")
    assert (q95["format"], q95["jpeg_quality"], q95["subsampling"], q95["icc"]) == (
        "JPEG",
        95,
        "4:2:0",
        False,
    )
    png = row(manifest, "renders", "x.png")
    assert png["format"] == "PNG" and pd.isna(png["jpeg_quality"])


def test_summary_counts(manifest: pd.DataFrame) -> None:
    summary = summarize(manifest)
    json.dumps(summary)  # goes into metrics/data.json
    assert summary["files"] == len(EXPECTED) == 21
    assert (summary["accepted"], summary["rejected"], summary["duplicate"], summary["ignored"]) == (
        8,
        6,
        5,
        2,
    )
    assert summary["files"] == sum(summary[s] for s in STATUSES)
    assert summary["by_source"] == {
        "shop": {"real": {"accepted": 3, "duplicate": 2, "rejected": 2, "ignored": 1}},
        "renders": {"ai": {"accepted": 2, "rejected": 1}},
        "compiled": {
            "ai": {"duplicate": 1},
            # __MACOSX/real/... takes its label from the real/ folder inside it.
            "real": {"accepted": 3, "duplicate": 2, "rejected": 2, "ignored": 1},
            "unlabeled": {"rejected": 1},
        },
    }
    assert summary["duplicate_groups"] == {"total": 5, "exact": 1, "near": 4, "label_conflicts": 1}
    assert summary["rejected_by_reason"] == {
        "label_conflict": 2,
        "link_outside_source": 1,
        "not_an_image": 1,
        "too_small": 1,
        "unlabeled": 1,
    }
    assert summary["ignored_by_reason"] == {"os_junk": 2}


def test_broken_links_and_links_out_keep_their_own_reasons(
    raw: Path, fetch_report: Callable[[Path, list[dict[str, Any]]], Path]
) -> None:
    """What fetch refused reaches the manifest with fetch's reason and detail."""
    dangling = {
        "path": "real/dangling.jpg",
        "status": "rejected",
        "reason": "broken_link",
        "detail": "/x/compiled/real/deleted.jpg",
    }
    fetch_report(
        raw,
        [
            {"name": "shop"},
            {"name": "renders"},
            {"name": "compiled", "refused": [*REFUSED, dangling]},
        ],
    )
    manifest = build_manifest(raw, SOURCES, BRANDS, SETTINGS)
    for entry in (*REFUSED, dangling):
        found = row(manifest, "compiled", entry["path"])
        assert (found["status"], found["reason"], found["detail"]) == (
            "rejected",
            entry["reason"],
            entry["detail"],
        )
    reasons = summarize(manifest)["rejected_by_reason"]
    assert (reasons["broken_link"], reasons["link_outside_source"]) == (1, 1)


def test_exact_duplicates_group_even_with_near_matching_off(raw: Path) -> None:
    """A negative threshold disables near matching: only sha256 equality still groups. (params
    allow 0 to 64, so the setting is made past validation: this tests merge, not params.)"""
    settings = SETTINGS.model_copy(update={"near_threshold": -1})
    strict = build_manifest(raw, SOURCES, BRANDS, settings)
    assert row(strict, "compiled", "real/nike_1.jpg")["reason"] == "exact_duplicate"
    for path in ("ai-midjourney/x.jpg", "real/converse_3.jpg", "real/adidas_2.jpg", "real/6.jpg"):
        assert row(strict, "compiled", path)["status"] == "accepted", path
    assert strict["group"].nunique() == 1


def test_missing_fetch_report_says_to_run_fetch(tmp_path: Path) -> None:
    (tmp_path / "raw" / "shop").mkdir(parents=True)
    with pytest.raises(SneakersError, match=r"_fetch.json is missing: run `dvc repro fetch`"):
        build_manifest(tmp_path / "raw", SOURCES[:1], BRANDS, SETTINGS)


def test_source_not_fetched_says_to_run_fetch(
    tmp_path: Path, fetch_report: Callable[[Path, list[dict[str, Any]]], Path]
) -> None:
    fetch_report(tmp_path / "raw", [{"name": "shop"}])
    with pytest.raises(
        SneakersError, match=r"source\(s\) renders, compiled not fetched.*dvc repro"
    ):
        build_manifest(tmp_path / "raw", SOURCES, BRANDS, SETTINGS)


def test_a_file_renamed_by_fetch_says_so_and_its_manifest_round_trips(
    tmp_path: Path,
    picture: Callable[..., Image.Image],
    encode: Callable[..., bytes],
    write: Callable[[Path, bytes], Path],
    fetch_report: Callable[[Path, list[dict[str, Any]]], Path],
) -> None:
    raw = tmp_path / "raw"
    write(raw / "shop" / "nike" / "caf\\xe9.jpg", encode(picture(1), "JPEG"))
    write(raw / "shop" / "nike" / 'line\nbreak, "quoted".jpg', encode(picture(2), "JPEG"))
    note = "renamed by fetch: its name is not valid UTF-8 (each such byte is written as \\xNN)"
    report = fetch_report(raw, [{"name": "shop"}])
    entries = json.loads(report.read_text())
    entries["sources"][0]["renamed"] = [{"path": "nike/caf\\xe9.jpg", "detail": note}]
    report.write_text(json.dumps(entries))
    manifest = build_manifest(raw, SOURCES[:1], BRANDS, SETTINGS)
    rows = {r.path: (r.status, r.detail) for r in manifest.itertuples()}
    assert rows["nike/caf\\xe9.jpg"] == ("accepted", note)
    assert rows['nike/line\nbreak, "quoted".jpg'][0] == "accepted"
    csv = tmp_path / "manifest.csv"
    csv.write_bytes(manifest.to_csv(index=False).encode("utf-8"))
    assert read_csv(csv)["path"].tolist() == manifest["path"].tolist()


def test_files_fetch_never_writes_stop_merge_with_one_line(
    tmp_path: Path, fetch_report: Callable[[Path, list[dict[str, Any]]], Path]
) -> None:
    """A name that is not UTF-8 could not be written to the manifest: data/raw was edited by
    hand, and fetch, which renames such files, makes it right."""
    raw = tmp_path / "raw"
    (raw / "shop").mkdir(parents=True)
    Path(os.fsdecode(bytes(raw / "shop") + b"/caf\xe9.jpg")).write_bytes(b"x")
    fetch_report(raw, [{"name": "shop"}])
    with pytest.raises(SneakersError) as info:
        build_manifest(raw, SOURCES[:1], BRANDS, SETTINGS)
    assert str(info.value) == (
        f"{(raw / 'shop').resolve()}/caf\\xe9.jpg: file name is not valid UTF-8 (data/raw is "
        "written by fetch, which renames such files: run `dvc repro -f fetch`)"
    )


def planted_hashes(seed: int, n: int, threshold: int) -> pd.DataFrame:
    """Random phash/dhash pairs, a third of them copies of earlier ones with 0..threshold + 2 bits
    flipped in each hash, and a cluster sharing their low 40 phash bits (one crowded bucket)."""
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    d = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    p[: n // 10] = (p[: n // 10] >> np.uint64(40) << np.uint64(40)) | p[0] & np.uint64(2**40 - 1)
    bits = np.uint64(1) << np.arange(64, dtype=np.uint64)
    for i in rng.choice(np.arange(n // 10, n), size=n // 3, replace=False):
        src = rng.integers(i)
        for h in (p, d):
            flips = rng.choice(64, size=rng.integers(max(threshold, 0) + 3), replace=False)
            h[i] = h[src] ^ np.bitwise_or.reduce(bits[flips], initial=np.uint64(0))
    return pd.DataFrame({"phash": [f"{x:016x}" for x in p], "dhash": [f"{x:016x}" for x in d]})


@pytest.mark.parametrize("threshold", [-1, 0, 1, 4, INDEXED_THRESHOLD, INDEXED_THRESHOLD + 1])
def test_near_pairs_index_finds_exactly_what_comparing_every_pair_finds(threshold: int) -> None:
    """The pigeonhole index (and the scan above INDEXED_THRESHOLD) against a brute-force
    n x n comparison: the same pairs, in (i, j) order, as plain ints."""
    hashes = planted_hashes(threshold + 1, 1200, threshold)
    p, d = (np.array([int(h, 16) for h in hashes[c]], dtype=np.uint64) for c in ("phash", "dhash"))
    dist = np.maximum(
        np.bitwise_count(p[:, None] ^ p[None, :]), np.bitwise_count(d[:, None] ^ d[None, :])
    )
    expected = [(int(i), int(j)) for i, j in np.argwhere(np.triu(dist <= threshold, k=1))]
    found = near_pairs(hashes, threshold)
    assert found == expected
    assert threshold < 0 or len(expected) > 30  # planted copies within the threshold are found
    assert all(type(i) is int and type(j) is int for i, j in found)
    assert near_pairs(hashes.iloc[:1], threshold) == near_pairs(hashes.iloc[:0], threshold) == []
