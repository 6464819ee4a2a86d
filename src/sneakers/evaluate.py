"""Score the kept model on validation and test data at the threshold fixed during training."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from sneakers.data import CLASS_NAMES, SplitData
from sneakers.inference import model_from_artifact, predict_proba
from sneakers.metrics import bootstrap_auc_ci, classification_report, roc_auc
from sneakers.perturb import CONDITIONS, apply_to_batch


def predict_splits(
    artifact: dict[str, Any],
    splits: dict[str, SplitData],
    device: torch.device,
    batch_size: int,
    precision: str,
) -> pd.DataFrame:
    """One row per val/test image: its index facts, split, P(ai) and predicted label."""
    model = model_from_artifact(artifact, device)
    frames = []
    for name in ("val", "test"):
        data = splits[name]
        p_ai = predict_proba(model, data.images, device, batch_size, precision)
        rows = data.rows[["id", "label", "source", "brand", "path"]].copy()
        rows["split"], rows["p_ai"] = name, p_ai
        rows["predicted"] = np.where(p_ai >= artifact["threshold"], CLASS_NAMES[1], CLASS_NAMES[0])
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def split_metrics(predictions: pd.DataFrame, threshold: float, seed: int) -> dict[str, Any]:
    """Headline metrics for val and test, with a bootstrap interval for ROC AUC."""
    out = {}
    for name, part in predictions.groupby("split", sort=False):
        y = (part["label"] == CLASS_NAMES[1]).to_numpy(dtype=int)
        report = classification_report(y, part["p_ai"].to_numpy(), threshold, CLASS_NAMES)
        ci = bootstrap_auc_ci(y, part["p_ai"].to_numpy(), seed=seed)
        out[str(name)] = {**report, "roc_auc_ci95": list(ci) if ci else None}
    return out


def robustness(
    artifact: dict[str, Any],
    test: SplitData,
    device: torch.device,
    batch_size: int,
    precision: str,
) -> dict[str, dict[str, float | None]]:
    """Accuracy (at the fixed threshold) and ROC AUC of test under each perturbation."""
    model = model_from_artifact(artifact, device)
    y = test.labels.numpy()
    out: dict[str, dict[str, float | None]] = {}
    for name, perturbation in CONDITIONS.items():
        images = test.images if perturbation is None else apply_to_batch(test.images, perturbation)
        p_ai = predict_proba(model, images, device, batch_size, precision)
        accuracy = float(np.mean((p_ai >= artifact["threshold"]) == y))
        out[name] = {"accuracy": accuracy, "roc_auc": roc_auc(y, p_ai)}
    return out


def accuracy_by(predictions: pd.DataFrame, column: str) -> dict[str, dict[str, float]]:
    """Test accuracy per value of column (source, brand), where the manifest knows it."""
    test = predictions[(predictions["split"] == "test") & predictions[column].notna()]
    return {
        str(key): {"accuracy": float((g["label"] == g["predicted"]).mean()), "n": len(g)}
        for key, g in test.groupby(column)
    }


def evaluate(
    artifact: dict[str, Any],
    splits: dict[str, SplitData],
    device: torch.device,
    precision: str,
    seed: int,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Metrics (nested, JSON-ready) and the per-image predictions behind them; precision is
    fp32 or bf16, already resolved for the device."""
    started = time.perf_counter()
    predictions = predict_splits(artifact, splits, device, batch_size=64, precision=precision)
    seconds = time.perf_counter() - started
    metrics = {
        **split_metrics(predictions, artifact["threshold"], seed),
        "by_source": accuracy_by(predictions, "source"),
        "by_brand": accuracy_by(predictions, "brand"),
        "robustness": robustness(
            artifact, splits["test"], device, batch_size=64, precision=precision
        ),
        "run": {  # val + test scoring, model build included: what a user waits for
            "precision": precision,
            "images_per_second": round(len(predictions) / seconds, 2),
        },
    }
    return metrics, predictions
