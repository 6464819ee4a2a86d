"""Fetch the sources of the active profile into data/raw/<name>/.

Three kinds: `demo` (generated here, offline), `path` (a local folder or .zip) and `kaggle`
(a pinned dataset version through kagglehub). What fetch refuses to copy (links leaving a
source, unsafe or damaged archive members, pipes, unreadable files) is written to
data/raw/_fetch.json so merge can list it, and so is every file it had to rename.
"""

from __future__ import annotations

import errno
import json
import lzma
import os
import shutil
import stat
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO, Any

import requests

from sneakers import demo
from sneakers.errors import SneakersError
from sneakers.files import FETCH_REPORT, classify_entry, file_kind, safe_name, walk
from sneakers.params import ArchiveLimits, DemoSource, KaggleSource, Source

CHUNK = 1 << 20
# What zipfile raises on a damaged archive or member: found by flipping bytes of test archives.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    struct.error,
)
# The compression methods zipfile unpacks (others raise NotImplementedError when opened).
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# Every later file would fail the same way: fetch stops instead of refusing each one.
FATAL_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
Refused = list[dict[str, Any]]


class ReadError(Exception):
    """Reading a source file or an archive member failed; the original error is the cause."""


def fetch_all(sources: list[Source], raw_dir: Path, seed: int, limits: ArchiveLimits) -> None:
    """Fetch every source into a fresh temporary folder, then move it into place."""
    staging = raw_dir.with_name(raw_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        report = [fetch_one(source, staging / source.name, seed, limits) for source in sources]
        (staging / FETCH_REPORT).write_text(json.dumps({"sources": report}, indent=2) + "\n")
    except BaseException:  # an error or an interrupt (Ctrl-C, SIGTERM): no half-fetched folder
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(raw_dir, ignore_errors=True)
    staging.rename(raw_dir)


def fetch_one(source: Source, dest: Path, seed: int, limits: ArchiveLimits) -> dict[str, Any]:
    """Fetch one source into dest; its entry of the fetch report."""
    dest.mkdir()
    refused, renamed = fetch_source(source, dest, seed, limits)
    files = sum(1 for p in dest.rglob("*") if p.is_file())
    if not files:
        reasons = sorted({entry["reason"] for entry in refused}) or ["no files"]
        raise SneakersError(
            f"source {source.name}: nothing usable was fetched from {origin(source)} "
            f"({len(refused)} refused: {', '.join(reasons)}); check its path or archive"
        )
    print(f"fetch: {source.name}: {files} files ({len(refused)} refused) from {origin(source)}")
    return {
        "name": source.name,
        "kind": source.kind,
        "origin": origin(source),
        "files": files,
        "refused": refused,
        "renamed": renamed,
    }


def origin(source: Source) -> str:
    """Where a source comes from, for the report."""
    if isinstance(source, DemoSource):
        return f"demo:{source.demo.kind}"
    return source.kaggle if isinstance(source, KaggleSource) else source.path


def fetch_source(
    source: Source, dest: Path, seed: int, limits: ArchiveLimits
) -> tuple[Refused, Refused]:
    """Bring one source's files into dest; return the entries refused and those renamed."""
    if isinstance(source, DemoSource):
        demo.generate_source(source.demo, dest, seed)
        return [], []
    if isinstance(source, KaggleSource):
        return copy_folder(kaggle_download(source.kaggle), dest)
    path = Path(source.path)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise SneakersError(
            f"source {source.name}: {path} does not exist; fix its path: in params"
        ) from None
    except OSError as err:
        raise SneakersError(
            f"source {source.name}: cannot read {path}: {err.strerror} (check its permissions, "
            "or fix its path: in params)"
        ) from None
    if stat.S_ISDIR(mode):
        return copy_folder(path, dest)
    if not stat.S_ISREG(mode):  # a pipe or device is never opened: reading it could block
        raise SneakersError(
            f"source {source.name}: {path} is a {file_kind(mode)}, not a folder or a .zip "
            "archive; point path: at one"
        )
    try:
        return extract_zip(path, dest, limits), []
    except SneakersError as err:
        raise SneakersError(f"source {source.name}: {err}") from None


def copy_folder(src: Path, dest: Path) -> tuple[Refused, Refused]:
    """Copy a folder tree; return the entries refused and those renamed.

    Links inside it are copied as files, links leaving it are refused, and so are pipes,
    sockets and devices (never opened) and files that cannot be read. A name that is not
    valid UTF-8 is copied under its safe_name(), so the picture is still used.
    """
    root = src.resolve()
    refused: Refused = []
    renamed: Refused = []
    unlisted: list[OSError] = []
    copied: set[str] = set()
    for path in walk(root, unlisted):
        original = path.relative_to(root).as_posix()
        rel = safe_name(original)
        verdict = classify_entry(root, path) if path.is_symlink() else {"status": "candidate"}
        if verdict["status"] != "candidate":
            refused.append({**verdict, "path": rel, "detail": safe_name(verdict["detail"])})
            continue
        if rel in copied:  # only a renamed file can land on another's name
            problem = {"reason": "duplicate_name", "detail": f"{rel} was already copied"}
        else:
            problem = copy_file(path, dest / rel)
        if problem:
            refused.append({"path": rel, "status": "rejected", **problem})
            continue
        copied.add(rel)
        if rel != original:
            renamed.append(
                {
                    "path": rel,
                    "detail": "renamed by fetch: its name is not valid "
                    "UTF-8 (each such byte is written as \\xNN)",
                }
            )
    for err in unlisted:
        rel = safe_name(Path(err.filename).relative_to(root).as_posix())
        detail = f"folder could not be listed: {err.strerror}; its files were not fetched"
        refused.append(
            {"path": rel, "status": "rejected", "reason": "unreadable", "detail": detail}
        )
    return refused, renamed


def copy_file(path: Path, target: Path) -> dict[str, str] | None:
    """Copy one regular file; why not, when it cannot be."""
    try:
        mode = path.stat().st_mode  # follows a link inside the source to what it names
        if not stat.S_ISREG(mode):
            return _not_regular(mode)
        # O_NONBLOCK: should it have become a pipe since, opening it still returns at once.
        fin = open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")  # noqa: SIM115 - with below
    except OSError as err:
        return {"reason": "unreadable", "detail": f"could not be read: {err.strerror}"}
    with fin:
        mode = os.fstat(fin.fileno()).st_mode
        if not stat.S_ISREG(mode):
            return _not_regular(mode)
        try:
            save(fin, target, (OSError,))
        except ReadError as err:
            return {"reason": "unreadable", "detail": f"could not be read: {err}"}
        except OSError as err:
            return unwritable(err, target)
    return None


def _not_regular(mode: int) -> dict[str, str]:
    return {"reason": "not_a_regular_file", "detail": f"a {file_kind(mode)}: not opened"}


def save(fin: IO[bytes], target: Path, read_errors: tuple[type[Exception], ...]) -> None:
    """Copy fin into a new file at target; what was written goes again if the copy fails.

    A failure to read raises ReadError (from the original error), one to write an OSError.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fout = open(target, "xb")  # noqa: SIM115 - closed below, before an unfinished file goes
    try:
        with fout:
            while True:
                try:
                    chunk = fin.read(CHUNK)
                except read_errors as err:
                    raise ReadError(f"{type(err).__name__}: {err}") from err
                if not chunk:
                    return
                fout.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def unwritable(err: OSError, target: Path) -> dict[str, str]:
    """A file that could not be written under data/raw; a full or read-only disk stops fetch."""
    if err.errno in FATAL_WRITE_ERRORS:
        raise SneakersError(
            f"cannot write {target}: {err.strerror} (free space or make it writable, then run "
            "fetch again)"
        ) from None
    detail = f"could not be written under data/raw: {err.strerror} (rename it in the source)"
    return {"reason": "unwritable", "detail": detail}


def extract_zip(archive: Path, dest: Path, limits: ArchiveLimits) -> Refused:
    """Unpack a .zip without trusting it: no absolute, parent or empty paths, no links, no
    encrypted members, no two members of one name, capped size; a damaged member is refused.
    """
    try:
        fh = open(archive, "rb")  # noqa: SIM115 - handed to ZipFile, closed with it
    except OSError as err:
        raise SneakersError(
            f"cannot read {archive}: {err.strerror} (check its permissions)"
        ) from None
    try:
        zf = zipfile.ZipFile(fh)
    except ZIP_ERRORS as err:
        fh.seek(0)
        head = fh.read(4)
        fh.close()
        raise SneakersError(unreadable_archive(archive, head, err)) from None
    refused: Refused = []
    total = 0
    with fh, zf:
        for member, rel, verdict in plan_members(zf.infolist()):
            verdict = verdict or check_size(member, total, limits)
            if not verdict:
                total += member.file_size
                verdict = unpack(zf, member, dest / rel)
            if verdict:
                # Quoted when it names nothing, so the manifest's path is never empty.
                path = member.filename if rel.parts else repr(member.filename)
                refused.append({"path": path, "status": "rejected", **verdict})
    return refused


def unreadable_archive(archive: Path, head: bytes, err: Exception) -> str:
    """Why zipfile could not list an archive, and what to do, in one line."""
    if isinstance(err, UnicodeDecodeError):
        return (
            f"{archive}: a member name is marked UTF-8 but is not valid UTF-8, so the archive "
            "cannot be listed; re-create it, or unpack it with another tool and point path: at "
            "the folder"
        )
    if head.startswith(ZIP_SIGNATURES) or archive.suffix.lower() == ".zip":
        return (
            f"{archive} is a damaged or truncated .zip archive ({type(err).__name__}: {err}); "
            "re-download or re-create it"
        )
    return (
        f"{archive} is neither a folder nor a .zip archive (other archives, such as .tar.gz or "
        ".7z, are not unpacked: unpack it and point path: at the folder)"
    )


def plan_members(
    members: list[zipfile.ZipInfo],
) -> list[tuple[zipfile.ZipInfo, PurePosixPath, dict[str, str] | None]]:
    """Each file member in name order, with where it goes and why not when its name or type
    rules it out. Folder entries are left out: they hold nothing.

    Of members that land on one name, the first in the archive is unpacked and the others are
    refused; a file member whose name is the folder of other members is refused too, so
    neither can block the other, in either order.
    """
    plan = []
    taken: set[PurePosixPath] = set()
    for member in members:
        name = member.filename.replace("\\", "/")
        mode = member.external_attr >> 16
        if name.endswith("/") or (stat.S_ISDIR(mode) and not member.file_size):
            continue
        rel = PurePosixPath(name)
        verdict = check_member(member, rel)
        if not verdict and rel in taken:
            verdict = {
                "reason": "duplicate_name",
                "detail": f"an earlier member named {rel} "
                "was unpacked; rename one and re-create the archive",
            }
        if not verdict:
            taken.add(rel)
        plan.append((member, rel, verdict))
    folders = {parent for rel in taken for parent in rel.parents}
    clash = {
        "reason": "duplicate_name",
        "detail": "also the name of a folder of other members, "
        "which were unpacked; rename one and re-create the archive",
    }
    plan.sort(key=lambda step: step[0].filename)  # stable: duplicates stay in archive order
    return [(m, rel, verdict or (clash if rel in folders else None)) for m, rel, verdict in plan]


def check_member(member: zipfile.ZipInfo, rel: PurePosixPath) -> dict[str, str] | None:
    """Why an archive member must not be unpacked, whatever else the archive holds."""
    if not rel.parts:
        return {"reason": "unsafe_archive_path", "detail": "empty name: it names no file"}
    if rel.is_absolute() or ".." in rel.parts or ":" in rel.parts[0]:
        return {"reason": "unsafe_archive_path", "detail": "absolute path or '..' in the name"}
    mode = member.external_attr >> 16
    if stat.S_ISLNK(mode):
        return {"reason": "link_in_archive", "detail": "archive members may not be links"}
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: made where files have no Unix mode
        return {"reason": "not_a_regular_file", "detail": f"a {file_kind(mode)} entry"}
    if member.flag_bits & 0x41:  # zipfile would ask for a password (0x40: strong encryption)
        return {"reason": "encrypted", "detail": "password-protected member, not unpacked"}
    if member.compress_type not in ZIP_METHODS:
        method = zipfile.compressor_names.get(member.compress_type, "unknown")
        detail = f"method {member.compress_type} ({method}); re-create the archive with deflate"
        return {"reason": "unsupported_compression", "detail": detail}
    return None


def check_size(member: zipfile.ZipInfo, total: int, limits: ArchiveLimits) -> dict[str, str] | None:
    """Why a member would unpack past the data.archive caps, or None."""
    if total + member.file_size > limits.max_bytes:
        return {"reason": "archive_too_large", "detail": f"over {limits.max_bytes} bytes unpacked"}
    if member.file_size > limits.max_ratio * max(member.compress_size, 1):
        return {"reason": "compression_ratio", "detail": f"over {limits.max_ratio}:1"}
    return None


def unpack(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path) -> dict[str, str] | None:
    """Write one member to target; why not, when it is damaged or cannot be written."""
    try:
        fin = zf.open(member)
    except ZIP_ERRORS as err:
        return _corrupt_member(err)
    with fin:
        try:
            save(fin, target, ZIP_ERRORS)
        except ReadError as err:
            return _corrupt_member(err.__cause__ or err)
        except OSError as err:
            return unwritable(err, target)
    return None


def _corrupt_member(err: BaseException) -> dict[str, str]:
    return {
        "reason": "corrupt",
        "detail": f"damaged archive member ({type(err).__name__}: "
        f"{err}); re-download or re-create the archive",
    }


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
