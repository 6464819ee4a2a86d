"""Merge every source into one manifest: one row per file found, each with a status.

Nothing is dropped silently: a file is `accepted`, `rejected` (with a reason), `duplicate` (of
the kept member of its group) or `ignored` (OS junk). Duplicates are found across and within
sources, exactly by sha256 and nearly by two perceptual hashes.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import partial
from itertools import pairwise
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from sneakers.errors import SneakersError
from sneakers.files import FETCH_REPORT, classify_entry, safe_name, walk
from sneakers.parallel import parallel_map
from sneakers.params import MergeSettings, Source
from sneakers.probe import probe_bytes

LOSSLESS = {"PNG", "BMP", "TIFF"}
STATUSES = ("accepted", "rejected", "duplicate", "ignored")
COLUMNS = [
    "source", "role", "path", "label", "brand", "generator", "status", "reason", "detail",
    "group", "id", "sha256", "format", "width", "height", "mode", "frames", "bytes", "jpeg_quality",
    "subsampling", "icc", "phash", "dhash",
]  # fmt: skip
# Above this near_threshold near_pairs compares all pairs: its blocks would be <= 7 bits, the
# pairs sharing one >= 1/8 of all pairs (1/5 for the shared profile's phashes), and comparing
# an indexed candidate costs about 5x a scanned pair.
INDEXED_THRESHOLD = 8
DTYPES = {
    "width": "Int64",
    "height": "Int64",
    "frames": "Int64",
    "bytes": "Int64",
    "jpeg_quality": "Int64",
    "icc": "boolean",
    "group": object,
    "id": object,
}


def build_manifest(
    raw_dir: Path, sources: list[Source], brands: list[str], settings: MergeSettings
) -> pd.DataFrame:
    """Scan, probe and deduplicate all sources; return the manifest in a stable row order."""
    report = read_fetch_report(raw_dir, sources)
    rows = [
        {"source": source.name, "role": source.role, **row, **describe(source, row["path"], brands)}
        for source in sources
        for row in scan_source(raw_dir / source.name) + report[source.name]["refused"]
    ]
    labels = {source.name: source.labels for source in sources}
    todo = [i for i, row in enumerate(rows) if row["status"] == "candidate"]
    probe = partial(probe_file, min_size=settings.min_size, max_pixels=settings.max_pixels)
    paths = [str(raw_dir / rows[i]["source"] / rows[i]["path"]) for i in todo]
    for i, facts in zip(todo, parallel_map(probe, paths, settings.workers, "merge"), strict=True):
        rows[i].update(facts)
        if facts["status"] == "accepted" and not rows[i]["label"]:
            folders = ", ".join(labels[rows[i]["source"]])
            rows[i].update(
                status="rejected", reason="unlabeled", detail=f"no folder among: {folders}"
            )
    renamed = {
        (name, entry["path"]): entry["detail"]
        for name, fetched in report.items()
        for entry in fetched.get("renamed", [])  # written by fetch since it renames
    }
    for row in rows:
        note = renamed.get((row["source"], row["path"]))
        if note:
            row["detail"] = f"{row['detail']}; {note}" if row["detail"] else note
    manifest = pd.DataFrame(rows).reindex(columns=COLUMNS).astype(DTYPES)
    order = {s.name: k for k, s in enumerate(sources)}
    manifest = manifest.sort_values(
        ["source", "path"], key=lambda c: c.map(order) if c.name == "source" else c
    ).reset_index(drop=True)
    manifest = mark_duplicates(manifest, settings.near_threshold, order)
    return tie_named_groups(manifest, {s.name: s.group for s in sources if s.group})


def read_fetch_report(raw_dir: Path, sources: list[Source]) -> dict[str, dict[str, Any]]:
    """Fetch's entry for each source: what it refused to copy (links leaving a source, unsafe
    archive members, ...) and what it renamed."""
    report_path = raw_dir / FETCH_REPORT
    if not report_path.exists():
        raise SneakersError(f"{report_path} is missing: run `dvc repro fetch` first")
    report = json.loads(report_path.read_text())
    fetched = {entry["name"] for entry in report["sources"]}
    missing = [s.name for s in sources if s.name not in fetched]
    if missing:
        raise SneakersError(
            f"source(s) {', '.join(missing)} not fetched into {raw_dir}: run `dvc repro fetch`"
        )
    return {entry["name"]: entry for entry in report["sources"]}


def scan_source(root: Path) -> list[dict[str, Any]]:
    """Every entry of a fetched source, with what can be said before decoding.

    Fetch writes only readable files with UTF-8 names; anything else was put there by hand,
    and would be lost or could not be written to the manifest.
    """
    root = root.resolve()
    unlisted: list[OSError] = []
    rows = [
        {"path": p.relative_to(root).as_posix(), **classify_entry(root, p)}
        for p in walk(root, unlisted)
    ]
    if unlisted:
        err = unlisted[0]
        raise SneakersError(
            f"cannot list {err.filename}: {err.strerror} (data/raw is written by fetch: run "
            "`dvc repro -f fetch`)"
        )
    for row in rows:
        if row["path"] != safe_name(row["path"]):
            raise SneakersError(
                f"{root / safe_name(row['path'])}: file name is not valid UTF-8 (data/raw is "
                "written by fetch, which renames such files: run `dvc repro -f fetch`)"
            )
    return rows


def describe(source: Source, rel: str, brands: list[str]) -> dict[str, str]:
    """Label from the source (or its first matching folder), brand from folder or prefix, and
    the generator of an AI picture."""
    parts = PurePosixPath(rel).parts
    label = source.label or next((source.labels[p] for p in parts[:-1] if p in source.labels), "")
    brand = ""
    if source.brand == "folder":
        brand = next((p.lower() for p in reversed(parts[:-1]) if p.lower() in brands), "")
    elif source.brand == "prefix":
        stem = parts[-1].lower()
        brand = next((b for b in brands if stem.startswith(b)), "")
    return {"label": label, "brand": brand, "generator": source.generator_of(label)}


def probe_file(path: str, min_size: int, max_pixels: int) -> dict[str, Any]:
    """Read one file and probe it (runs in a worker process)."""
    return probe_bytes(Path(path).read_bytes(), min_size=min_size, max_pixels=max_pixels)


def near_pairs(hashes: pd.DataFrame, threshold: int) -> list[tuple[int, int]]:
    """Index pairs (i < j, sorted) whose phash AND dhash are both within threshold bits.

    Comparing all pairs costs n^2 / 2 (5e9 at 100k files), so phash is cut into threshold + 1
    blocks of bits: two hashes that differ in at most threshold bits agree exactly on at least
    one block (pigeonhole), and only pairs sharing a block's value are compared, exactly. Above
    INDEXED_THRESHOLD every pair is compared.
    """
    p = np.array([int(h, 16) for h in hashes["phash"]], dtype=np.uint64)
    d = np.array([int(h, 16) for h in hashes["dhash"]], dtype=np.uint64)
    if threshold < 0 or len(p) < 2:
        return []
    if threshold > INDEXED_THRESHOLD:
        pairs = []
        for i in range(len(p) - 1):
            dist = np.maximum(
                np.bitwise_count(p[i] ^ p[i + 1 :]), np.bitwise_count(d[i] ^ d[i + 1 :])
            )
            pairs += [(i, i + 1 + int(j)) for j in np.flatnonzero(dist <= threshold)]
        return pairs
    edges = [k * 64 // (threshold + 1) for k in range(threshold + 2)]
    blocks = [(p >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1) for lo, hi in pairwise(edges)]
    n = len(p)
    codes = np.unique(np.concatenate([_same_key_pairs(p, d, key, threshold) for key in blocks]))
    return list(zip((codes // n).tolist(), (codes % n).tolist(), strict=True))  # i * n + j


def _same_key_pairs(p: np.ndarray, d: np.ndarray, key: np.ndarray, threshold: int) -> np.ndarray:
    """i * n + j for each pair i < j with equal keys whose phash and dhash are within threshold.

    Rows are sorted by key and each is compared with the one `step` places on, for as long as
    both lie in the same run of equal keys: memory stays O(n) however large a bucket grows.
    """
    order = np.argsort(key, kind="stable")
    sorted_key, ps, ds = key[order], p[order], d[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    ends = np.r_[starts[1:], len(key)]
    later = np.repeat(ends, ends - starts) - np.arange(len(key)) - 1  # rows further in the run
    at = np.flatnonzero(later > 0)
    codes = [np.empty(0, np.int64)]
    step = 1
    while at.size:
        close = (np.bitwise_count(ps[at] ^ ps[at + step]) <= threshold) & (
            np.bitwise_count(ds[at] ^ ds[at + step]) <= threshold
        )
        a, b = order[at[close]], order[at[close] + step]
        codes.append(np.minimum(a, b) * len(key) + np.maximum(a, b))
        step += 1
        at = at[later[at] >= step]
    return np.concatenate(codes)


def mark_duplicates(manifest: pd.DataFrame, threshold: int, order: dict[str, int]) -> pd.DataFrame:
    """Group exact and near duplicates (connected components); keep one member per group."""
    manifest = manifest.copy()
    accepted = manifest.index[manifest["status"] == "accepted"].to_numpy()
    manifest["id"] = manifest["sha256"].where(manifest["status"] == "accepted").str[:16]
    for number, members in enumerate(duplicate_groups(manifest.loc[accepted], threshold)):
        resolve_group(manifest, [int(i) for i in accepted[members]], f"g{number:05d}", order)
    return manifest


def duplicate_groups(hashes: pd.DataFrame, threshold: int) -> list[np.ndarray]:
    """Row positions of each group of two or more exact or near duplicates.

    Groups come in the order of their first row, each with its rows in manifest order: the
    numbering of the group names (g00000, ...) that manifests have always had.
    """
    n = len(hashes)
    sha = pd.factorize(hashes["sha256"])[0]
    first_with_sha = np.unique(sha, return_index=True)[1][sha]
    near = np.array(near_pairs(hashes, threshold), dtype=np.int64).reshape(-1, 2)
    # Edges: every row to the first row with its sha256, and every near pair.
    edges = (np.r_[np.arange(n), near[:, 0]], np.r_[first_with_sha, near[:, 1]])
    graph = coo_array((np.ones(len(edges[0])), edges), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    number = pd.factorize(component)[0]  # renumbered in the order of each one's first row
    rows = np.argsort(number, kind="stable")
    members = np.split(rows, np.cumsum(np.bincount(number))[:-1])
    return [m for m in members if len(m) > 1]


def tie_named_groups(manifest: pd.DataFrame, patterns: dict[str, str]) -> pd.DataFrame:
    """Accepted files whose paths share their source's `group` pattern's first match (pictures
    made from one input) form one group, joined with any duplicate group of a member's, so
    that the split keeps them all on one side."""
    key = pd.Series(np.nan, index=manifest.index, dtype=object)
    for source, pattern in patterns.items():
        rows = (manifest["source"] == source) & (manifest["status"] == "accepted")
        found = manifest.loc[rows, "path"].str.extract(f"({pattern})", expand=True)[0]
        key[rows] = source + ":" + found  # no match: the file is a group of its own
    if key.isna().all():
        return manifest
    n, ends = len(manifest), []
    for labels in (manifest["group"], key):  # an edge from each member to its group's first
        codes = pd.factorize(labels)[0]
        rows = np.flatnonzero(codes >= 0)
        ends.append((rows, pd.Series(rows).groupby(codes[rows]).transform("first").to_numpy()))
    src, dst = (np.concatenate(e) for e in zip(*ends, strict=True))
    graph = coo_array((np.ones(len(src)), (src, dst)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    named = manifest["group"].groupby(component).transform("first")  # a duplicate group's name
    named = named.fillna(key.groupby(component).transform("first"))
    tied = manifest["group"].notna() | key.notna()
    out = manifest.copy()
    out.loc[tied, "group"] = named[tied]
    return out


def resolve_group(
    manifest: pd.DataFrame, members: list[int], group: str, order: dict[str, int]
) -> None:
    """Keep the highest-resolution original; a group whose labels disagree is rejected whole.

    Among equal sizes the earlier source in the profile wins: a compilation re-encodes its
    originals, so a higher JPEG quality setting there does not make a better copy. Training
    files are judged among themselves: an eval file that copies one is dropped from the eval
    source (it would score what was learned), and never costs training its file.
    """
    manifest.loc[members, "group"] = group
    trained = [i for i in members if manifest.at[i, "role"] == "train"]
    judged = trained or members
    labels = sorted(set(manifest.loc[judged, "label"]))
    if len(labels) > 1:
        detail = f"group {group} holds {' and '.join(labels)} images"
        manifest.loc[judged, ["status", "reason", "detail", "id"]] = [
            "rejected",
            "label_conflict",
            detail,
            None,
        ]
        kept = None
    else:

        def preference(i: int) -> tuple[Any, ...]:
            """Most pixels first, then lossless, then the earlier source (originals first)."""
            row = manifest.loc[i]
            pixels = row["width"] * row["height"]
            return (-pixels, row["format"] not in LOSSLESS, order[row["source"]], i)

        keep, *others = sorted(judged, key=preference)
        kept = manifest.loc[keep]
        for i in others:
            mark_duplicate(manifest, i, kept, "kept")
    for i in set(members) - set(judged):
        if kept is None:
            manifest.loc[i, ["status", "reason", "detail", "id"]] = [
                "duplicate",
                "near_duplicate",
                f"of training files in {group}",
                None,
            ]
        else:
            mark_duplicate(manifest, i, kept, "of training file")


def mark_duplicate(manifest: pd.DataFrame, i: int, kept: pd.Series, how: str) -> None:
    """Row i becomes a duplicate of the kept row (exact when the bytes are the same)."""
    exact = manifest.at[i, "sha256"] == kept["sha256"]
    manifest.loc[i, ["status", "reason", "detail", "id"]] = [
        "duplicate",
        "exact_duplicate" if exact else "near_duplicate",
        f"{how} {kept['source']}/{kept['path']}",
        None,
    ]


def summarize(manifest: pd.DataFrame) -> dict[str, Any]:
    """Counts for metrics/data.json: per source x label x status, groups, reasons."""
    label = manifest["label"].fillna("").replace("", "unlabeled").rename("label_or_none")
    by_source: dict[str, Any] = {}
    for (source, lab, status), n in manifest.groupby(["source", label, "status"]).size().items():
        by_source.setdefault(source, {}).setdefault(lab, {})[status] = int(n)
    groups = manifest.dropna(subset=["group"]).groupby("group")["sha256"].nunique()
    conflicts = manifest.loc[manifest["reason"] == "label_conflict", "group"].nunique()
    return {
        "files": len(manifest),
        **{s: int((manifest["status"] == s).sum()) for s in STATUSES},
        "by_source": by_source,
        "duplicate_groups": {
            "total": len(groups),
            "exact": int((groups == 1).sum()),
            "near": int((groups > 1).sum()),
            "label_conflicts": int(conflicts),
        },
        "rejected_by_reason": _counts(manifest, "rejected"),
        "ignored_by_reason": _counts(manifest, "ignored"),
    }


def _counts(manifest: pd.DataFrame, status: str) -> dict[str, int]:
    reasons = manifest.loc[manifest["status"] == status, "reason"]
    return {str(k): int(v) for k, v in sorted(Counter(reasons).items())}
