"""Fetch the sources of the active profile into data/raw/<name>/.

Three kinds: `demo` (generated here, offline), `path` (a local folder or .zip) and `kaggle`
(a pinned dataset version through kagglehub). What fetch refuses to copy (links leaving a
source, unsafe archive members) is written to data/raw/_fetch.json so merge can list it.
"""

from __future__ import annotations

import json
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import requests

from sneakers import demo
from sneakers.errors import SneakersError
from sneakers.files import FETCH_REPORT, classify_entry, walk
from sneakers.params import ArchiveLimits, DemoSource, KaggleSource, Source


def fetch_all(sources: list[Source], raw_dir: Path, seed: int, limits: ArchiveLimits) -> None:
    """Fetch every source into a fresh temporary folder, then move it into place."""
    staging = raw_dir.with_name(raw_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    report = []
    for source in sources:
        dest = staging / source.name
        dest.mkdir()
        refused = fetch_source(source, dest, seed, limits)
        files = sum(1 for p in dest.rglob("*") if p.is_file())
        if not files:
            reasons = sorted({entry["reason"] for entry in refused}) or ["no files"]
            raise SneakersError(
                f"source {source.name}: nothing usable was fetched from {origin(source)} "
                f"({len(refused)} refused: {', '.join(reasons)}); check its path or archive"
            )
        report.append({"name": source.name, "kind": source.kind, "origin": origin(source),
                       "files": files, "refused": refused})  # fmt: skip
        print(f"fetch: {source.name}: {files} files ({len(refused)} refused) from {origin(source)}")
    (staging / FETCH_REPORT).write_text(json.dumps({"sources": report}, indent=2) + "\n")
    shutil.rmtree(raw_dir, ignore_errors=True)
    staging.rename(raw_dir)


def origin(source: Source) -> str:
    """Where a source comes from, for the report."""
    if isinstance(source, DemoSource):
        return f"demo:{source.demo.kind}"
    return source.kaggle if isinstance(source, KaggleSource) else source.path


def fetch_source(source: Source, dest: Path, seed: int, limits: ArchiveLimits) -> list[dict]:
    """Bring one source's files into dest; return the entries refused on the way."""
    if isinstance(source, DemoSource):
        demo.generate_source(source.demo, dest, seed)
        return []
    if isinstance(source, KaggleSource):
        return copy_folder(kaggle_download(source.kaggle), dest)
    path = Path(source.path)
    if not path.exists():
        raise SneakersError(f"source {source.name}: {path} does not exist; fix its path: in params")
    if path.is_dir():
        return copy_folder(path, dest)
    if zipfile.is_zipfile(path):
        return extract_zip(path, dest, limits)
    raise SneakersError(f"source {source.name}: {path} is neither a folder nor a .zip archive")


def copy_folder(src: Path, dest: Path) -> list[dict[str, Any]]:
    """Copy a folder tree; links inside it are copied as files, links leaving it are refused."""
    root = src.resolve()
    refused = []
    for path in walk(root):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            verdict = classify_entry(root, path)
            if verdict["status"] != "candidate":
                refused.append({"path": rel, **verdict})
                continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return refused


def extract_zip(archive: Path, dest: Path, limits: ArchiveLimits) -> list[dict[str, Any]]:
    """Unpack a .zip without trusting it: no absolute, parent or empty paths, no links, no
    encrypted members, capped size."""
    refused: list[dict[str, Any]] = []
    total = 0
    with zipfile.ZipFile(archive) as zf:
        for member in sorted(zf.infolist(), key=lambda m: m.filename):
            if member.filename.endswith("/"):  # a folder (is_dir() fails on an empty name)
                continue
            rel = PurePosixPath(member.filename.replace("\\", "/"))
            verdict = check_member(member, rel, total, limits)
            if verdict:
                # Quoted when it names nothing, so the manifest's path is never empty.
                path = member.filename if rel.parts else repr(member.filename)
                refused.append({"path": path, "status": "rejected", **verdict})
                continue
            total += member.file_size
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as fin, open(target, "wb") as fout:
                shutil.copyfileobj(fin, fout)
    return refused


def check_member(
    member: zipfile.ZipInfo, rel: PurePosixPath, total: int, limits: ArchiveLimits
) -> dict[str, str] | None:
    """Why an archive member must not be unpacked, or None when it is safe."""
    if not rel.parts:
        return {"reason": "unsafe_archive_path", "detail": "empty name: it names no file"}
    if rel.is_absolute() or ".." in rel.parts or ":" in rel.parts[0]:
        return {"reason": "unsafe_archive_path", "detail": "absolute path or '..' in the name"}
    if stat.S_ISLNK(member.external_attr >> 16):
        return {"reason": "link_in_archive", "detail": "archive members may not be links"}
    if member.flag_bits & 0x1:  # zipfile would ask for a password
        return {"reason": "encrypted", "detail": "password-protected member, not unpacked"}
    if total + member.file_size > limits.max_bytes:
        return {"reason": "archive_too_large", "detail": f"over {limits.max_bytes} bytes unpacked"}
    if member.file_size > limits.max_ratio * max(member.compress_size, 1):
        return {"reason": "compression_ratio", "detail": f"over {limits.max_ratio}:1"}
    return None


def kaggle_download(handle: str) -> Path:
    """Download a pinned Kaggle dataset version through kagglehub; one clear line on failure."""
    import kagglehub
    from kagglehub import exceptions as kh

    try:
        return Path(kagglehub.dataset_download(handle))
    except (requests.ConnectionError, requests.Timeout):
        raise SneakersError(
            f"cannot reach Kaggle to download {handle}: check the network, or use "
            "`dvc exp run -S data.profile=demo` or a path: source"
        ) from None
    except (kh.UnauthenticatedError, kh.CredentialError):
        raise SneakersError(_credentials_hint(handle)) from None
    except (kh.NotFoundError, requests.HTTPError) as err:
        status = getattr(getattr(err, "response", None), "status_code", 404)
        if status in (401, 403):
            raise SneakersError(_credentials_hint(handle)) from None
        if status == 404 or isinstance(err, kh.NotFoundError):
            raise SneakersError(
                f"Kaggle has no dataset {handle}: check owner/slug/versions/N in data.profiles"
            ) from None
        raise SneakersError(
            f"Kaggle download of {handle} failed (HTTP {status}); retry later"
        ) from None


def _credentials_hint(handle: str) -> str:
    return (
        f"Kaggle refused {handle}: set KAGGLE_USERNAME and KAGGLE_KEY (or ~/.kaggle/kaggle.json) "
        "and accept the dataset's terms on kaggle.com"
    )
