"""fetch: folders and archives are copied without trusting them; Kaggle failures are one line.

Every Kaggle test stays offline: the real kagglehub call is sent to a closed local proxy port
(what an offline machine sees: requests.ConnectionError within a second), and the HTTP and
credential failures are injected with monkeypatch.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import struct
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import yaml

from sneakers import sources
from sneakers.errors import SneakersError
from sneakers.merge import build_manifest
from sneakers.params import ArchiveLimits, KaggleSource, MergeSettings, PathSource
from sneakers.sources import extract_zip, fetch_all, kaggle_download

ROOT = Path(__file__).resolve().parents[1]
LIMITS = ArchiveLimits()
OFFLINE = {"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}


def path_source(name: str, path: Path) -> PathSource:
    return PathSource(name=name, path=str(path), label="real")


def report(raw: Path) -> dict[str, dict]:
    """_fetch.json by source name."""
    return {e["name"]: e for e in json.loads((raw / "_fetch.json").read_text())["sources"]}


def files_under(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def test_folder_source_copies_files_and_refuses_links_that_leave(tmp_path: Path) -> None:
    src, outside = tmp_path / "pictures", tmp_path / "private"
    (src / "real").mkdir(parents=True)
    (src / "albums").mkdir()
    outside.mkdir()
    (outside / "passwords.jpg").write_bytes(b"secret")
    (src / "real" / "a.jpg").write_bytes(b"photo a")
    (src / "real" / "b with space.jpg").write_bytes(b"photo b")
    (src / "real" / "inside.jpg").symlink_to(src / "real" / "a.jpg")
    (src / "real" / "escape.jpg").symlink_to(outside / "passwords.jpg")
    (src / "real" / "dangling.jpg").symlink_to(src / "real" / "deleted.jpg")
    (src / "real" / "album-link").symlink_to(src / "albums", target_is_directory=True)
    raw = tmp_path / "data" / "raw"

    fetch_all([path_source("pics", src)], raw, seed=1, limits=LIMITS)

    copied = raw / "pics"
    assert files_under(copied) == {
        "real/a.jpg": b"photo a",
        "real/b with space.jpg": b"photo b",
        "real/inside.jpg": b"photo a",
    }
    assert not (copied / "real" / "inside.jpg").is_symlink(), "a link inside is copied as a file"
    assert not any(p.is_symlink() for p in copied.rglob("*"))
    entry = report(raw)["pics"]
    assert (entry["kind"], entry["origin"], entry["files"]) == ("path", str(src), 3)
    refused = {r["path"]: (r["status"], r["reason"]) for r in entry["refused"]}
    assert refused == {
        "real/escape.jpg": ("rejected", "link_outside_source"),
        "real/dangling.jpg": ("rejected", "broken_link"),
        "real/album-link": ("ignored", "link_to_folder"),
    }
    assert b"secret" not in b"".join(files_under(raw).values())
    assert not (raw.parent / "raw.partial").exists()


def test_fetch_replaces_the_previous_raw_folder(tmp_path: Path) -> None:
    src = tmp_path / "pictures"
    src.mkdir()
    (src / "new.jpg").write_bytes(b"new")
    raw = tmp_path / "raw"
    (raw / "pics").mkdir(parents=True)
    (raw / "pics" / "stale.jpg").write_bytes(b"old")
    (raw / "gone-source").mkdir()
    fetch_all([path_source("pics", src)], raw, seed=1, limits=LIMITS)
    assert sorted(p.name for p in raw.iterdir()) == ["_fetch.json", "pics"]
    assert files_under(raw / "pics") == {"new.jpg": b"new"}


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SneakersError])
def test_a_fetch_stopped_midway_leaves_no_partial_folder(tmp_path: Path, stop: type) -> None:
    """Ctrl-C (SIGTERM arrives as one too, through run_main) or an error in the second source."""
    src = tmp_path / "pictures"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"a")
    raw = tmp_path / "raw"
    (raw / "pics").mkdir(parents=True)
    (raw / "pics" / "kept.jpg").write_bytes(b"the last complete fetch")
    original = sources.fetch_source

    def second_fails(source, *args):
        if source.name == "second":
            raise stop("stopped")
        return original(source, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sources, "fetch_source", second_fails)
        with pytest.raises(stop):
            fetch_all([path_source("pics", src), path_source("second", src)], raw, 1, LIMITS)
    assert not (tmp_path / "raw.partial").exists()
    assert files_under(raw) == {"pics/kept.jpg": b"the last complete fetch"}


def symlink_member(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, so external_attr carries the mode
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A .zip holding normal members and every kind of member that must not be unpacked."""
    path = tmp_path / "incoming" / "shoes.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("real/a.jpg", os.urandom(2000))
        zf.writestr("ai-midjourney/b.jpg", os.urandom(3000))
        zf.writestr("real/", b"")  # a directory entry is skipped, not refused
        zf.writestr("../evil.jpg", b"parent escape")
        zf.writestr("real/../../evil-nested.jpg", b"nested escape")
        zf.writestr("/tmp/evil-absolute.jpg", b"absolute path")
        zf.writestr(*symlink_member("real/link.jpg", "/etc/passwd"))
        zf.writestr("real/bomb.jpg", b"\0" * 200_000)  # deflates about 1000:1
    return path


def test_zip_source_extracts_safe_members_and_refuses_the_rest(
    tmp_path: Path, archive: Path
) -> None:
    raw = tmp_path / "data" / "raw"
    limits = ArchiveLimits(max_bytes=1_000_000, max_ratio=50)
    fetch_all([path_source("zipped", archive)], raw, seed=1, limits=limits)

    assert set(files_under(raw / "zipped")) == {"real/a.jpg", "ai-midjourney/b.jpg"}
    refused = {r["path"]: (r["status"], r["reason"]) for r in report(raw)["zipped"]["refused"]}
    assert refused == {
        "../evil.jpg": ("rejected", "unsafe_archive_path"),
        "real/../../evil-nested.jpg": ("rejected", "unsafe_archive_path"),
        "/tmp/evil-absolute.jpg": ("rejected", "unsafe_archive_path"),
        "real/link.jpg": ("rejected", "link_in_archive"),
        "real/bomb.jpg": ("rejected", "compression_ratio"),
    }
    assert report(raw)["zipped"]["files"] == 2
    # Nothing landed beside or above the destination.
    assert sorted(p.name for p in tmp_path.rglob("evil*")) == []
    assert not Path("/tmp/evil-absolute.jpg").exists()


def test_zip_total_size_cap(tmp_path: Path) -> None:
    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
            zf.writestr(f"real/{name}", os.urandom(1000))
    dest = tmp_path / "out"
    dest.mkdir()
    refused = extract_zip(path, dest, ArchiveLimits(max_bytes=2500, max_ratio=200))
    # Members are taken in name order until the next one would pass the cap.
    assert set(files_under(dest)) == {"real/a.jpg", "real/b.jpg"}
    assert [(r["path"], r["reason"]) for r in refused] == [
        ("real/c.jpg", "archive_too_large"),
        ("real/d.jpg", "archive_too_large"),
    ]


def test_zip_members_whose_name_names_nothing_are_refused(tmp_path: Path) -> None:
    """An empty name, or one of '.' parts only, would be the destination folder itself."""
    path = tmp_path / "nameless.zip"
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open(zipfile.ZipInfo(""), "w") as member:  # writestr() refuses an empty name
            member.write(b"no name")
        zf.writestr(".", b"dot")
        zf.writestr("./.", b"dots")
        zf.writestr("./", b"")  # a folder entry: skipped like real/
        zf.writestr("real/a.jpg", b"photo a")
    dest = tmp_path / "out"
    dest.mkdir()
    refused = extract_zip(path, dest, LIMITS)
    assert files_under(dest) == {"real/a.jpg": b"photo a"}
    # Quoted, so the manifest lists them under a path that is not empty.
    assert [(r["path"], r["status"], r["reason"]) for r in refused] == [
        ("''", "rejected", "unsafe_archive_path"),
        ("'.'", "rejected", "unsafe_archive_path"),
        ("'./.'", "rejected", "unsafe_archive_path"),
    ]
    assert all("empty name" in r["detail"] for r in refused)


def mark_encrypted(path: Path, name: str) -> None:
    """Set the 'encrypted' flag (bit 0) of one member in its local and central headers.

    The data stays plain, but zipfile goes by the flag, as it would for a password-protected
    archive made by any zip tool.
    """
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo(name).header_offset
    central = data.rindex(name.encode()) - 46  # the central directory comes last
    assert data[local : local + 4] == b"PK\x03\x04" and data[central : central + 4] == b"PK\x01\x02"
    for flags in (local + 6, central + 8):
        data[flags] |= 0x1
    path.write_bytes(bytes(data))


def test_encrypted_zip_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "locked.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("real/a.jpg", b"photo a")
        zf.writestr("real/locked.jpg", b"photo b")
    mark_encrypted(path, "real/locked.jpg")
    with zipfile.ZipFile(path) as zf, pytest.raises(RuntimeError, match="password required"):
        zf.read("real/locked.jpg")  # what extract_zip would run into
    raw = tmp_path / "raw"
    fetch_all([path_source("zipped", path)], raw, seed=1, limits=LIMITS)
    assert files_under(raw / "zipped") == {"real/a.jpg": b"photo a"}
    assert report(raw)["zipped"]["refused"] == [
        {
            "path": "real/locked.jpg",
            "status": "rejected",
            "reason": "encrypted",
            "detail": "password-protected member, not unpacked",
        },
    ]


def test_refused_members_reach_the_manifest_with_their_reasons(tmp_path: Path) -> None:
    """merge lists what fetch refused; a brand taken from the name copes with a quoted one."""
    archive = tmp_path / "compiled.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("real/nike_1.jpg", b"not a picture")
        zf.writestr("real/nike_2.jpg", b"locked")
        zf.writestr(".", b"dot")
    mark_encrypted(archive, "real/nike_2.jpg")
    source = PathSource(name="compiled", path=str(archive), labels={"real": "real"}, brand="prefix")
    raw = tmp_path / "raw"
    fetch_all([source], raw, seed=1, limits=LIMITS)
    manifest = build_manifest(raw, [source], ["nike"], MergeSettings(workers=1))
    verdicts = {r.path: (r.status, r.reason, r.brand) for r in manifest.itertuples()}
    assert verdicts == {
        "'.'": ("rejected", "unsafe_archive_path", ""),
        "real/nike_1.jpg": ("rejected", "not_an_image", "nike"),
        "real/nike_2.jpg": ("rejected", "encrypted", "nike"),
    }


def test_missing_path_and_non_archive_are_user_errors(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    with pytest.raises(SneakersError, match=r"source pics: .*nowhere does not exist; fix its path"):
        fetch_all([path_source("pics", tmp_path / "nowhere")], raw, seed=1, limits=LIMITS)
    text = tmp_path / "list.txt"
    text.write_text("not an archive")
    with pytest.raises(SneakersError, match=r"neither a folder nor a \.zip archive \(other"):
        fetch_all([path_source("pics", text)], raw, seed=1, limits=LIMITS)
    assert not raw.exists(), "a failed fetch must not leave a half-made data/raw"


def zip_bytes(members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "cut"),
    [
        ("shoes.zip", lambda data: data[: len(data) // 2]),
        ("shoes.zip", lambda data: data[:-30]),  # the end record cut off
        ("shoes.zip", lambda data: b""),
        ("download", lambda data: data[:-30]),  # no .zip suffix: known by its first bytes
    ],
    ids=["half", "no-end-record", "empty", "no-suffix"],
)
def test_a_truncated_zip_says_it_is_damaged_and_what_to_do(
    tmp_path: Path, name: str, cut: Callable[[bytes], bytes]
) -> None:
    path = tmp_path / name
    path.write_bytes(cut(zip_bytes([("real/a.jpg", os.urandom(3000))])))
    with pytest.raises(SneakersError) as info:
        fetch_all([path_source("pics", path)], tmp_path / "raw", seed=1, limits=LIMITS)
    message = str(info.value)
    assert message.startswith(f"source pics: {path} is a damaged or truncated .zip archive (")
    assert message.endswith("re-download or re-create it") and "\n" not in message
    assert "neither a folder" not in message


def fetch_unblocked(source: PathSource, raw: Path) -> BaseException | None:
    """fetch_all in a thread, so that a test fails rather than hangs if it waits on a pipe."""
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            fetch_all([source], raw, seed=1, limits=LIMITS)
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - reported to the test thread below
            outcome.append(err)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "fetch blocked opening a named pipe"
    return outcome[0]


def test_a_pipe_or_unreadable_path_is_one_line_and_never_opened(tmp_path: Path) -> None:
    fifo = tmp_path / "incoming.zip"
    os.mkfifo(fifo)  # zipfile.is_zipfile would open it and wait for a writer forever
    raw = tmp_path / "raw"
    err = fetch_unblocked(path_source("pics", fifo), raw)
    assert isinstance(err, SneakersError)
    assert str(err) == (
        f"source pics: {fifo} is a named pipe (FIFO), not a folder or a .zip archive; "
        "point path: at one"
    )
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(SneakersError, match=r"cannot read .*loop: Too many levels of symbolic"):
        fetch_all([path_source("pics", loop)], raw, seed=1, limits=LIMITS)


def test_a_member_name_falsely_marked_utf8_is_one_line(tmp_path: Path) -> None:
    """zipfile cannot even list such an archive (UnicodeDecodeError in ZipFile())."""
    data = zip_bytes([("café.jpg", b"x")])
    path = tmp_path / "names.zip"
    path.write_bytes(data.replace("café".encode(), b"caf\xe9\xe9"))  # same length, not UTF-8
    with pytest.raises(SneakersError, match=r"marked UTF-8 but is not valid UTF-8.*re-create it"):
        fetch_all([path_source("pics", path)], tmp_path / "raw", seed=1, limits=LIMITS)


def fetched(raw: Path, name: str) -> tuple[dict[str, bytes], dict[str, tuple[str, str]]]:
    """The files a source fetched and its refused entries, by path."""
    refused = {r["path"]: (r["reason"], r["detail"]) for r in report(raw)[name]["refused"]}
    return files_under(raw / name), refused


def test_zip_members_of_one_name_keep_the_first_and_refuse_the_others(tmp_path: Path) -> None:
    path = tmp_path / "dups.zip"
    with pytest.warns(UserWarning, match="Duplicate name"):
        path.write_bytes(
            zip_bytes(
                [
                    ("real/a.jpg", b"first"),
                    ("real/a.jpg", b"second"),
                    ("real/b.jpg", b"b"),
                    ("real/./b.jpg", b"b again"),
                    ("real\\b.jpg", b"b from windows"),
                ]
            )
        )
    raw = tmp_path / "raw"
    fetch_all([path_source("zipped", path)], raw, seed=1, limits=LIMITS)
    files, refused = fetched(raw, "zipped")
    assert files == {"real/a.jpg": b"first", "real/b.jpg": b"b"}
    entries = report(raw)["zipped"]["refused"]
    assert sorted((r["path"], r["reason"]) for r in entries) == [
        ("real/./b.jpg", "duplicate_name"),
        ("real/a.jpg", "duplicate_name"),
        ("real\\b.jpg", "duplicate_name"),
    ]
    assert "an earlier member named real/a.jpg was unpacked" in refused["real/a.jpg"][1]
    assert report(raw)["zipped"]["files"] + len(entries) == 5, "every member is accounted for"


@pytest.mark.parametrize(
    "members",
    [
        [("a", b"file"), ("a/b.jpg", b"picture")],
        [("a/b.jpg", b"picture"), ("a", b"file")],
        [("a\\", b""), ("a", b"file"), ("a\\b.jpg", b"picture")],  # a Windows folder entry
    ],
)
def test_a_file_and_a_folder_of_one_name_in_either_order(
    tmp_path: Path, members: list[tuple[str, bytes]]
) -> None:
    path = tmp_path / "clash.zip"
    path.write_bytes(zip_bytes(members))
    raw = tmp_path / "raw"
    fetch_all([path_source("zipped", path)], raw, seed=1, limits=LIMITS)
    files, refused = fetched(raw, "zipped")
    assert files == {"a/b.jpg": b"picture"}
    assert list(refused) == ["a"]
    assert refused["a"][0] == "duplicate_name" and "folder of other members" in refused["a"][1]


def data_offset(data: bytes, name: str) -> int:
    """Where a member's data starts: after its local header, name and extra field."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local = zf.getinfo(name).header_offset
    name_len, extra_len = struct.unpack("<HH", data[local + 26 : local + 30])
    return local + 30 + name_len + extra_len


def patch_method(data: bytearray, name: str, method: int) -> None:
    """Set a member's compression method in its local and central headers."""
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        local = zf.getinfo(name).header_offset
    central = data.rindex(name.encode()) - 46
    for at in (local + 8, central + 10):
        data[at : at + 2] = struct.pack("<H", method)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_member_failing_its_crc_is_refused_and_leaves_no_half_file(
    tmp_path: Path, method: int
) -> None:
    content = "".join(f"shoe {i}\n" for i in range(1000)).encode()
    data = bytearray(zip_bytes([("real/bad.jpg", content), ("real/ok.jpg", b"ok")], method))
    data[data_offset(bytes(data), "real/bad.jpg") + 3] ^= 0xFF  # still inflates, or stored
    path = tmp_path / "damaged.zip"
    path.write_bytes(data)
    raw = tmp_path / "raw"
    fetch_all([path_source("zipped", path)], raw, seed=1, limits=LIMITS)
    files, refused = fetched(raw, "zipped")
    assert files == {"real/ok.jpg": b"ok"}, "the damaged member's partial copy must go"
    reason, detail = refused["real/bad.jpg"]
    assert reason == "corrupt" and "re-download or re-create the archive" in detail
    assert "BadZipFile" in detail or "error" in detail


def test_unsupported_compression_and_damaged_headers_are_refused(tmp_path: Path) -> None:
    members = [("wavpack.jpg", b"x" * 100), ("header.jpg", b"y" * 100), ("ok.jpg", b"ok")]
    data = bytearray(zip_bytes(members))
    patch_method(data, "wavpack.jpg", 97)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        data[zf.getinfo("header.jpg").header_offset] = ord("X")  # local header magic broken
    path = tmp_path / "odd.zip"
    path.write_bytes(data)
    raw = tmp_path / "raw"
    fetch_all([path_source("zipped", path)], raw, seed=1, limits=LIMITS)
    files, refused = fetched(raw, "zipped")
    assert files == {"ok.jpg": b"ok"}
    assert refused == {
        "header.jpg": (
            "corrupt",
            "damaged archive member (BadZipFile: Bad magic number for "
            "file header); re-download or re-create the archive",
        ),
        "wavpack.jpg": (
            "unsupported_compression",
            "method 97 (wavpack); re-create the archive with deflate",
        ),
    }


def unix_member(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = mode << 16
    return info


def test_special_and_unwritable_members_become_rows(tmp_path: Path) -> None:
    """A pipe entry, a name too long for the file system; a folder entry without '/' holds
    nothing and is skipped like one with it."""
    path = tmp_path / "special.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(unix_member("pipe.jpg", stat.S_IFIFO | 0o644), b"")
        zf.writestr(unix_member("folder", stat.S_IFDIR | 0o755), b"")
        zf.writestr("x" * 300 + ".jpg", b"long")
        zf.writestr("folder/ok.jpg", b"ok")
    raw = tmp_path / "raw"
    fetch_all([path_source("zipped", path)], raw, seed=1, limits=LIMITS)
    files, refused = fetched(raw, "zipped")
    assert files == {"folder/ok.jpg": b"ok"}
    assert refused == {
        "pipe.jpg": ("not_a_regular_file", "a named pipe (FIFO) entry"),
        "x" * 300 + ".jpg": (
            "unwritable",
            "could not be written under data/raw: File name too long (rename it in the source)",
        ),
    }


def test_a_full_disk_stops_fetch_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every later file would fail too: no rows of refusals, one error."""
    path = tmp_path / "a.zip"
    path.write_bytes(zip_bytes([("a.jpg", b"a")]))

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(sources, "save", full)
    with pytest.raises(
        SneakersError, match=r"cannot write .*a\.jpg: No space left on device \(free"
    ):
        fetch_all([path_source("zipped", path)], tmp_path / "raw", seed=1, limits=LIMITS)


def test_a_pipe_in_a_folder_is_a_row_and_never_opened(tmp_path: Path) -> None:
    src = tmp_path / "pictures"
    src.mkdir()
    (src / "a.jpg").write_bytes(b"a")
    os.mkfifo(src / "pipe.jpg")  # opening it to read would wait for a writer forever
    (src / "to-pipe.jpg").symlink_to(src / "pipe.jpg")
    raw = tmp_path / "raw"
    assert fetch_unblocked(path_source("pics", src), raw) is None
    files, refused = fetched(raw, "pics")
    assert files == {"a.jpg": b"a"}
    assert refused == {
        "pipe.jpg": ("not_a_regular_file", "a named pipe (FIFO): not opened"),
        "to-pipe.jpg": ("not_a_regular_file", "a named pipe (FIFO): not opened"),
    }


def test_unreadable_files_and_folders_become_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deny_listing: Callable[[str], None]
) -> None:
    """Permission denied (simulated: the tests may run as root, which reads anything)."""
    src = tmp_path / "pictures"
    (src / "locked").mkdir(parents=True)
    (src / "locked" / "hidden-from-us.jpg").write_bytes(b"x")
    (src / "a.jpg").write_bytes(b"a")
    (src / "secret.jpg").write_bytes(b"s")
    real_open = os.open

    def deny_open(path: str | Path, *args: object, **kwargs: object) -> int:
        if Path(path).name == "secret.jpg":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny_open)
    deny_listing("locked")
    raw = tmp_path / "raw"
    fetch_all([path_source("pics", src)], raw, seed=1, limits=LIMITS)
    files, refused = fetched(raw, "pics")
    assert files == {"a.jpg": b"a"}
    assert refused == {
        "secret.jpg": ("unreadable", "could not be read: Permission denied"),
        "locked": (
            "unreadable",
            "folder could not be listed: Permission denied; its files were not fetched",
        ),
    }


def test_a_name_that_is_not_utf8_is_copied_under_an_escaped_name(tmp_path: Path) -> None:
    src = tmp_path / "pictures"
    src.mkdir()
    (Path(os.fsdecode(bytes(src) + b"/caf\xe9.jpg"))).write_bytes(b"latin-1 name")
    (Path(os.fsdecode(bytes(src) + b"/d\xe9j\xe0/vu.jpg"))).parent.mkdir()
    (Path(os.fsdecode(bytes(src) + b"/d\xe9j\xe0/vu.jpg"))).write_bytes(b"in a latin-1 folder")
    (src / "outside.jpg").symlink_to(Path(os.fsdecode(bytes(tmp_path) + b"/gone\xff.jpg")))
    raw = tmp_path / "raw"
    fetch_all([path_source("pics", src)], raw, seed=1, limits=LIMITS)
    files, refused = fetched(raw, "pics")
    assert files == {"caf\\xe9.jpg": b"latin-1 name", "d\\xe9j\\xe0/vu.jpg": b"in a latin-1 folder"}
    assert refused == {"outside.jpg": ("link_outside_source", f"{tmp_path}/gone\\xff.jpg")}
    renamed = {r["path"] for r in report(raw)["pics"]["renamed"]}
    assert renamed == {"caf\\xe9.jpg", "d\\xe9j\\xe0/vu.jpg"}
    json.dumps(report(raw)).encode("utf-8")  # strict: no lone surrogates


def test_an_escaped_name_that_meets_a_real_one_is_refused_not_overwritten(tmp_path: Path) -> None:
    src = tmp_path / "pictures"
    src.mkdir()
    (src / "caf\\xe9.jpg").write_bytes(b"really named with a backslash")
    Path(os.fsdecode(bytes(src) + b"/caf\xe9.jpg")).write_bytes(b"latin-1 name")
    raw = tmp_path / "raw"
    fetch_all([path_source("pics", src)], raw, seed=1, limits=LIMITS)
    files, refused = fetched(raw, "pics")
    assert len(files) == 1 and list(refused) == ["caf\\xe9.jpg"]
    assert refused["caf\\xe9.jpg"][0] == "duplicate_name"


def test_kaggle_offline_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real kagglehub call, with the network unreachable, returns within seconds."""
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    outcome: dict[str, BaseException | Path] = {}

    def call() -> None:
        try:
            outcome["result"] = kaggle_download("no-such-owner/no-such-dataset/versions/1")
        except BaseException as err:  # noqa: BLE001 - reported to the test thread below
            outcome["result"] = err

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "kaggle_download hung instead of failing fast offline"
    err = outcome["result"]
    assert isinstance(err, SneakersError), f"expected SneakersError, got {err!r}"
    message = str(err)
    assert "cannot reach Kaggle" in message and "network" in message
    assert "data.profile=demo" in message
    assert "\n" not in message


def http_error(status: int) -> Exception:
    from kagglehub.exceptions import KaggleApiHTTPError

    response = requests.Response()
    response.status_code = status
    return KaggleApiHTTPError(f"{status} Client Error", response=response)


def unauthenticated() -> Exception:
    from kagglehub.exceptions import UnauthenticatedError

    return UnauthenticatedError()


@pytest.mark.parametrize(
    ("make_error", "expected", "unexpected"),
    [
        (
            lambda: http_error(404),
            r"Kaggle has no dataset a/b/versions/7: check "
            r"owner/slug/versions/N",
            "KAGGLE_KEY",
        ),
        (lambda: http_error(401), r"set KAGGLE_USERNAME and KAGGLE_KEY", "no dataset"),
        (lambda: http_error(403), r"set KAGGLE_USERNAME and KAGGLE_KEY", "no dataset"),
        (
            unauthenticated,
            r"Kaggle refused a/b/versions/7: set KAGGLE_USERNAME and KAGGLE_KEY",
            "no dataset",
        ),
        (lambda: http_error(503), r"failed \(HTTP 503\); retry later", "KAGGLE_KEY"),
        (lambda: requests.Timeout("slow"), r"cannot reach Kaggle", "KAGGLE_KEY"),
    ],
)
def test_kaggle_failures_map_to_messages(
    monkeypatch: pytest.MonkeyPatch, make_error: object, expected: str, unexpected: str
) -> None:
    import kagglehub

    def fail(handle: str, *args: object, **kwargs: object) -> str:
        assert handle == "a/b/versions/7"
        raise make_error()  # type: ignore[operator]

    monkeypatch.setattr(kagglehub, "dataset_download", fail)
    with pytest.raises(SneakersError, match=expected) as info:
        kaggle_download("a/b/versions/7")
    assert unexpected not in str(info.value)
    assert info.value.__suppress_context__, "the kagglehub traceback must not be chained"


def test_kaggle_success_returns_the_download_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import kagglehub

    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.jpg").write_bytes(b"a")
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle, **_: str(tmp_path))
    assert kaggle_download("a/b/versions/7") == tmp_path
    raw = tmp_path / "raw"
    source = KaggleSource(name="kg", kaggle="a/b/versions/7", label="real")
    fetch_all([source], raw, seed=1, limits=LIMITS)
    assert files_under(raw / "kg") == {"real/a.jpg": b"a"}
    assert report(raw)["kg"]["origin"] == "a/b/versions/7"


def test_fetch_stage_offline_prints_one_error_line(tmp_path: Path) -> None:
    """`dvc repro fetch` with a kaggle profile and no network: exit 1, one line, no traceback."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())  # every section is checked
    params["seed"] = 1
    params["data"] = {
        "profile": "one",
        "brands": ["nike"],
        "profiles": {
            "one": [
                {"name": "kg", "kaggle": "no-such-owner/nothing/versions/1", "label": "real"},
                {"name": "kg-ai", "kaggle": "no-such-owner/fakes/versions/1", "label": "ai"},
            ],
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, **OFFLINE, "KAGGLEHUB_CACHE": str(tmp_path / "kagglehub")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "fetch.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "cannot reach Kaggle" in errors[0] and "data.profile=demo" in errors[0]
    assert not (tmp_path / "data" / "raw").exists()
