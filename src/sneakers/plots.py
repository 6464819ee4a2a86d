"""Plot data for `dvc plots show` (JSON) and figures where a picture beats a table (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI or servers

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from sneakers.data import CLASS_NAMES, SplitData
from sneakers.files import write_json
from sneakers.metrics import pr_points, reliability_bins, roc_points


# Not Live.log_sklearn_plot: it keeps every curve point (PR: one per test picture), unthinned.
def write_plot_data(predictions: pd.DataFrame, out_dir: Path) -> None:
    """Confusion rows, ROC, precision-recall and reliability points for the test split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    test = predictions[predictions["split"] == "test"]
    y = (test["label"] == CLASS_NAMES[1]).to_numpy(dtype=int)
    p = test["p_ai"].to_numpy()
    data = {
        "confusion.json": [
            {"actual": a, "predicted": b}
            for a, b in zip(test["label"], test["predicted"], strict=True)
        ],
        "roc.json": roc_points(y, p),
        "pr.json": pr_points(y, p),
        "reliability.json": reliability_bins(y, p),
    }
    for name, rows in data.items():
        write_json(out_dir / name, rows)


def write_robustness_data(robustness: dict[str, dict[str, Any]], path: Path) -> None:
    """Test accuracy per perturbation, for a bar chart in `dvc plots show`."""
    rows = [{"condition": name, "accuracy": r["accuracy"]} for name, r in robustness.items()]
    write_json(path, rows)


def write_cross_source_data(cross: dict[str, dict[str, Any]], path: Path) -> None:
    """Accuracy per eval source (what a user meets on pictures from elsewhere), for a bar chart;
    a profile without eval sources gets an empty table, so the plot stays declared."""
    rows = [
        {"source": f"{name} (n={r['n']})", "accuracy": r["accuracy"]} for name, r in cross.items()
    ]
    write_json(path, rows)


def write_generator_data(generators: dict[str, dict[str, Any]], path: Path) -> None:
    """Detection rate per generator, seen in training or not, for a bar chart."""
    rows = [
        {
            "generator": f"{name} ({'seen' if r['seen'] else 'unseen'}, n={r['n']})",
            "detection_rate": r["detection_rate"],
        }
        for name, r in generators.items()
    ]
    write_json(path, rows)


def write_history_data(history: dict[str, Any], path: Path) -> None:
    """Test accuracy per class under each class's raw history, for a bar chart."""
    rows = [
        {
            "condition": f"{name} pictures, {owner.removesuffix('_history')} history "
            f"({part['history']})",
            "accuracy": part[name]["accuracy"],
        }
        for owner, part in history.items()
        if owner.endswith("_history")
        for name in CLASS_NAMES
        if name in part
    ]
    write_json(path, rows)


def confusion_png(predictions: pd.DataFrame, path: Path) -> None:
    """Seaborn heatmap of the test confusion matrix, counts annotated."""
    test = predictions[predictions["split"] == "test"]
    table = pd.crosstab(
        pd.Categorical(test["label"], CLASS_NAMES),
        pd.Categorical(test["predicted"], CLASS_NAMES),
        dropna=False,
    )
    fig, ax = plt.subplots(figsize=(4, 3.4))
    sns.heatmap(table, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix (test)")
    save_figure(fig, path)


def transfer_png(transfer: dict[str, Any], path: Path, note: str = "") -> None:
    """Heatmap of the transfer matrix: rows the generators a head trained on, columns the
    share of each generator's unlearned pictures called AI and of each real source's."""
    matrix = pd.DataFrame(transfer.get("matrix", {})).T
    fig, ax = plt.subplots(
        figsize=(1.1 * max(len(matrix.columns), 4) + 2, 0.45 * max(len(matrix), 4) + 1.5)
    )
    if matrix.empty:
        ax.axis("off")
        ax.text(0.5, 0.5, note or "nothing to show", ha="center", va="center", wrap=True)
    else:
        sns.heatmap(
            matrix.astype(float),
            annot=True,
            fmt=".2f",
            vmin=0,
            vmax=1,
            cmap="rocket_r",
            cbar_kws={"label": "called AI"},
            ax=ax,
        )
        ax.set(
            xlabel="pictures of (none learned from by that row; blank: none left to score)",
            ylabel="trained on",
            title="Leave-one-generator-out: share called AI",
        )
        ax.tick_params(axis="x", labelrotation=45)
    save_figure(fig, path)


def image_grid(images: list[np.ndarray], titles: list[str], colors: list[str], path: Path) -> None:
    """A grid of H x W x 3 images with a coloured title under each."""
    cols = min(6, max(len(images), 1))
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title, color in zip(axes.flat, images, titles, colors, strict=False):
        ax.imshow(image)
        ax.set_title(title, fontsize=8, color=color)
    if not images:
        axes[0, 0].text(0.5, 0.5, "nothing to show", ha="center", va="center")
    save_figure(fig, path)


def samples_png(data: SplitData, path: Path, per_class: int = 6) -> None:
    """The first standardized test images of each class: what the model actually sees."""
    picks = [i for c in CLASS_NAMES for i in np.flatnonzero(data.rows["label"] == c)[:per_class]]
    images = [data.images[i].permute(1, 2, 0).numpy() for i in picks]
    titles = [f"{data.rows['label'][i]} · {data.rows['source'][i]}"[:28] for i in picks]
    image_grid(images, titles, ["black"] * len(picks), path)


def worst_png(data: SplitData, predictions: pd.DataFrame, path: Path, count: int = 12) -> None:
    """The test images the model got most wrong (misclassified first), titled with P(ai)."""
    test = predictions[predictions["split"] == "test"].reset_index(drop=True)
    error = np.abs((test["label"] == CLASS_NAMES[1]).astype(float) - test["p_ai"]).to_numpy()
    right = (test["label"] == test["predicted"]).to_numpy()
    # The threshold need not be 0.5, so a large error does not imply a mistake: sort on both.
    order = np.lexsort((-error, right))[:count]
    position = {image_id: i for i, image_id in enumerate(data.rows["id"])}
    images = [data.images[position[test["id"][i]]].permute(1, 2, 0).numpy() for i in order]
    titles = [f"{test['label'][i]} · P(ai)={test['p_ai'][i]:.2f}" for i in order]
    colors = ["red" if test["label"][i] != test["predicted"][i] else "green" for i in order]
    image_grid(images, titles, colors, path)


def table_png(table: pd.DataFrame, title: str, path: Path, max_rows: int = 8) -> None:
    """A small table as a figure: the top rows of each label."""
    shown = table.groupby("label", group_keys=False).head(max_rows)
    cells = [[f"{v:.1%}" if isinstance(v, float) else str(v) for v in row] for row in shown.values]
    fig, ax = plt.subplots(figsize=(1.3 * len(shown.columns), 0.32 * len(cells) + 0.9))
    ax.axis("off")
    ax.table(cellText=cells, colLabels=list(shown.columns), loc="center").scale(1, 1.2)
    ax.set_title(title, fontsize=10)
    save_figure(fig, path)


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Tight layout, 100 dpi, no timestamp or software tag (same figure, same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def spectrum_png(photos: np.ndarray, fakes: np.ndarray, path: Path) -> None:
    """Mean high-pass spectra of standardized photos and of their simulated fakes, and the log
    ratio: the up-sampling peaks the fakes add show as bright dots on a grid."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    views = {
        "real photos (log magnitude)": np.log(photos),
        "their simulated fakes (log magnitude)": np.log(fakes),
        "fakes / photos (log ratio)": np.log(fakes / photos),
    }
    for ax, (title, view) in zip(axes, views.items(), strict=True):
        shown = ax.imshow(np.fft.fftshift(view), cmap="magma", extent=(-0.5, 0.5, 0.5, -0.5))
        ax.set(title=title, xlabel="cycles / pixel (horizontal)", ylabel="cycles / pixel")
        fig.colorbar(shown, ax=ax, fraction=0.046)
    save_figure(fig, path)
