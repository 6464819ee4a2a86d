"""Entries are classified before anything is decoded: junk, hidden files and links never pass."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from sneakers.files import classify_entry, file_kind, safe_name, walk


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A source folder with a real file, OS junk, hidden files and every kind of link."""
    root = tmp_path / "source"
    outside = tmp_path / "outside"
    (root / "real").mkdir(parents=True)
    (root / "__MACOSX" / "real").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "linked-target").mkdir()
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"outside")
    (outside / "folder").mkdir()
    (root / "real" / "shoe.jpg").write_bytes(b"jpeg")
    (root / "linked-target" / "inner.jpg").write_bytes(b"jpeg")
    (root / "__MACOSX" / "real" / "._shoe.jpg").write_bytes(b"resource fork")
    (root / ".DS_Store").write_bytes(b"finder")
    (root / "real" / "Thumbs.db").write_bytes(b"thumbs")
    (root / "real" / ".hidden.jpg").write_bytes(b"hidden")
    (root / ".git" / "config").write_bytes(b"[core]")
    (root / "real" / "escape.jpg").symlink_to(outside / "secret.jpg")
    (root / "real" / "broken.jpg").symlink_to(root / "real" / "gone.jpg")
    (root / "real" / "inside.jpg").symlink_to(root / "real" / "shoe.jpg")
    (root / "real" / "folder-link").symlink_to(root / "linked-target", target_is_directory=True)
    (root / "real" / "outside-folder").symlink_to(outside / "folder", target_is_directory=True)
    return root


def verdicts(root: Path) -> dict[str, tuple[str, str]]:
    """Status and reason of every entry walk() yields, by relative path."""
    root = root.resolve()
    out = {}
    for path in walk(root):
        verdict = classify_entry(root, path)
        out[path.relative_to(root).as_posix()] = (verdict["status"], verdict["reason"])
    return out


def test_walk_lists_files_and_linked_folders_sorted_without_following(tree: Path) -> None:
    found = walk(tree.resolve())
    assert found == sorted(found)
    rel = {p.relative_to(tree.resolve()).as_posix() for p in found}
    assert rel == {
        ".DS_Store",
        ".git/config",
        "__MACOSX/real/._shoe.jpg",
        "linked-target/inner.jpg",
        "real/.hidden.jpg",
        "real/Thumbs.db",
        "real/broken.jpg",
        "real/escape.jpg",
        "real/folder-link",
        "real/inside.jpg",
        "real/outside-folder",
        "real/shoe.jpg",
    }
    # The linked folder is listed once as an entry, never descended into.
    assert "real/folder-link/inner.jpg" not in rel


def test_classification_of_every_entry(tree: Path) -> None:
    assert verdicts(tree) == {
        ".DS_Store": ("ignored", "os_junk"),
        ".git/config": ("ignored", "hidden_file"),
        "__MACOSX/real/._shoe.jpg": ("ignored", "os_junk"),
        "linked-target/inner.jpg": ("candidate", ""),
        "real/.hidden.jpg": ("ignored", "hidden_file"),
        "real/Thumbs.db": ("ignored", "os_junk"),
        "real/broken.jpg": ("rejected", "broken_link"),
        "real/escape.jpg": ("rejected", "link_outside_source"),
        "real/folder-link": ("ignored", "link_to_folder"),
        "real/inside.jpg": ("candidate", ""),
        "real/outside-folder": ("rejected", "link_outside_source"),
        "real/shoe.jpg": ("candidate", ""),
    }


def test_details_say_what_was_found(tree: Path) -> None:
    root = tree.resolve()
    escape = classify_entry(root, root / "real" / "escape.jpg")
    assert escape["detail"] == str((tree.parent / "outside" / "secret.jpg").resolve())
    assert classify_entry(root, root / "__MACOSX/real/._shoe.jpg")["detail"] == "__MACOSX"
    assert classify_entry(root, root / "real" / "Thumbs.db")["detail"] == "Thumbs.db"


def test_a_broken_link_has_its_own_reason_unless_it_points_out(tree: Path) -> None:
    root = tree.resolve()
    assert classify_entry(root, root / "real" / "broken.jpg") == {
        "status": "rejected",
        "reason": "broken_link",
        "detail": str(root / "real" / "gone.jpg"),
    }
    (root / "real" / "gone-outside.jpg").symlink_to(tree.parent / "outside" / "gone.jpg")
    out = classify_entry(root, root / "real" / "gone-outside.jpg")
    assert (out["reason"], out["detail"]) == (
        "link_outside_source",
        str((tree.parent / "outside" / "gone.jpg").resolve()),
    )


def test_a_loop_of_links_is_a_broken_link_not_a_traceback(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    (root / "a.jpg").symlink_to(root / "b.jpg")
    (root / "b.jpg").symlink_to(root / "a.jpg")
    (root / "self.jpg").symlink_to(root / "self.jpg")
    for name in ("a.jpg", "b.jpg", "self.jpg"):
        assert classify_entry(root, root / name) == {
            "status": "rejected",
            "reason": "broken_link",
            "detail": "a loop of links",
        }


def test_link_through_a_relative_path_that_climbs_out_is_rejected(tmp_path: Path) -> None:
    root = tmp_path / "src"
    root.mkdir()
    (tmp_path / "victim.jpg").write_bytes(b"x")
    (root / "climb.jpg").symlink_to("../victim.jpg")
    assert classify_entry(root.resolve(), root.resolve() / "climb.jpg")["reason"] == (
        "link_outside_source"
    )


def test_safe_name_escapes_only_bytes_that_are_not_utf8() -> None:
    latin1 = os.fsdecode(b"d\xe9j\xe0/caf\xe9.jpg")  # as os.walk hands it over
    assert safe_name(latin1) == "d\\xe9j\\xe0/caf\\xe9.jpg"
    safe_name(latin1).encode("utf-8")  # strict: no lone surrogates left
    for name in ("schuh ü 😀 (1).jpg", "caf\\xe9.jpg", "line\nbreak.jpg"):
        assert safe_name(name) == name


def test_file_kind_names_what_is_not_a_file() -> None:
    assert file_kind(stat.S_IFIFO | 0o644) == "named pipe (FIFO)"
    assert file_kind(stat.S_IFCHR) == "character device"
    assert file_kind(stat.S_IFREG | 0o600) == "regular file"


def test_walk_reports_folders_it_cannot_list(
    tmp_path: Path, deny_listing: Callable[[str], None]
) -> None:
    """Not silently skipped."""
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "a.jpg").write_bytes(b"a")
    (tmp_path / "b.jpg").write_bytes(b"b")
    deny_listing("locked")
    unlisted: list[OSError] = []
    assert walk(tmp_path, unlisted) == [tmp_path / "b.jpg"]
    assert [(Path(e.filename), e.errno) for e in unlisted] == [(tmp_path / "locked", errno.EACCES)]
