"""Evaluation metrics for the real (0) vs ai (1) detector.

Every function takes ``y_true`` (0/1 labels, 1 = ai is the positive class) and ``p_ai`` (the
model's P(ai), i.e. softmax[:, 1]) as array-likes and returns plain Python floats, lists and
dicts, so results can be written straight to JSON for DVC metrics and plots.

Decisions use ``p_ai >= threshold``. Calibration (ECE, reliability bins) instead uses the
standard top-label definition of Guo et al. (2017): the predicted class is the argmax
(``p_ai >= 0.5``), its confidence is ``max(p_ai, 1 - p_ai)``, and confidences fall in 15
equal-width bins over [0, 1], each bin ``(lo, hi]``. Calibration is a property of the
probabilities, so it does not depend on the chosen operating threshold.
"""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import binomtest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_curve,
)
from sklearn.metrics import log_loss as sk_log_loss

ECE_BINS = 15
MAX_CURVE_POINTS = 200


def _check_inputs(y_true: ArrayLike, p_ai: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate once at the public boundary so the helpers can assume clean 1-D arrays."""
    y = np.asarray(y_true)
    p = np.asarray(p_ai, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError(f"y_true and p_ai must be 1-D of equal length, got {y.shape}, {p.shape}")
    if y.size == 0:
        raise ValueError("metrics need at least one sample")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must contain only 0 (real) and 1 (ai)")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError("p_ai must be probabilities in [0, 1]")
    return y.astype(np.int64), p


def _has_both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    """ROC AUC as the Mann-Whitney U statistic, with tied scores counted as half.

    Ours, not roc_auc_score, because the bootstrap calls it per resample: 1000 resamples of 70
    scores take 0.05 s here against 3.3 s with sklearn (about 70x; 30x at 1000 scores).
    """
    if not _has_both_classes(y):
        return None
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]  # mean 1-based rank of each tie group
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _calibration_bins(
    y: np.ndarray, p: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin sample count, summed confidence and number correct for the top-label prediction.

    Ours because sklearn's calibration_curve bins P(ai) rather than top-label confidence, and
    sklearn has no ECE.
    """
    pred = (p >= 0.5).astype(np.int64)
    confidence = np.where(pred == 1, p, 1 - p)
    correct = (pred == y).astype(np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    confidence_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    correct_sum = np.bincount(index, weights=correct, minlength=n_bins)
    return count, confidence_sum, correct_sum


def _thin(n: int, max_points: int) -> np.ndarray:
    """Evenly spaced indices (endpoints kept) so plot files stay small for large test sets."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def wilson_interval(successes: int, n: int, confidence_level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; sane near 0 and 1, unlike the normal one.

    With no trials nothing is known, so the interval is the whole of [0, 1] (scipy refuses n=0).
    """
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence_level, method="wilson")
    return float(ci.low), float(ci.high)


def roc_auc(y_true: ArrayLike, p_ai: ArrayLike) -> float | None:
    """Area under the ROC curve; None when only one class is present (it is undefined)."""
    return _auc(*_check_inputs(y_true, p_ai))


def log_loss(y_true: ArrayLike, p_ai: ArrayLike, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy in nats.

    Probabilities are clipped to [eps, 1 - eps] so a confident mistake costs a large but finite
    amount; 1e-7 matches the resolution of float32 softmax outputs near 1.
    """
    y, p = _check_inputs(y_true, p_ai)
    # Clipped here: sklearn dropped its eps argument (1.5) and clips at float64 resolution.
    return float(sk_log_loss(y, np.clip(p, eps, 1 - eps), labels=[0, 1]))


def expected_calibration_error(y_true: ArrayLike, p_ai: ArrayLike, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE (see module docstring): count-weighted mean |accuracy - confidence|."""
    y, p = _check_inputs(y_true, p_ai)
    _, confidence_sum, correct_sum = _calibration_bins(y, p, n_bins)
    return float(np.abs(correct_sum - confidence_sum).sum() / y.size)


def bootstrap_auc_ci(
    y_true: ArrayLike, p_ai: ArrayLike, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Percentile bootstrap interval for ROC AUC, deterministic for a given seed.

    Resamples that contain a single class have no AUC and are skipped; None if none is usable.
    """
    y, p = _check_inputs(y_true, p_ai)
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(n_boot):
        index = rng.integers(0, y.size, size=y.size)
        auc = _auc(y[index], p[index])
        if auc is not None:
            aucs.append(auc)
    if not aucs:
        return None
    alpha = (1 - level) / 2
    low, high = np.quantile(aucs, [alpha, 1 - alpha])
    return float(low), float(high)


def choose_threshold(y_true: ArrayLike, p_ai: ArrayLike, groups: ArrayLike | None = None) -> float:
    """Threshold on P(ai) maximising balanced accuracy, meant to be fitted on validation data.
    With groups (each picture's generator), the AI side is the mean of each group's detection
    rate, so that a small generator counts as much as a large one.

    Candidates are 0.5 and the midpoints between consecutive distinct scores, so the chosen cut
    sits in the middle of a gap rather than on a training score. Ties go to the candidate closest
    to 0.5, then to the lower one. With a single class there is nothing to balance: 0.5.
    """
    y, p = _check_inputs(y_true, p_ai)
    if not _has_both_classes(y):
        return 0.5
    scores = np.unique(p)
    candidates = np.unique(np.append((scores[:-1] + scores[1:]) / 2, 0.5))
    g = np.zeros(len(y)) if groups is None else np.asarray(groups)
    detected = [np.sort(p[(y == 1) & (g == k)]) for k in np.unique(g[y == 1])]
    tpr = np.mean([1 - np.searchsorted(q, candidates, side="left") / q.size for q in detected], 0)
    neg = np.sort(p[y == 0])
    tnr = np.searchsorted(neg, candidates, side="left") / neg.size  # share of real < t
    balanced = (tpr + tnr) / 2
    best = candidates[np.isclose(balanced, balanced.max(), rtol=0, atol=1e-12)]
    return float(best[np.argmin(np.abs(best - 0.5))])


def threshold_at_fpr(y_true: ArrayLike, p_ai: ArrayLike, target: float) -> float:
    """The lowest threshold on P(ai) that calls at most `target` of the real pictures AI (the
    most detections at that false-positive rate), meant to be fitted on validation data."""
    y, p = _check_inputs(y_true, p_ai)
    if not _has_both_classes(y):
        return 0.5
    fpr, _, thresholds = roc_curve(y, p, drop_intermediate=False)  # p >= threshold, as ours
    lowest = thresholds[fpr <= target][-1]
    if not np.isfinite(lowest):  # a real scores highest: only a cut above every score keeps it
        lowest = np.nextafter(p.max(), np.inf)
    return float(min(lowest, np.nextafter(1.0, 0.0)))  # a threshold is below 1 (model card)


def classification_report(
    y_true: ArrayLike,
    p_ai: ArrayLike,
    threshold: float,
    class_names: tuple[str, str] = ("real", "ai"),
) -> dict[str, Any]:
    """All headline metrics for one split at one decision threshold, as a JSON-ready dict.

    Threshold-free metrics (roc_auc, average_precision) are None when only one class is present;
    balanced_accuracy then averages the recall of the classes that are present, like sklearn.
    """
    y, p = _check_inputs(y_true, p_ai)
    pred = (p >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(c) for c in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=[0, 1], zero_division=0
    )
    per_class = {
        name: {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(support[k]),
        }
        for k, name in enumerate(class_names)
    }
    both = _has_both_classes(y)
    return {
        "n": int(y.size),
        "threshold": float(threshold),
        "accuracy": (tp + tn) / y.size,
        "accuracy_ci95": list(wilson_interval(tp + tn, y.size)),
        # balanced_accuracy_score's value, without its warnings when y has a single class.
        "balanced_accuracy": float(recall[support > 0].mean()),
        "roc_auc": _auc(y, p),
        "average_precision": float(average_precision_score(y, p)) if both else None,
        "loss": log_loss(y, p),  # cross-entropy, as the study reports
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
        "per_class": per_class,
    }


def roc_points(
    y_true: ArrayLike, p_ai: ArrayLike, max_points: int = MAX_CURVE_POINTS
) -> list[dict[str, float | None]]:
    """ROC curve for DVC plots; threshold is null at the (0, 0) start where nothing is ai.

    Empty when only one class is present, since one of the rates is then undefined.
    """
    y, p = _check_inputs(y_true, p_ai)
    if not _has_both_classes(y):
        return []
    fpr, tpr, thresholds = roc_curve(y, p)
    return [
        {
            "fpr": float(fpr[i]),
            "tpr": float(tpr[i]),
            "threshold": float(thresholds[i]) if np.isfinite(thresholds[i]) else None,
        }
        for i in _thin(fpr.size, max_points)
    ]


def pr_points(
    y_true: ArrayLike, p_ai: ArrayLike, max_points: int = MAX_CURVE_POINTS
) -> list[dict[str, float]]:
    """Precision-recall curve (ai positive) for DVC plots; empty when only one class is present."""
    y, p = _check_inputs(y_true, p_ai)
    if not _has_both_classes(y):
        return []
    precision, recall, _ = precision_recall_curve(y, p)
    return [
        {"recall": float(recall[i]), "precision": float(precision[i])}
        for i in _thin(recall.size, max_points)
    ]


def reliability_bins(
    y_true: ArrayLike, p_ai: ArrayLike, n_bins: int = ECE_BINS
) -> list[dict[str, float | int]]:
    """Reliability diagram data on the ECE bins: mean confidence vs accuracy, empty bins skipped."""
    y, p = _check_inputs(y_true, p_ai)
    count, confidence_sum, correct_sum = _calibration_bins(y, p, n_bins)
    return [
        {
            "confidence": float(confidence_sum[b] / count[b]),
            "accuracy": float(correct_sum[b] / count[b]),
            "count": int(count[b]),
        }
        for b in np.flatnonzero(count)
    ]
