"""`sneakers predict`: every file gets a row (P(ai) and label, or why not), the output formats,
exit codes and one-line errors, and the same P(ai) as the evaluate stage for the same picture."""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from helpers import (
    encode_image,
    make_artifact,
    make_picture,
    stored,
    trained_record,
    write_bytes,
)
from PIL import Image

import sneakers.cli
from sneakers import artifact
from sneakers.artifact import Artifact, Fitted
from sneakers.cli import main
from sneakers.data import load_splits
from sneakers.evaluate import predict_splits
from sneakers.inference import Scorer
from sneakers.model import build_model
from sneakers.params import ModelSettings, RuntimeSettings, StandardizeSettings
from sneakers.predict import run
from sneakers.predict_inputs import find_inputs, literal_base
from sneakers.preprocess import Recipe
from sneakers.standardize import standardize_manifest

SIZE = 48
MAX_PIXELS = 1_000_000
# A jittered resample, so that predict must repeat the seeded scale and offset of the stage.
RECIPE = Recipe(
    size=SIZE,
    fit="crop",
    jpeg_quality=90,
    max_pixels=MAX_PIXELS,
    resample=1.07,
    resample_jitter=0.1,
)
THRESHOLD = 0.5
KEYS = ["path", "p_ai", "label", "error"]

Cli = Callable[..., tuple[int, str, str]]


def tiny_artifact() -> Artifact:
    """A seed_cnn at 48 px with seeded weights and BatchNorm statistics that are not trivial."""
    return make_artifact("seed_cnn", threshold=THRESHOLD, recipe=RECIPE)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.pt"
    artifact.save(path, tiny_artifact())
    return path


@pytest.fixture(scope="module")
def head_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EfficientNet-Lite0 with model.train head, meanmax pooling, a seeded head."""
    network = build_model("efficientnet_lite0", SIZE, part="head", pool="meanmax")
    torch.manual_seed(0)
    torch.nn.init.normal_(network.net._fc.weight, std=0.05)
    fitted = Fitted(network.state_dict(), SIZE, THRESHOLD, trained_record())
    settings = ModelSettings(arch="efficientnet_lite0", train="head", pool="meanmax")
    path = tmp_path_factory.mktemp("head") / "model.pt"
    artifact.save(path, Artifact.of(fitted, settings, RECIPE, "test"))
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run `sneakers ...` in-process: (exit status, stdout, stderr)."""

    def _run(*args: str | Path) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb), with almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


def transparent_png() -> bytes:
    im = make_picture(3).convert("RGBA")
    im.putalpha(Image.linear_gradient("L").resize(im.size))
    return encode_image(im, "PNG")


def mixed_folder(root: Path, outside: Path) -> Path:
    """Good and bad files, junk that must be skipped, and a link out of the folder."""
    write_bytes(root / "good.jpg", encode_image(make_picture(1), "JPEG", quality=95))
    write_bytes(root / "alpha.png", transparent_png())
    write_bytes(root / "sub" / "nested.jpg", encode_image(make_picture(2, scale=20), "JPEG"))
    write_bytes(root / "empty.jpg", b"")
    write_bytes(root / "notes.txt", b"shopping list: laces\n")
    big = encode_image(make_picture(4, scale=16), "JPEG", quality=95)
    write_bytes(root / "truncated.jpg", big[: len(big) // 2])
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="8"><rect/></svg>'
    write_bytes(root / "drawing.svg", svg)
    write_bytes(root / "huge.png", png_claiming(5000, 5000))
    write_bytes(root / ".DS_Store", b"finder")
    write_bytes(root / ".hidden.jpg", encode_image(make_picture(5), "JPEG"))
    write_bytes(root / "__MACOSX" / "sub" / "nested.jpg", encode_image(make_picture(6), "JPEG"))
    write_bytes(outside / "secret.jpg", encode_image(make_picture(7), "JPEG"))
    (root / "escape.jpg").symlink_to(outside / "secret.jpg")
    return root


EXPECTED_ERRORS = {
    "drawing.svg": "unsupported_format: SVG",
    "empty.jpg": "empty:",
    "escape.jpg": "link_outside_folder:",
    "huge.png": "too_many_pixels:",
    "notes.txt": "not_an_image:",
    "truncated.jpg": "corrupt:",
}
SCORED = ["alpha.png", "good.jpg", "sub/nested.jpg"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return mixed_folder(tmp_path / "photos", tmp_path / "outside")


def as_json(model_path: Path, *paths: Path | str) -> tuple[Path | str, ...]:
    """`sneakers predict PATHS --model MODEL --format json`, as most tests call it."""
    return ("predict", *paths, "--model", model_path, "--format", "json")


def rows_of(out: str) -> list[dict[str, Any]]:
    rows = json.loads(out)
    assert isinstance(rows, list)
    return rows


def relative(rows: list[dict[str, Any]], root: Path) -> dict[str, dict[str, Any]]:
    return {Path(r["path"]).relative_to(root).as_posix(): r for r in rows}


# --- inputs and per-file outcomes ---


def test_a_mixed_folder_scores_the_good_files_and_explains_the_rest(
    cli: Cli, model_path: Path, folder: Path
) -> None:
    code, out, err = cli("predict", folder, "--model", model_path, "--format", "json")
    assert code == 2
    rows = rows_of(out)
    by_name = relative(rows, folder)
    assert list(by_name) == sorted(SCORED + list(EXPECTED_ERRORS))  # recursive, sorted, no junk
    for name in SCORED:
        row = by_name[name]
        assert row["error"] is None and 0.0 <= row["p_ai"] <= 1.0
        assert row["label"] == ("ai" if row["p_ai"] >= THRESHOLD else "real")
    for name, start in EXPECTED_ERRORS.items():
        row = by_name[name]
        assert (row["p_ai"], row["label"]) == (None, None)
        assert row["error"].startswith(start), (name, row["error"])
    last = err.strip().splitlines()[-1]
    ai = sum(by_name[n]["label"] == "ai" for n in SCORED)
    assert last.startswith(f"predict: 9 files, 3 scored ({ai} ai, {3 - ai} real), 6 failed")
    assert "3 skipped" in last  # .DS_Store, .hidden.jpg, __MACOSX/


def test_glob_patterns_are_expanded_recursively_without_junk(
    cli: Cli, model_path: Path, folder: Path
) -> None:
    code, out, _ = cli(*as_json(model_path, f"{folder}/**/*.jpg", f"{folder}/*.png"))
    names = list(relative(rows_of(out), folder))
    assert names == [
        "empty.jpg",
        "escape.jpg",
        "good.jpg",
        "sub/nested.jpg",
        "truncated.jpg",
        "alpha.png",
        "huge.png",
    ]
    assert code == 2


def test_globs_judge_links_and_junk_folders_as_folder_walks_do(
    cli: Cli, model_path: Path, folder: Path, tmp_path: Path
) -> None:
    (tmp_path / "outside" / "more").mkdir()
    for i in range(3):
        write_bytes(tmp_path / "outside" / "more" / f"{i}.jpg", encode_image(make_picture(i)))
    (folder / "sub" / "linked").symlink_to(tmp_path / "outside" / "more")
    (folder / "sub" / "again").symlink_to(folder / "sub", target_is_directory=True)
    for pattern in (f"{folder}/**", f"{folder}/*", f"{folder}/**/*.jpg"):
        _, out, _ = cli("predict", pattern, "--model", model_path, "--format", "json")
        names = relative(rows_of(out), folder)
        assert not any(n.startswith(("__MACOSX", "sub/again", "sub/linked/")) for n in names)
        if pattern.endswith("**"):  # the link out is one row, not one per file behind it
            assert names["sub/linked"]["error"].startswith("link_outside_folder:")


def test_a_broken_link_is_told_apart_from_a_link_out(tmp_path: Path) -> None:
    folder, outside = tmp_path / "pics", tmp_path / "outside"
    write_bytes(folder / "good.jpg", b"jpeg")
    write_bytes(outside / "secret.jpg", b"jpeg")
    (folder / "dangling.jpg").symlink_to(folder / "deleted.jpg")
    (folder / "escape.jpg").symlink_to(outside / "secret.jpg")
    (folder / "gone-out.jpg").symlink_to(outside / "gone.jpg")  # broken, but out: not followed
    real = tmp_path.resolve()  # the messages name resolved targets
    for pattern in (folder, f"{folder}/*.jpg"):
        errors = {Path(r.path).name: r.error for r in find_inputs([str(pattern)]).rows}
        assert errors == {
            "dangling.jpg": f"broken_link: points to {real}/pics/deleted.jpg, which does not exist",
            "escape.jpg": f"link_outside_folder: points to {real}/outside/secret.jpg, not followed",
            "gone-out.jpg": f"link_outside_folder: points to {real}/outside/gone.jpg, not followed",
            "good.jpg": None,
        }, pattern


def test_an_existing_name_that_looks_like_a_pattern_is_a_name(
    cli: Cli, model_path: Path, tmp_path: Path
) -> None:
    shoe = write_bytes(tmp_path / "shoe [1].jpg", encode_image(make_picture(1), "JPEG"))
    write_bytes(tmp_path / "shoe 1.jpg", encode_image(make_picture(2), "JPEG"))
    code, out, _ = cli("predict", shoe, "--model", model_path, "--format", "json")
    assert (code, [r["path"] for r in rows_of(out)]) == (0, [str(shoe)])


def test_a_pattern_and_a_folder_naming_the_same_file_give_one_row(
    cli: Cli, model_path: Path, folder: Path
) -> None:
    good = folder / "good.jpg"
    code, out, _ = cli(
        "predict", good, f"{folder}/good.*", "--model", model_path, "--format", "json"
    )
    assert (code, [r["path"] for r in rows_of(out)]) == (0, [str(good)])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_reading_it(cli: Cli, model_path: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")  # reading it would block for ever
    write_bytes(tmp_path / "good.jpg", encode_image(make_picture(1), "JPEG"))
    code, out, _ = cli("predict", tmp_path, "--model", model_path, "--format", "json")
    assert code == 2
    assert [r["error"] for r in rows_of(out)] == [
        None,
        "not_a_file: a FIFO (named pipe), not a regular file",
    ]


def test_links_and_special_files_named_explicitly_say_what_they_are(
    cli: Cli, model_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "deleted.jpg")
    (tmp_path / "loop-a.jpg").symlink_to(tmp_path / "loop-b.jpg")
    (tmp_path / "loop-b.jpg").symlink_to(tmp_path / "loop-a.jpg")
    names = [tmp_path / "dangling.jpg", tmp_path / "loop-a.jpg", "/dev/null"]
    code, out, _ = cli("predict", *names, "--model", model_path, "--format", "json")
    assert code == 2
    assert [r["error"] for r in rows_of(out)] == [
        f"broken_link: points to {tmp_path.resolve()}/deleted.jpg, which does not exist",
        "broken_link: a loop of links",
        "not_a_file: a character device, not a regular file",
    ]
    (tmp_path / "in").mkdir()  # the same words for a loop met inside a folder
    (tmp_path / "in" / "self.jpg").symlink_to(tmp_path / "in" / "self.jpg")
    assert [r.error for r in find_inputs([str(tmp_path / "in")]).rows] == [
        "broken_link: a loop of links"
    ]


def test_a_folder_that_cannot_be_listed_is_a_row(
    tmp_path: Path, deny_listing: Callable[[str], None]
) -> None:
    (tmp_path / "in" / "locked").mkdir(parents=True)
    (tmp_path / "in" / "locked" / "b.jpg").write_bytes(b"x")
    (tmp_path / "in" / "a.jpg").write_bytes(b"a")
    deny_listing("locked")
    rows = find_inputs([str(tmp_path / "in")]).rows
    assert [(Path(r.path).name, r.error) for r in rows] == [
        ("a.jpg", None),
        (
            "locked",
            "unreadable: folder could not be listed: Permission denied; its files were not scored",
        ),
    ]


def test_what_merge_refuses_predict_refuses_with_the_models_min_size(
    cli: Cli, model_path: Path, tmp_path: Path
) -> None:
    """One rule: the 1x1 picture and the 2000x10 strip merge calls too_small are not scored."""
    names = {"dot.png": (1, 1), "strip.png": (2000, 10), "shoe.png": (72, 64)}
    for name, size in names.items():
        write_bytes(tmp_path / "in" / name, encode_image(make_picture(1).resize(size), "PNG"))
    # fp32, the test models' validation precision: no note on a CPU where `auto` is bf16
    args = ("predict", tmp_path / "in", "--format", "json", "--precision", "fp32", "--model")
    code, out, err = cli(*args, model_path)
    errors = {Path(r["path"]).name: r["error"] for r in rows_of(out)}
    assert code == 2 and "note:" not in err
    assert errors == {
        "dot.png": "too_small: 1x1 < 32 px",
        "shoe.png": None,
        "strip.png": "too_small: 2000x10 < 32 px",
    }
    strict = tmp_path / "strict.pt"  # a model trained with merge.min_size 70 refuses 72x64 too
    artifact.save(
        strict, make_artifact("seed_cnn", threshold=THRESHOLD, recipe=RECIPE, min_size=70)
    )
    errors = {Path(r["path"]).name: r["error"] for r in rows_of(cli(*args, strict)[1])}
    assert errors["shoe.png"] == "too_small: 72x64 < 70 px"
    old = tmp_path / "old.pt"  # from before model files kept min_size: merge's default, said
    torch.save(stored(tiny_artifact(), ("min_size",)), old)
    code, out, err = cli(*args, old)
    assert [r["error"] is None for r in rows_of(out)] == [False, True, False]
    assert f"note: {old} does not record merge.min_size" in err and "under 32 px" in err


def test_literal_base_is_the_folder_a_pattern_searches() -> None:
    assert literal_base("data/raw/*/x.jpg") == "data/raw"
    assert literal_base("/a/b/**/*.jpg") == "/a/b"
    assert literal_base("*.jpg") == "."


def test_json_schema(cli: Cli, model_path: Path, folder: Path) -> None:
    _, out, _ = cli("predict", folder, "--model", model_path, "--format", "json")
    for row in rows_of(out):
        assert list(row) == KEYS
        assert isinstance(row["path"], str)
        if row["error"] is None:
            assert isinstance(row["p_ai"], float) and row["label"] in ("ai", "real")
        else:
            assert isinstance(row["error"], str)
            assert row["p_ai"] is None and row["label"] is None


def test_table_and_csv_carry_the_same_rows(cli: Cli, model_path: Path, folder: Path) -> None:
    _, out_json, _ = cli("predict", folder, "--model", model_path, "--format", "json")
    _, table, _ = cli("predict", folder, "--model", model_path)
    _, out_csv, _ = cli("predict", folder, "--model", model_path, "--format", "csv")
    expected = rows_of(out_json)

    lines = table.splitlines()
    assert lines[0].split() == KEYS and len(lines) == len(expected) + 1
    p_column = lines[0].index("p_ai") + len("p_ai")  # p_ai is right-aligned under its header
    for line, row in zip(lines[1:], expected, strict=True):
        assert line.startswith(row["path"] + " ")
        shown = line[:p_column].split()[-1]
        assert shown == ("-" if row["p_ai"] is None else f"{row['p_ai']:.4f}")
        assert line.rstrip().endswith(row["error"] or row["label"])

    frame = pd.read_csv(pd.io.common.StringIO(out_csv), keep_default_na=False)
    assert list(frame.columns) == KEYS
    assert frame["path"].tolist() == [r["path"] for r in expected]
    for value, row in zip(frame["p_ai"], expected, strict=True):
        assert (value == "") if row["p_ai"] is None else float(value) == row["p_ai"]


NAMES = {
    b"caf\xe9.jpg": "caf\\xe9.jpg",
    b"two\nlines.jpg": "two\\nlines.jpg",
    "café.jpg".encode(): "café.jpg",
}


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_any_file_name_is_scored_and_shown_on_one_line_in_every_format(
    cli: Cli, model_path: Path, tmp_path: Path, fmt: str
) -> None:
    """Linux names are bytes: one that is not UTF-8 is written as \\xNN, a newline as \\n,
    alike in all formats, to the strict UTF-8 stdout of capsys and to --output."""
    folder = tmp_path / "in"
    for name in NAMES:
        write_bytes(folder / os.fsdecode(name), encode_image(make_picture(1), "JPEG"))
    target = tmp_path / f"rows.{fmt}"
    for output in ((), ("--output", target)):
        code, out, _ = cli("predict", folder, "--model", model_path, "--format", fmt, *output)
        text = target.read_text(encoding="utf-8") if output else out
        assert code == 0
        if fmt == "json":
            paths = [r["path"] for r in rows_of(text)]
        elif fmt == "csv":
            paths = pd.read_csv(io.StringIO(text))["path"].tolist()
        else:
            lines = text.splitlines()
            assert len(lines) == 1 + len(NAMES)
            paths = [line.split("  ")[0] for line in lines[1:]]
        assert sorted(paths) == sorted(f"{folder}/{shown}" for shown in NAMES.values())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_all_scored_exits_0_and_output_goes_to_a_file(
    cli: Cli, model_path: Path, folder: Path, tmp_path: Path, precision: str
) -> None:
    target = tmp_path / "out" / "predictions.json"
    target.parent.mkdir()
    code, out, err = cli(
        *as_json(model_path, folder / "good.jpg", folder / "alpha.png"),
        "--output",
        target,
        "--precision",
        precision,
    )
    assert (code, out) == (0, "")
    assert [p.name for p in target.parent.iterdir()] == ["predictions.json"]  # no .partial left
    rows = rows_of(target.read_text())
    assert [Path(r["path"]).name for r in rows] == ["good.jpg", "alpha.png"]  # argument order
    last = err.strip().splitlines()[-1]
    assert last.startswith("predict: 2 files, 2 scored")
    assert re.search(rf"; \d+\.\d s, \d+\.\d images/s \(cpu {precision}\)$", last), last


def test_precision_option_scores_in_bf16(cli: Cli, model_path: Path, folder: Path) -> None:
    args = as_json(model_path, folder / "good.jpg", folder / "alpha.png")
    _, fp32, _ = cli(*args, "--precision", "fp32")
    code, bf16, err = cli(*args, "--precision", "bf16")
    assert code == 0 and err.strip().endswith("(cpu bf16)")
    p32, p16 = ([r["p_ai"] for r in rows_of(text)] for text in (fp32, bf16))
    assert p32 != p16 and max(abs(a - b) for a, b in zip(p32, p16, strict=True)) < 0.05


def test_scoring_in_another_precision_than_validation_says_so(
    cli: Cli, model_path: Path, folder: Path
) -> None:
    """The test model was validated in fp32 (its card says so); bf16 scores differ slightly."""
    args = ("predict", folder / "good.jpg", "--model", model_path, "--precision")
    assert "note: the model's threshold was fixed on fp32" not in cli(*args, "fp32")[2]
    code, _, err = cli(*args, "bf16")
    assert code == 0
    assert "note: the model's threshold was fixed on fp32 scores and this run scores in bf16" in err
    assert "add --precision fp32" in err
    assert "fixed on" not in cli(*args, "bf16", "--threshold", "0.5")[2]


def test_threshold_option_overrides_the_models(cli: Cli, model_path: Path, folder: Path) -> None:
    args = ("predict", folder, "--model", model_path, "--format", "json")
    scored = [r for r in rows_of(cli(*args)[1]) if r["error"] is None]
    values = sorted(r["p_ai"] for r in scored)
    assert values[0] < values[-1], "the test model should not give every picture one score"
    cut = (values[0] + values[-1]) / 2
    relabelled = [r for r in rows_of(cli(*args, "--threshold", str(cut))[1]) if r["error"] is None]
    assert [r["p_ai"] for r in relabelled] == [r["p_ai"] for r in scored]
    assert [r["label"] for r in relabelled] == [
        "ai" if r["p_ai"] >= cut else "real" for r in scored
    ]
    assert {r["label"] for r in relabelled} == {"ai", "real"}


def test_the_options_reach_run_as_runtime_settings(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The defaults are the runtime section's (batch 64); given options replace them."""
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(sneakers.cli, "run", lambda *args: calls.append(args) or 0)
    assert cli("predict", "a.jpg")[0] == 0
    assert (
        cli("predict", "a.jpg", "--device", "cpu", "--precision", "bf16", "--batch-size", "3")[0]
        == 0
    )
    assert [call[5] for call in calls] == [
        RuntimeSettings(),
        RuntimeSettings(device="cpu", precision="bf16", batch_size=3),
    ]
    assert calls[0][5].batch_size == 64


def test_run_scores_with_the_given_runtime_settings(
    model_path: Path, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "rows.json"
    runtime = RuntimeSettings(device="cpu", precision="fp32", batch_size=1)
    code = run([str(folder / "good.jpg")], model_path, "json", target, runtime=runtime)
    assert code == 0 and len(rows_of(target.read_text())) == 1
    assert capsys.readouterr().err.strip().endswith("(cpu fp32)")


def test_batch_size_does_not_change_the_results(cli: Cli, model_path: Path, folder: Path) -> None:
    args = ("predict", folder, "--model", model_path, "--format", "json")
    one = rows_of(cli(*args, "--batch-size", "1")[1])
    many = rows_of(cli(*args, "--batch-size", "64")[1])
    assert [r["label"] for r in one] == [r["label"] for r in many]
    for a, b in zip(one, many, strict=True):
        assert (a["p_ai"] is None) == (b["p_ai"] is None)
        if a["p_ai"] is not None:
            assert a["p_ai"] == pytest.approx(b["p_ai"], abs=1e-6)


def test_explain_writes_one_overlay_per_scored_file_and_none_for_failed_ones(
    cli: Cli, model_path: Path, folder: Path, tmp_path: Path
) -> None:
    out_dir = tmp_path / "heatmaps"
    code, out, err = cli(
        "predict", folder, "--model", model_path, "--format", "json", "--explain", out_dir
    )
    assert code == 2 and len(rows_of(out)) == len(SCORED) + len(EXPECTED_ERRORS)  # rows as usual
    written = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    assert written == ["alpha.png", "good.png", "sub/nested.png"]
    for name in written:
        with Image.open(out_dir / name) as im:
            assert (im.format, im.size, im.mode) == ("PNG", (SIZE, SIZE), "RGB")
    assert err.strip().splitlines()[-1] == f"predict: 3 heatmaps (Grad-CAM, fp32) in {out_dir}"


def test_explain_names_never_collide(cli: Cli, model_path: Path, tmp_path: Path) -> None:
    picture = encode_image(make_picture(1), "PNG")
    files = [write_bytes(tmp_path / "in" / name, picture) for name in ("a.jpg", "a.png")]
    out_dir = tmp_path / "out"
    code, _, _ = cli("predict", *files, "--model", model_path, "--explain", out_dir)
    assert code == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["a-2.png", "a.png"]


def test_explain_never_overwrites_a_file_it_did_not_make(
    cli: Cli, model_path: Path, tmp_path: Path
) -> None:
    """Heatmaps into the inputs' own folder: the user's a.png stays, and a link there is
    never written through."""
    folder = tmp_path / "in"
    mine = {
        name: write_bytes(folder / name, encode_image(make_picture(i), fmt)).read_bytes()
        for i, (name, fmt) in enumerate([("a.jpg", "JPEG"), ("a.png", "PNG")])
    }
    outside = write_bytes(tmp_path / "elsewhere" / "b.png", b"keep me")
    write_bytes(folder / "b.jpg", encode_image(make_picture(3), "JPEG"))
    (folder / "b.png").symlink_to(outside)
    code, _, err = cli("predict", folder, "--model", model_path, "--explain", folder)
    assert code == 2  # b.png, a link out of the folder, is a row and is not followed
    assert {name: (folder / name).read_bytes() for name in mine} == mine
    assert outside.read_bytes() == b"keep me"
    made = sorted(p.name for p in folder.iterdir() if p.name not in {*mine, "b.jpg", "b.png"})
    assert made == ["a-2.png", "a-3.png", "b-2.png"]
    assert err.strip().splitlines()[-1] == (
        f"predict: 3 heatmaps (Grad-CAM, fp32) in {folder}; 3 under a new name (-2, -3, ...: "
        "the name was taken)"
    )


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("input", "is one of the inputs"),
        ("model", "is the model file"),
        ("explain", "is the --explain folder"),
    ],
)
def test_output_naming_a_file_the_run_reads_is_refused_before_any_work(
    cli: Cli, model_path: Path, folder: Path, tmp_path: Path, target: str, words: str
) -> None:
    heatmaps = tmp_path / "heatmaps"  # made by the run, so not refused as a folder up front
    output = {"input": folder / "good.jpg", "model": model_path, "explain": heatmaps}[target]
    before = output.read_bytes() if output.is_file() else None
    code, out, err = cli(
        "predict", folder, "--model", model_path, "--explain", heatmaps, "--output", output
    )
    assert (code, out) == (1, "")
    assert one_error_line(err).startswith(f"error: --output {output} {words}")
    assert (output.read_bytes() if output.is_file() else None) == before
    assert not heatmaps.exists()


def test_output_never_takes_a_users_file_for_its_temporary_one(
    cli: Cli, model_path: Path, folder: Path, tmp_path: Path
) -> None:
    output = tmp_path / "rows.csv"
    theirs = write_bytes(tmp_path / "rows.csv.partial", b"someone's notes")
    code, _, _ = cli(
        "predict", folder / "good.jpg", "--model", model_path, "--format", "csv", "--output", output
    )
    assert code == 0 and output.read_text().startswith("path,p_ai")
    assert theirs.read_bytes() == b"someone's notes"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "rows.csv",
        "rows.csv.partial",
    ]


def test_a_heatmap_leaves_the_output_files_name_to_it(
    cli: Cli, model_path: Path, folder: Path, tmp_path: Path
) -> None:
    output = tmp_path / "good.png"  # where good.jpg's heatmap would go
    code, _, _ = cli(
        "predict",
        folder / "good.jpg",
        "--model",
        model_path,
        "--format",
        "csv",
        "--output",
        output,
        "--explain",
        tmp_path,
    )
    assert code == 0 and output.read_text().startswith("path,p_ai")
    with Image.open(tmp_path / "good-2.png") as im:
        assert im.format == "PNG"


def test_explain_into_a_place_that_cannot_take_it_is_refused_before_any_work(
    cli: Cli, model_path: Path, folder: Path, tmp_path: Path
) -> None:
    taken = write_bytes(tmp_path / "taken", b"x")
    code, out, err = cli("predict", folder, "--model", model_path, "--explain", taken / "maps")
    assert (code, out) == (1, "")
    assert one_error_line(err) == f"error: --explain {taken}/maps: {taken} is a file: name a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_explain_or_output_into_a_read_only_folder_is_refused_before_any_work(
    cli: Cli, model_path: Path, folder: Path, tmp_path: Path
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    for option in ("--explain", "--output"):
        code, out, err = cli("predict", folder, "--model", model_path, option, locked / "x")
        assert (code, out) == (1, "")
        assert "cannot write" in one_error_line(err)


def test_a_heatmap_that_cannot_be_written_is_a_note_and_exit_2(
    cli: Cli, model_path: Path, tmp_path: Path
) -> None:
    picture = encode_image(make_picture(1), "JPEG")
    for name in ("a.jpg", "sub/b.jpg"):
        write_bytes(tmp_path / "in" / name, picture)
    blocked = write_bytes(tmp_path / "maps" / "sub", b"a file where a folder would go")
    code, out, err = cli(
        *as_json(model_path, tmp_path / "in"),
        "--explain",
        tmp_path / "maps",
    )
    assert code == 2 and all(r["error"] is None for r in rows_of(out))  # every row scored
    assert f"note: no heatmap for {tmp_path}/in/sub/b.jpg: cannot write {blocked}/b.png" in err
    assert err.strip().endswith("; 1 not written (see the notes above)")
    assert (tmp_path / "maps" / "a.png").is_file() and blocked.read_bytes().startswith(b"a file")


def test_explain_into_a_file_is_refused_before_any_work(
    cli: Cli, model_path: Path, folder: Path, tmp_path: Path
) -> None:
    taken = write_bytes(tmp_path / "taken.png", b"x")
    code, out, err = cli("predict", folder, "--model", model_path, "--explain", taken)
    assert (code, out) == (1, "")
    assert (
        one_error_line(err)
        == f"error: --explain {taken} is a file: name a folder (made if missing)"
    )


# --- usage errors: one line, exit status 1 ---


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--threshold", "1.5"),
        ("--threshold", "0"),
        ("--threshold", "nan"),
        ("--threshold", "half"),
        ("--batch-size", "0"),
        ("--batch-size", "2.5"),
        ("--format", "xml"),
        ("--device", "tpu"),
    ],
)
def test_bad_option_values_are_usage_errors(
    cli: Cli, model_path: Path, folder: Path, option: str, value: str
) -> None:
    code, out, err = cli("predict", folder, "--model", model_path, option, value)
    assert (code, out) == (1, "")
    assert option in one_error_line(err)


def test_no_inputs_found_is_a_usage_error(cli: Cli, model_path: Path, tmp_path: Path) -> None:
    (tmp_path / "empty-folder").mkdir()
    write_bytes(tmp_path / "junk" / ".DS_Store", b"finder")
    for args in (
        [tmp_path / "missing.jpg"],
        [tmp_path / "empty-folder", tmp_path / "junk"],
        [f"{tmp_path}/*.jpg"],
    ):
        code, out, err = cli("predict", *args, "--model", model_path)
        assert (code, out) == (1, "")
        assert "no input files" in one_error_line(err)
    code, _, err = cli("predict", "--model", model_path)  # no PATH at all
    assert code == 1 and "PATH" in one_error_line(err)


def test_a_missing_path_among_found_ones_is_a_failed_row(
    cli: Cli, model_path: Path, folder: Path
) -> None:
    code, out, _ = cli(*as_json(model_path, folder / "good.jpg", folder / "gone.jpg"))
    assert code == 2
    assert [r["error"] for r in rows_of(out)] == [None, "not_found: no such file or folder"]


def test_missing_model_says_how_to_get_one(cli: Cli, folder: Path, tmp_path: Path) -> None:
    missing = tmp_path / "models" / "model.pt"
    code, out, err = cli("predict", folder, "--model", missing)
    assert (code, out) == (1, "")
    line = one_error_line(err)
    assert line.startswith(f"error: no model at {missing}") and "dvc repro" in line


def test_cuda_without_a_gpu_is_a_usage_error_naming_the_option(
    cli: Cli, model_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, out, err = cli("predict", folder, "--model", model_path, "--device", "cuda")
    assert (code, out) == (1, "")
    assert one_error_line(err) == (
        "error: --device: is cuda but no CUDA GPU is visible (use auto or cpu)"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            lambda: build_model("seed_cnn", SIZE).state_dict(),
            "not a sneakers model",
            id="plain-state-dict",
        ),
        pytest.param(lambda: [1, 2, 3], "not a sneakers model", id="not-a-dict"),
        pytest.param(None, "not a sneakers model", id="text-file"),
        pytest.param(
            lambda: stored(tiny_artifact(), ("preprocess",)),
            "preprocess: missing",
            id="no-preprocess",
        ),
        pytest.param(
            lambda: stored(tiny_artifact(), threshold=1.5),
            "threshold: is 1.5",
            id="no-usable-threshold",
        ),
        pytest.param(lambda: stored(tiny_artifact(), format_version=1), "format 1", id="format-1"),
        pytest.param(
            lambda: stored(
                tiny_artifact(),
                image_size=64,
                preprocess=RECIPE.model_copy(update={"size": 64}).model_dump(),
            ),
            "not a usable sneakers model",
            id="weights-do-not-fit",
        ),
    ],
)
def test_files_that_are_not_our_artifact_are_refused(
    cli: Cli, folder: Path, tmp_path: Path, content: Callable[[], Any] | None, message: str
) -> None:
    path = tmp_path / "other.pt"
    if content is None:
        path.write_text("this is not a model\n")
    else:
        torch.save(content(), path)
    code, out, err = cli("predict", folder, "--model", path)
    assert (code, out) == (1, "")
    assert message in one_error_line(err)


def test_output_into_a_missing_folder_is_refused_before_any_work(
    cli: Cli, model_path: Path, folder: Path, tmp_path: Path
) -> None:
    code, _, err = cli(
        "predict", folder, "--model", model_path, "--output", tmp_path / "nowhere" / "out.csv"
    )
    assert code == 1 and "does not exist" in one_error_line(err)


# --- the same P(ai) as the evaluate stage ---


@pytest.mark.parametrize("model", ["model_path", "head_model_path"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_p_ai_as_the_evaluate_stage(
    cli: Cli, model: str, tmp_path: Path, precision: str, request: pytest.FixtureRequest
) -> None:
    """Standardize raw files as the stage does, evaluate them, then predict on the raw files,
    both in one precision (as evaluate and predict resolve `auto` alike on one machine); for
    the study's CNN and for a head on a pretrained backbone."""
    model_path = request.getfixturevalue(model)
    raw = tmp_path / "raw"
    files = {
        "real/big.jpg": encode_image(make_picture(11, scale=40), "JPEG", quality=95),  # draft mode
        "real/small.jpg": encode_image(make_picture(12), "JPEG", quality=80),
        "real/photo.png": encode_image(make_picture(13, scale=6), "PNG"),
        "ai/alpha.png": transparent_png(),
        "ai/wide.webp": encode_image(make_picture(14, scale=12).resize((200, 90)), "WEBP"),
        "ai/palette.gif": encode_image(make_picture(15).convert("P"), "GIF"),
    }
    for rel, data in files.items():
        write_bytes(raw / "src" / rel, data)
    manifest = pd.DataFrame(
        {
            "source": "src",
            "role": "train",
            "path": list(files),
            "label": [rel.split("/")[0] for rel in files],
            "brand": None,
            "generator": None,
            "group": None,
            "status": "accepted",
            "id": [f"{i:016x}" for i in range(len(files))],
        }
    )
    settings = StandardizeSettings(**RECIPE.model_dump(exclude={"max_pixels"}), workers=1)
    assert Recipe(**settings.picture_settings(), max_pixels=MAX_PIXELS) == RECIPE
    standardized = tmp_path / "standardized"
    index = standardize_manifest(manifest, raw, standardized, settings, MAX_PIXELS)
    split = index[["id"]].assign(split=["val", "test"] * (len(index) // 2))
    split.to_csv(tmp_path / "split.csv", index=False)
    splits = load_splits(standardized, tmp_path / "split.csv")
    cpu = torch.device("cpu")
    loaded, model = artifact.load(model_path, cpu)
    assert loaded.card.preprocess == RECIPE
    evaluated = predict_splits(Scorer(model, cpu, 64, precision), loaded.card, splits)

    code, out, _ = cli(
        "predict", raw / "src", "--model", model_path, "--format", "json", "--precision", precision
    )
    assert code == 0
    predicted = relative(rows_of(out), raw / "src")
    assert len(evaluated) == len(files) == len(predicted)
    for _, row in evaluated.iterrows():
        mine = predicted[row["path"]]
        assert mine["p_ai"] == pytest.approx(float(row["p_ai"]), abs=1e-6), row["path"]
        assert mine["label"] == row["predicted"], row["path"]


# --- the speed benchmark still runs ---


def test_speed_benchmark_runs_and_ends_with_the_ratio(model_path: Path, tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "predict_speed.py"
    args = [
        sys.executable,
        str(script),
        "--model",
        str(model_path),
        "--images",
        "5",
        "--batch-size",
        "2",
        "--rounds",
        "1",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("ratio predict/forward: ") and float(last.split()[-1]) > 0
    missing = subprocess.run(
        [*args[:2], "--model", "absent.pt"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert missing.returncode == 1 and missing.stderr.startswith("error: no model at absent.pt")


def test_explain_benchmark_times_both_and_measures_the_shoe_box(
    model_path: Path, tmp_path: Path
) -> None:
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "explain_cost.py"
    shoe = Image.new("RGB", (64, 64), "white")
    shoe.paste((30, 40, 50), (10, 20, 50, 44))  # a dark box on white: a shoe box is found
    write_bytes(tmp_path / "in" / "shoe.png", encode_image(shoe, "PNG"))
    args = [
        sys.executable,
        str(script),
        str(tmp_path / "in"),
        "--model",
        str(model_path),
        "--rounds",
        "1",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-2].startswith("shoe box found in 1 of 1 pictures: heatmap mass inside ")
    assert lines[-1].startswith("--explain / predict time: ") and float(lines[-1].split()[-1]) > 0
