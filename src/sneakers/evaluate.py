"""Score the kept model on validation and test data at the threshold fixed during training."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from sneakers.artifact import Card
from sneakers.data import CLASS_NAMES, SplitData, decode
from sneakers.explain import Explained, explain
from sneakers.history import History, resample, with_history
from sneakers.inference import Scorer
from sneakers.metrics import bootstrap_auc_ci, classification_report, roc_auc
from sneakers.perturb import CONDITIONS, apply_to_batch
from sneakers.preprocess import Recipe
from sneakers.split import EVAL

SCORED = ("val", "test", EVAL)  # the splits evaluate scores; train is never loaded

# Resample scales that break the 8x8 grid, each a robustness condition (resampled losslessly,
# then standardized); the history test resamples by the mild one before swapping histories.
RESAMPLE_SCALES = (0.8, 1.07, 1.25)
HISTORY_SCALE = 1.07


def class_means(values: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The mean of values over each class present in y (accuracy, when values say correct)."""
    return {c: float(values[y == k].mean()) for k, c in enumerate(CLASS_NAMES) if (y == k).any()}


def predict_splits(scorer: Scorer, card: Card, splits: dict[str, SplitData]) -> pd.DataFrame:
    """One row per val, test and eval image: its index facts, split, P(ai), predicted label."""
    frames = []
    for name in SCORED:
        if name not in splits:  # eval: only where the profile has eval sources
            continue
        data = splits[name]
        p_ai = scorer.proba(data.images)
        rows = data.rows[["id", "label", "source", "brand", "generator", "path"]].copy()
        rows["split"], rows["p_ai"] = name, p_ai
        rows["predicted"] = np.where(p_ai >= card.threshold, CLASS_NAMES[1], CLASS_NAMES[0])
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def split_metrics(predictions: pd.DataFrame, threshold: float, seed: int) -> dict[str, Any]:
    """Headline metrics for val and test, with a bootstrap interval for ROC AUC."""
    out = {}
    for name, part in predictions.groupby("split", sort=False):
        if name == EVAL:  # scored per source by cross_source, never pooled
            continue
        y = (part["label"] == CLASS_NAMES[1]).to_numpy(dtype=int)
        report = classification_report(y, part["p_ai"].to_numpy(), threshold, CLASS_NAMES)
        ci = bootstrap_auc_ci(y, part["p_ai"].to_numpy(), seed=seed)
        out[str(name)] = {**report, "roc_auc_ci95": list(ci) if ci else None}
    return out


def robustness_batches(test: SplitData, recipe: Recipe) -> dict[str, torch.Tensor]:
    """The test pictures under each perturbation, and after each resample (then standardized,
    as a user's resized photo is): uint8 batches by condition name."""
    out = {
        name: test.images if perturbation is None else apply_to_batch(test.images, perturbation)
        for name, perturbation in CONDITIONS.items()
    }
    for scale in RESAMPLE_SCALES:
        out[f"resample_{scale}x"] = counterfactual(test, recipe, scale, None)
    return out


def history_batches(
    test: SplitData, recipe: Recipe, histories: dict[str, History]
) -> dict[str, torch.Tensor]:
    """Every test picture resampled (content held fixed), then given each class's raw history."""
    return {
        owner: counterfactual(test, recipe, HISTORY_SCALE, history)
        for owner, history in histories.items()
    }


def robustness(scorer: Scorer, card: Card, test: SplitData) -> dict[str, dict[str, Any]]:
    """Accuracy (at the fixed threshold; overall and per class) and ROC AUC of test under each
    of `robustness_batches`."""
    y = test.labels.numpy()
    out: dict[str, dict[str, Any]] = {}
    for name, images in robustness_batches(test, card.preprocess).items():
        p_ai = scorer.proba(images)
        correct = (p_ai >= card.threshold) == y
        out[name] = {
            "accuracy": float(correct.mean()),
            "roc_auc": roc_auc(y, p_ai),
            "per_class_accuracy": class_means(correct, y),
        }
    return out


def counterfactual(
    test: SplitData, recipe: Recipe, scale: float, history: History | None
) -> torch.Tensor:
    """Every test picture resampled by scale, saved with a history (None: losslessly), then
    standardized with the model's own settings and decoded, as a uint8 N x 3 x H x W batch."""
    out = []
    for image in test.images:
        raw = with_history(resample(image.permute(1, 2, 0).numpy(), scale), history)
        out.append(decode(recipe.apply(raw)))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def history_sensitivity(
    scorer: Scorer, card: Card, test: SplitData, histories: dict[str, History]
) -> dict[str, Any]:
    """Per class, accuracy and mean P(ai) when every test picture (resampled, content held
    fixed) is given each class's raw history; and the shift in mean P(ai) between them."""
    y = test.labels.numpy()
    out: dict[str, Any] = {"scale": HISTORY_SCALE}
    for owner, images in history_batches(test, card.preprocess, histories).items():
        p_ai = scorer.proba(images)
        correct = (p_ai >= card.threshold) == y
        accuracy, mean_p_ai = class_means(correct, y), class_means(p_ai, y)
        out[f"{owner}_history"] = {
            "history": histories[owner].describe(),
            **{c: {"accuracy": accuracy[c], "mean_p_ai": mean_p_ai[c]} for c in accuracy},
        }
    if {"real_history", "ai_history"} <= set(out):
        out["shift_mean_p_ai"] = {
            name: out["ai_history"][name]["mean_p_ai"] - out["real_history"][name]["mean_p_ai"]
            for name in CLASS_NAMES
            if name in out["ai_history"]
        }
    return out


def cross_source(predictions: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per eval source (never trained or tuned on), at the fixed threshold: n, accuracy, mean
    P(ai), the false-positive rate of its real pictures and the detection rate of its AI ones;
    ROC AUC within a source of both classes, and of each real source against each AI source."""
    rows = predictions[predictions["split"] == EVAL].copy()
    rows["called_ai"] = rows["predicted"] == CLASS_NAMES[1]
    rows["is_ai"] = rows["label"] == CLASS_NAMES[1]
    sources = {str(k): g for k, g in rows.groupby("source", sort=True)}
    out: dict[str, dict[str, Any]] = {}
    for source, part in sources.items():
        real, ai = part[~part["is_ai"]], part[part["is_ai"]]
        out[source] = {
            "n": len(part),
            "accuracy": float((part["called_ai"] == part["is_ai"]).mean()),
            "mean_p_ai": float(part["p_ai"].mean()),
            **({"false_positive_rate": float(real["called_ai"].mean())} if len(real) else {}),
            **({"detection_rate": float(ai["called_ai"].mean())} if len(ai) else {}),
            **({"roc_auc": roc_auc(part["is_ai"], part["p_ai"])} if len(real) and len(ai) else {}),
        }
    pure = {k: g for k, g in sources.items() if g["is_ai"].nunique() == 1}
    reals = {k: g for k, g in pure.items() if not g["is_ai"].iloc[0]}
    fakes = {k: g for k, g in pure.items() if g["is_ai"].iloc[0]}
    for name, real in reals.items():
        versus = {}
        for other, ai in fakes.items():
            pair = pd.concat([real, ai])
            versus[other] = roc_auc(pair["is_ai"], pair["p_ai"])
        if versus:
            out[name]["roc_auc_vs"] = versus
    return out


def by_generator(predictions: pd.DataFrame, seen: list[str]) -> dict[str, dict[str, Any]]:
    """Per generator of the test split's and the held-out sources' AI pictures, at the fixed
    threshold: n, where its pictures were (test, eval), whether the model trained on it, the
    detection rate, and ROC AUC against the real test pictures and each real held-out source.
    AUC ranks without the threshold: it survives where a threshold from other generators
    fails (NPR's tables), so the two together say which one broke."""
    scored = predictions[predictions["split"].isin(["test", EVAL])]
    real = scored[scored["label"] == CLASS_NAMES[0]]
    against = {"test": real[real["split"] == "test"]}
    against |= {str(k): g for k, g in real[real["split"] == EVAL].groupby("source", sort=True)}
    out: dict[str, dict[str, Any]] = {}
    for name, ai in scored[scored["label"] == CLASS_NAMES[1]].groupby("generator", sort=True):
        aucs = {}
        for where, reals in against.items():
            pair = pd.concat([reals, ai])
            aucs[where] = roc_auc(pair["label"] == CLASS_NAMES[1], pair["p_ai"])
        out[str(name)] = {
            "n": len(ai),
            "in": ", ".join(sorted(set(ai["split"]))),
            "seen": name in seen,
            "detection_rate": float((ai["predicted"] == CLASS_NAMES[1]).mean()),
            "roc_auc_vs": aucs,
        }
    return out


def heatmap_picks(predictions: pd.DataFrame, seed: int, per_group: int = 6) -> pd.DataFrame:
    """Which pictures the heatmap figure shows: for test and the held-out sources, per true
    class, the most confident mistakes first, taking turns between sources (at least half the
    row where there are that many), then correct ones drawn with the seed; `group` names the
    row."""
    rng = np.random.default_rng(seed)
    picks = []
    for split, name in (("test", "test"), (EVAL, "held-out")):
        for label in CLASS_NAMES:
            group = predictions[(predictions["split"] == split) & (predictions["label"] == label)]
            wrong, right = group[group["predicted"] != label], group[group["predicted"] == label]
            confidence = wrong["p_ai"] if label == CLASS_NAMES[0] else 1 - wrong["p_ai"]
            wrong = wrong.loc[confidence.sort_values(ascending=False, kind="stable").index]
            turn = wrong.groupby("source").cumcount()  # each source's worst, then second worst
            wrong = wrong.loc[turn.sort_values(kind="stable").index]
            n_wrong = min(len(wrong), max(per_group // 2, per_group - len(right)))
            n_right = min(len(right), per_group - n_wrong)
            drawn = right.iloc[np.sort(rng.choice(len(right), n_right, replace=False))]
            picks.append(pd.concat([wrong.head(n_wrong), drawn]).assign(group=f"{name} {label}"))
    return pd.concat(picks, ignore_index=True)


def explain_picks(
    model: torch.nn.Module,
    splits: dict[str, SplitData],
    picks: pd.DataFrame,
    device: torch.device,
) -> Explained:
    """Grad-CAM heatmaps of the picked pictures, found by split and id."""
    position = {
        (name, image_id): i
        for name, data in splits.items()
        for i, image_id in enumerate(data.rows["id"])
    }
    images = [
        splits[s].images[position[(s, i)]] for s, i in zip(picks["split"], picks["id"], strict=True)
    ]
    stacked = torch.stack(images) if images else torch.zeros((0, 3, 1, 1), dtype=torch.uint8)
    return explain(model, picks, stacked, device)


def accuracy_by(predictions: pd.DataFrame, column: str) -> dict[str, dict[str, float]]:
    """Test accuracy per value of column (source, brand), where the manifest knows it."""
    test = predictions[(predictions["split"] == "test") & predictions[column].notna()]
    return {
        str(key): {"accuracy": float((g["label"] == g["predicted"]).mean()), "n": len(g)}
        for key, g in test.groupby(column)
    }


def evaluate(
    scorer: Scorer,
    card: Card,
    splits: dict[str, SplitData],
    seed: int,
    histories: dict[str, History],
    network: torch.nn.Module | None = None,
) -> tuple[dict[str, Any], pd.DataFrame, Explained]:
    """Metrics (nested, JSON-ready), the per-image predictions behind them and heatmaps of a
    seeded choice of pictures. The scorer's model is the card's network (or what scores as it
    does, features.Cached; then network is the network itself, for the heatmaps); histories,
    each class's typical raw file (`history.dominant_histories` of the manifest), for the
    history test."""
    started = time.perf_counter()
    predictions = predict_splits(scorer, card, splits)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    picks = heatmap_picks(predictions, seed)
    explained = explain_picks(network or scorer.model, splits, picks, scorer.device)
    heatmap_seconds = time.perf_counter() - started
    metrics = {
        **split_metrics(predictions, card.threshold, seed),
        "by_source": accuracy_by(predictions, "source"),
        "by_brand": accuracy_by(predictions, "brand"),
        "robustness": robustness(scorer, card, splits["test"]),
        "history": history_sensitivity(scorer, card, splits["test"], histories),
        "cross_source": cross_source(predictions),
        "generators": by_generator(predictions, card.trained.generators),
        "run": {  # val, test and eval scoring: what a user waits for
            "precision": scorer.precision,
            "images_per_second": round(len(predictions) / seconds, 2),
            "heatmap_seconds": round(heatmap_seconds, 2),
        },
    }
    return metrics, predictions, explained
