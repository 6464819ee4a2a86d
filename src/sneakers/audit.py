"""Shortcut audits: how well does file metadata alone, or the JPEG history left in the pixels,
tell real from AI?

In the compiled Kaggle release metadata does perfectly (real: JPEG quality 95 without ICC; AI:
quality 90 with one). A metadata-only classifier trained and scored on the pipeline's own split
measures that leak on the raw files and again on the standardized ones, where it must sit near
chance, or standardization is leaking the class.

The history audit looks where equal headers cannot: a q95 photo re-encoded at q90 on the same
8x8 grid keeps a double-quantization trace in its DCT coefficients that a q90 image re-encoded
at q90 does not (Barni et al. 2017; docs: "Why standardize"). It fits a classifier on the
histograms of those coefficients alone, on the pipeline's own split: on the raw files, on the
standardized ones and, as a control, on the standardized ones after a grid-breaking resample
and re-encode (which erases an aligned double-JPEG trace). Standardized well above its control
means standardization left a class-specific history in the pixels.

The coefficients are computed, not read from the file: decode the luminance plane (Pillow's
JPEG decoder in YCbCr mode, so no colour conversion), blockwise orthonormal DCT with SciPy, and
divide by the file's own luminance quantization table. That recovers the stored integers up to
the decoder's rounding, needs no compiled JPEG reader, and works for PNGs and resampled
pictures alike (divided by the standardized quality's table).
"""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.fft
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from sneakers.history import resample
from sneakers.jpeg import BLOCK, quality_table, table_of
from sneakers.parallel import parallel_map
from sneakers.params import AuditSettings
from sneakers.preprocess import encode_jpeg
from sneakers.probe import probe_bytes
from sneakers.shards import read_image

NUMERIC = ["width", "height", "bytes", "jpeg_quality", "icc"]
CATEGORICAL = ["format", "subsampling"]
# The 15 lowest AC frequencies in JPEG's zig-zag order, as (row, column) of the 8x8 block:
# most of an image's non-zero coefficients, where double quantization shows first.
ZIGZAG_AC = (
    (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1),
    (3, 0), (4, 0), (3, 1), (2, 2), (1, 3), (0, 4), (0, 5),
)  # fmt: skip
VALUES = np.arange(-12, 13)  # histogram bins: quantized values -12..12, one bin each


def standardized_facts(standardized_dir: Path, rows: pd.DataFrame) -> pd.DataFrame:
    """The same encoding facts as the manifest's, read from each standardized JPEG."""
    facts = [
        probe_bytes(read_image(standardized_dir, row), min_size=1, max_pixels=2**40)
        for _, row in rows.iterrows()
    ]
    return pd.DataFrame(facts, index=rows.index)[NUMERIC + CATEGORICAL]


def features(facts: pd.DataFrame) -> pd.DataFrame:
    """Numeric design matrix: numbers as they are (missing -> -1), categories one-hot."""
    numeric = facts[NUMERIC].astype(float).fillna(-1.0)
    categorical = pd.get_dummies(facts[CATEGORICAL].fillna("").astype(str), dtype=float)
    return pd.concat([numeric, categorical], axis=1)


def shortcut_score(
    facts: pd.DataFrame, labels: pd.Series, splits: pd.Series, classifier: str, seed: int
) -> dict[str, Any]:
    """Fit on the train split, score on test: balanced accuracy near 0.5 means no shortcut."""
    return split_score(features(facts).to_numpy(), labels, splits, classifier, seed)


def split_score(
    x: np.ndarray, labels: pd.Series, splits: pd.Series, classifier: str, seed: int
) -> dict[str, Any]:
    """Fit a classifier on the train rows of x, score it on the test rows."""
    y = (labels == "ai").to_numpy(dtype=int)
    train, test = (splits == "train").to_numpy(), (splits == "test").to_numpy()
    model = (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        if classifier == "logistic"
        else DecisionTreeClassifier(max_depth=4, random_state=seed)
    )
    predicted = model.fit(x[train], y[train]).predict(x[test])  # split.check_splits: both labels
    return {
        "balanced_accuracy": float(balanced_accuracy_score(y[test], predicted)),
        "accuracy": float(accuracy_score(y[test], predicted)),
        "n_train": int(train.sum()),
        "n_test": int(test.sum()),
    }


def audit(
    manifest: pd.DataFrame,
    split: pd.DataFrame,
    index: pd.DataFrame,
    standardized_dir: Path,
    classifier: str,
    seed: int,
) -> dict[str, Any]:
    """Shortcut scores on the raw inputs and on the standardized outputs, same split.

    After standardization only the compressed size still varies, and it tracks how detailed a
    picture is (content, not encoding): `standardized_without_size` shows what is left without it.
    """
    rows = split[["id", "label", "split"]].merge(
        index[["id", "shard", "offset", "length"]], on="id", validate="one_to_one"
    )
    raw = rows[["id"]].merge(manifest.dropna(subset=["id"]), on="id", how="left")
    standardized = standardized_facts(standardized_dir, rows)
    labels, splits = rows["label"], rows["split"]
    return {
        "classifier": classifier,
        "raw": shortcut_score(raw, labels, splits, classifier, seed),
        "standardized": shortcut_score(standardized, labels, splits, classifier, seed),
        "standardized_without_size": shortcut_score(
            standardized.assign(bytes=0), labels, splits, classifier, seed
        ),
    }


def luminance(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """The Y plane as float, and the file's luminance table (None if it is no JPEG)."""
    im = Image.open(io.BytesIO(data))
    if im.format == "JPEG":
        im.draft("YCbCr", im.size)  # the decoder's own Y plane, not Y recomputed from RGB
        y = np.asarray(im.convert("YCbCr"))[..., 0]
        return y.astype(np.float64), table_of(im)
    return np.asarray(im.convert("L"), dtype=np.float64), None


def coefficient_histograms(y: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per-frequency histograms of quantized DCT coefficients over the picture's whole 8x8
    blocks: 15 frequencies x 25 values, each histogram a share of the blocks."""
    h, w = (d - d % BLOCK for d in y.shape)
    if h == 0 or w == 0:
        return np.zeros(len(ZIGZAG_AC) * len(VALUES))
    blocks = (y[:h, :w] - 128.0).reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2)
    coefficients = scipy.fft.dctn(blocks, type=2, axes=(2, 3), norm="ortho") / table
    rows, cols = zip(*ZIGZAG_AC, strict=True)
    quantized = np.rint(coefficients[:, :, rows, cols]).reshape(-1, len(ZIGZAG_AC))
    edges = np.append(VALUES - 0.5, VALUES[-1] + 0.5)
    counts = [np.histogram(quantized[:, k], bins=edges)[0] for k in range(len(ZIGZAG_AC))]
    return np.concatenate(counts) / len(quantized)


def history_features(data: bytes, quality: int) -> np.ndarray:
    """The audit's features for one file: the histograms of its luminance DCT coefficients,
    quantized by its own table (or by `quality`'s where it has none)."""
    y, table = luminance(data)
    return coefficient_histograms(y, quality_table(quality) if table is None else table)


def grid_break(data: bytes, scale: float, quality: int) -> bytes:
    """The control: resample by `scale` (bicubic), crop the centre back to the original size,
    re-encode at `quality`. The 8x8 grid moves and an aligned double-JPEG trace is gone."""
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    h, w = pixels.shape[:2]
    big = resample(pixels, scale)
    left, top = (big.width - w) // 2, (big.height - h) // 2
    return encode_jpeg(big.crop((left, top, left + w, top + h)), quality)


def history_task(
    task: tuple[str, str, int, int], standardized_dir: Path, quality: int, scale: float
) -> np.ndarray:
    """One image's history features: raw file, standardized, and the grid-broken control
    (runs in a worker process)."""
    raw_path, shard, offset, length = task
    where = {"shard": shard, "offset": offset, "length": length}
    standardized = read_image(standardized_dir, pd.Series(where))
    return np.stack(
        [
            history_features(Path(raw_path).read_bytes(), quality),
            history_features(standardized, quality),
            history_features(grid_break(standardized, scale, quality), quality),
        ]
    )


def history_audit(
    manifest: pd.DataFrame,
    split: pd.DataFrame,
    index: pd.DataFrame,
    dirs: tuple[Path, Path],
    settings: AuditSettings,
    quality: int,
    seed: int,
) -> dict[str, Any]:
    """The history audit on the raw, standardized and control pictures of the same split
    (dirs: raw, standardized), and the gap standardized - control: near 0 when standardization
    left no class-specific history in the pixels."""
    raw_dir, standardized_dir = dirs
    accepted = manifest[manifest["status"] == "accepted"][["id", "source", "path"]]
    scored = split[split["split"].isin(("train", "test"))]  # eval sources are not audited
    rows = (
        scored[["id", "label", "split"]]
        .merge(index[["id", "shard", "offset", "length"]], on="id", validate="one_to_one")
        .merge(accepted, on="id", validate="one_to_one")
    )
    tasks = [
        (str(raw_dir / r.source / r.path), r.shard, int(r.offset), int(r.length))
        for r in rows.itertuples()
    ]
    work = partial(
        history_task,
        standardized_dir=standardized_dir,
        quality=quality,
        scale=settings.control_scale,
    )
    x = np.stack(list(parallel_map(work, tasks, 0, "history audit", chunksize=16)))
    out = {
        name: split_score(x[:, k], rows["label"], rows["split"], settings.classifier, seed)
        for k, name in enumerate(("raw", "standardized", "control"))
    }
    gap = out["standardized"]["balanced_accuracy"] - out["control"]["balanced_accuracy"]
    return {**out, "gap": gap, "control_scale": settings.control_scale}


def encoding_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Raw encodings of the accepted training files per class: how often each combination
    occurs."""
    accepted = manifest[(manifest["status"] == "accepted") & (manifest["role"] == "train")].copy()
    width, height = (accepted[c].astype("Int64").astype(str) for c in ("width", "height"))
    accepted["size"] = width + "x" + height
    accepted["quality"] = accepted["jpeg_quality"].astype("Int64").astype(str).replace("<NA>", "-")
    columns = ["label", "format", "quality", "icc", "subsampling", "size"]
    table = accepted.fillna({"subsampling": "-"}).groupby(columns, dropna=False).size()
    table = table.rename("files").reset_index()
    table["share"] = table["files"] / table.groupby("label")["files"].transform("sum")
    return table.sort_values(["label", "files"], ascending=[True, False], ignore_index=True)
