"""Plot data for `dvc plots show` and the PNG figures of the evaluate stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import sneakers.plots
from sneakers.data import SplitData
from sneakers.plots import confusion_png, samples_png, worst_png, write_plot_data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
THRESHOLD = 0.2  # deliberately not 0.5: a big error is then not always a mistake
DPI = 100  # save_figure's

# id, label, p_ai. Decided at THRESHOLD: t2 and t4 are wrong, t1 is right but far from its label.
TEST_ROWS = [
    ("t0", "ai", 0.9),
    ("t1", "ai", 0.25),  # right (0.25 >= 0.2), error 0.75: the largest error of all
    ("t2", "real", 0.3),  # wrong, error 0.3
    ("t3", "real", 0.05),
    ("t4", "ai", 0.1),  # wrong, error 0.9
    ("t5", "real", 0.15),
]


def split_data() -> SplitData:
    """The test split behind TEST_ROWS: image i is filled with grey level 40 * i."""
    n = len(TEST_ROWS)
    images = torch.stack([torch.full((3, 40, 40), 40 * i, dtype=torch.uint8) for i in range(n)])
    rows = pd.DataFrame(
        {
            "id": [r[0] for r in TEST_ROWS],
            "label": [r[1] for r in TEST_ROWS],
            "source": ["src-a", "src-b"] * (n // 2),
        }
    )
    labels = torch.tensor([1 if r[1] == "ai" else 0 for r in TEST_ROWS])
    return SplitData(images, labels, rows)


def predictions() -> pd.DataFrame:
    """Two val rows (to be ignored) then the test rows, in evaluate's column layout."""
    val = [("v0", "real", 0.99), ("v1", "ai", 0.01)]
    frame = pd.DataFrame(val + TEST_ROWS, columns=["id", "label", "p_ai"])
    frame["split"] = ["val"] * len(val) + ["test"] * len(TEST_ROWS)
    frame["source"], frame["brand"], frame["path"] = "src-a", None, frame["id"] + ".jpg"
    frame["predicted"] = np.where(frame["p_ai"] >= THRESHOLD, "ai", "real")
    return frame


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 50 and im.height > 50


def drawn(path: Path) -> np.ndarray:
    """A valid PNG's pixels as H x W x 3 ints, checked not to be one flat colour."""
    assert_png(path)
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB")).astype(int)
    assert pixels.std() > 0 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 2, path
    return pixels


def heatmap_darkness(pixels: np.ndarray) -> np.ndarray:
    """Darkness of the 2 x 2 cells of a Blues heatmap (rows actual, columns predicted): the
    median colour of each quarter of the box of bluish pixels, where text and the white page
    are grey."""
    bluish = pixels[..., 2] > pixels[..., 0]
    rows, cols = np.flatnonzero(bluish.any(axis=1)), np.flatnonzero(bluish.any(axis=0))
    box = pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = box.shape[0] // 2, box.shape[1] // 2
    cells = [[box[i * h : (i + 1) * h, j * w : (j + 1) * w] for j in (0, 1)] for i in (0, 1)]
    return np.array([[765 - np.median(c.reshape(-1, 3), axis=0).sum() for c in r] for r in cells])


def assert_shades_follow(darkness: np.ndarray, counts: list[list[int]]) -> None:
    """Cells with more images are darker, with as many equally dark."""
    d, c = darkness.ravel(), np.asarray(counts).ravel()
    assert (np.sign(np.subtract.outer(d, d)) == np.sign(np.subtract.outer(c, c))).all(), darkness


def test_write_plot_data(tmp_path: Path) -> None:
    write_plot_data(predictions(), tmp_path / "plots")
    files = {p.name: json.loads(p.read_text()) for p in (tmp_path / "plots").iterdir()}
    assert set(files) == {"confusion.json", "roc.json", "pr.json", "reliability.json"}
    assert all(isinstance(rows, list) and rows for rows in files.values())

    expected = [
        {"actual": label, "predicted": "ai" if p >= THRESHOLD else "real"}
        for _, label, p in TEST_ROWS
    ]
    assert files["confusion.json"] == expected  # one row per test image, val left out
    assert all({"fpr", "tpr", "threshold"} == set(row) for row in files["roc.json"])
    assert files["roc.json"][0]["fpr"] == 0 and files["roc.json"][-1]["tpr"] == 1
    assert all({"recall", "precision"} == set(row) for row in files["pr.json"])
    assert all({"confidence", "accuracy", "count"} == set(r) for r in files["reliability.json"])
    assert sum(r["count"] for r in files["reliability.json"]) == len(TEST_ROWS)


def test_write_plot_data_thins_the_curves_of_a_large_test_set(tmp_path: Path) -> None:
    """Why ours and not Live.log_sklearn_plot: 3,000 distinct scores give sklearn 3,000 PR
    points; the committed files keep 200 at most, strict JSON (no Infinity threshold)."""
    rng = np.random.default_rng(0)
    label = np.repeat(["real", "ai"], 1500)
    p_ai = np.where(label == "ai", rng.beta(4, 1.5, label.size), rng.beta(1.5, 4, label.size))
    frame = pd.DataFrame({"label": label, "p_ai": p_ai, "split": "test"})
    write_plot_data(frame.assign(predicted=np.where(p_ai >= 0.5, "ai", "real")), tmp_path)

    def strict(value: str) -> None:
        raise ValueError(value)

    for name in ("roc.json", "pr.json"):
        rows = json.loads((tmp_path / name).read_text(), parse_constant=strict)
        assert 2 <= len(rows) <= 200, name


def test_confusion_png(tmp_path: Path) -> None:
    """4 x 3.4 inches at 100 dpi; the test rows give real [2 right, 1 wrong], ai [1 wrong,
    2 right]; calling the real t2 real too gives real [3, 0], and another picture."""
    path = tmp_path / "figures" / "confusion.png"
    confusion_png(predictions(), path)
    pixels = drawn(path)
    assert pixels.shape == (round(3.4 * DPI), 4 * DPI, 3)
    assert_shades_follow(heatmap_darkness(pixels), [[2, 1], [1, 2]])

    other = predictions()
    other.loc[other["id"] == "t2", "predicted"] = "real"
    confusion_png(other, tmp_path / "other.png")
    changed = drawn(tmp_path / "other.png")
    assert changed.shape == pixels.shape and (changed != pixels).any()
    assert_shades_follow(heatmap_darkness(changed), [[3, 0], [1, 2]])


def test_confusion_png_when_one_class_is_never_predicted(tmp_path: Path) -> None:
    """The never predicted column is still drawn, empty (a 2 x 1 map would be dark both sides)."""
    frame = predictions().assign(predicted="real")
    confusion_png(frame, tmp_path / "confusion.png")
    assert_shades_follow(heatmap_darkness(drawn(tmp_path / "confusion.png")), [[3, 0], [3, 0]])


# One flat colour per picture, none grey, so a tile is found by its colour and not confused
# with title text or the white page.
COLOURS = [
    (200, 30, 30),
    (30, 160, 30),
    (30, 30, 200),
    (200, 160, 30),
    (160, 30, 200),
    (30, 160, 200),
    (230, 120, 20),
    (90, 20, 60),
]
LABELS = ["ai", "real", "ai", "real", "real", "ai", "real", "ai"]


def colour_split() -> SplitData:
    """Eight flat-coloured test pictures, four of each class, interleaved."""
    images = torch.stack(
        [torch.tensor(c, dtype=torch.uint8)[:, None, None].expand(3, 40, 40) for c in COLOURS]
    )
    rows = pd.DataFrame({"id": [f"c{i}" for i in range(8)], "label": LABELS, "source": "s"})
    return SplitData(images, torch.tensor([label == "ai" for label in LABELS]).long(), rows)


@pytest.mark.parametrize(
    ("per_class", "shown", "grid"),
    [
        (6, [1, 3, 4, 6, 0, 2, 5, 7], (2, 6)),  # all eight, real first: 6 + 2 on a second row
        (2, [1, 3, 0, 2], (1, 4)),  # the first two of each class, one row
    ],
)
def test_samples_png(
    tmp_path: Path, per_class: int, shown: list[int], grid: tuple[int, int]
) -> None:
    """A tile per picked picture, in reading order, in a grid of 2 x 2.2 inch cells; the
    pictures not picked and the cells left over are not drawn."""
    path = tmp_path / "samples.png"
    samples_png(colour_split(), path, per_class=per_class)
    pixels = drawn(path)
    rows, cols = grid
    assert pixels.shape == (round(2.2 * DPI * rows), 2 * DPI * cols, 3)
    cell_h, cell_w = pixels.shape[0] // rows, pixels.shape[1] // cols
    for k, i in enumerate(shown):
        tile = (pixels == COLOURS[i]).all(axis=-1)
        ys, xs = np.flatnonzero(tile.any(axis=1)), np.flatnonzero(tile.any(axis=0))
        height, width = ys[-1] - ys[0] + 1, xs[-1] - xs[0] + 1
        assert tile.sum() == height * width and abs(height - width) <= 2, i  # a filled square
        assert height > 0.75 * cell_w, i
        centre_y, centre_x = (ys[0] + ys[-1]) // 2, (xs[0] + xs[-1]) // 2
        assert (centre_y // cell_h, centre_x // cell_w) == divmod(k, cols), i
    for i in set(range(len(COLOURS))) - set(shown):
        assert not (pixels == COLOURS[i]).all(axis=-1).any(), i
    for k in range(len(shown), rows * cols):
        row, col = divmod(k, cols)
        cell = pixels[row * cell_h : (row + 1) * cell_h, col * cell_w : (col + 1) * cell_w]
        assert (cell == 255).all(), k  # white page


def capture_grid(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Record what worst_png hands to image_grid, then draw as usual."""
    seen: dict[str, Any] = {}
    draw = sneakers.plots.image_grid

    def spy(images: list[np.ndarray], titles: list[str], colors: list[str], path: Path) -> None:
        seen.update(images=images, titles=titles, colors=colors)
        draw(images, titles, colors, path)

    monkeypatch.setattr(sneakers.plots, "image_grid", spy)
    return seen


def test_worst_png_puts_mistakes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = capture_grid(monkeypatch)
    worst_png(split_data(), predictions(), tmp_path / "worst.png")
    assert_png(tmp_path / "worst.png")

    # The image shown must be the one named in the title: grey level 40 * i for row ti.
    shown = [int(image[0, 0, 0]) // 40 for image in seen["images"]]
    # Mistakes by decreasing error (t4, t2), then the rest by decreasing error.
    assert shown == [4, 2, 1, 5, 0, 3]
    assert seen["colors"] == ["red", "red"] + ["green"] * 4
    assert seen["titles"][0] == "ai · P(ai)=0.10"


def test_worst_png_keeps_the_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = capture_grid(monkeypatch)
    worst_png(split_data(), predictions(), tmp_path / "worst.png", count=3)
    assert [int(image[0, 0, 0]) // 40 for image in seen["images"]] == [4, 2, 1]
