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


def test_confusion_png(tmp_path: Path) -> None:
    path = tmp_path / "figures" / "confusion.png"
    confusion_png(predictions(), path)
    assert_png(path)


def test_confusion_png_when_one_class_is_never_predicted(tmp_path: Path) -> None:
    frame = predictions().assign(predicted="real")
    confusion_png(frame, tmp_path / "confusion.png")
    assert_png(tmp_path / "confusion.png")


def test_samples_png(tmp_path: Path) -> None:
    path = tmp_path / "samples.png"
    samples_png(split_data(), path)
    assert_png(path)


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
