"""Metrics agree with scikit-learn, handle degenerate input, and are JSON-ready."""

import json
import warnings
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from sneakers import metrics


def _scored_data(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Informative but imperfect scores, rounded so that tied scores occur."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    p = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(0, 0.25, size=n), 0, 1).round(2)
    return y, p


def assert_plain_json(value: Any, path: str = "report") -> None:
    """Only Python's own types, never numpy scalars (np.int64 is not JSON serialisable)."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, path
            assert_plain_json(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            assert_plain_json(item, f"{path}[{i}]")
    else:
        assert value is None or type(value) in (int, float), (path, type(value))


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_classification_report_matches_sklearn(threshold: float) -> None:
    y, p = _scored_data()
    pred = (p >= threshold).astype(int)
    report = metrics.classification_report(y, p, threshold)

    assert report["n"] == y.size
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert report["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, pred, labels=[0, 1])
    for i, name in enumerate(["real", "ai"]):
        stats = report["per_class"][name]
        assert stats["precision"] == pytest.approx(precision[i])
        assert stats["recall"] == pytest.approx(recall[i])
        assert stats["f1"] == pytest.approx(f1[i])
        assert stats["support"] == support[i]
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert report["confusion"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    assert report["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert report["average_precision"] == pytest.approx(skm.average_precision_score(y, p))
    assert report["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert report["loss"] == pytest.approx(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))
    low, high = report["accuracy_ci95"]
    assert low < report["accuracy"] < high
    assert_plain_json(report)


def test_roc_auc_matches_sklearn_with_ties() -> None:
    y, p = _scored_data(n=300, seed=3)
    assert metrics.roc_auc(y, p) == pytest.approx(skm.roc_auc_score(y, p))
    assert metrics.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_log_loss_clips_confident_mistakes() -> None:
    assert metrics.log_loss([1, 0], [0.0, 1.0]) == pytest.approx(-np.log(1e-7))
    y, p = _scored_data(seed=1)
    p = np.clip(p, 0.01, 0.99)
    assert metrics.log_loss(y, p) == pytest.approx(skm.log_loss(y, p))


def test_log_loss_at_exact_zero_and_one() -> None:
    """Right and certain costs the clipped 1e-7, not 0 (or a nan from 0 * log 0)."""
    assert metrics.log_loss([1, 0], [1.0, 0.0]) == pytest.approx(-np.log1p(-1e-7), rel=1e-9)
    assert metrics.log_loss([1, 0, 1], [1.0, 1.0, 0.0]) == pytest.approx(
        -(np.log1p(-1e-7) + 2 * np.log(1e-7)) / 3
    )
    assert metrics.log_loss([1], [0.0], eps=1e-3) == pytest.approx(-np.log(1e-3))


def test_log_loss_with_one_class() -> None:
    """A batch of one class (a validation split of fakes only) is still a loss."""
    assert metrics.log_loss([1, 1], [0.5, 0.8]) == pytest.approx(-(np.log(0.5) + np.log(0.8)) / 2)
    assert metrics.log_loss([0, 0], [0.5, 0.8]) == pytest.approx(-(np.log(0.5) + np.log(0.2)) / 2)
    assert metrics.log_loss([0], [0.0]) == pytest.approx(1e-7, rel=1e-6)


def test_wilson_interval_known_value() -> None:
    low, high = metrics.wilson_interval(95, 100)
    assert low == pytest.approx(0.8883, abs=1e-4)
    assert high == pytest.approx(0.9785, abs=1e-4)
    assert metrics.wilson_interval(0, 10)[0] == 0.0
    assert metrics.wilson_interval(10, 10)[1] == 1.0
    assert metrics.wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_by_hand() -> None:
    """8 of 10: (phat + z^2/2n -+ z sqrt(phat(1 - phat)/n + z^2/4n^2)) / (1 + z^2/n)."""
    z, n, phat = NormalDist().inv_cdf(0.975), 10, 0.8
    center = (phat + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    low, high = metrics.wilson_interval(8, 10)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert low == pytest.approx(center - half, abs=1e-12)
    assert high == pytest.approx(center + half, abs=1e-12)
    assert type(low) is float and type(high) is float
    wide = metrics.wilson_interval(8, 10, confidence_level=0.99)
    assert wide[0] < low and high < wide[1]


def test_ece_by_hand() -> None:
    # Confidences 0.9 (bin 14) x3 with 2 correct, 0.6 (bin 9) x2 with 1 correct.
    y = [1, 1, 0, 0, 1]
    p = [0.9, 0.9, 0.9, 0.4, 0.4]
    expected = (3 * abs(2 / 3 - 0.9) + 2 * abs(1 / 2 - 0.6)) / 5
    assert metrics.expected_calibration_error(y, p) == pytest.approx(expected)
    assert metrics.reliability_bins(y, p) == [
        {"confidence": pytest.approx(0.6), "accuracy": 0.5, "count": 2},
        {"confidence": pytest.approx(0.9), "accuracy": pytest.approx(2 / 3), "count": 3},
    ]


def test_perfectly_calibrated_bins_have_zero_ece() -> None:
    y = np.array([1] * 8 + [0] * 2)  # confidence 0.8 on ai, right 8 times out of 10
    assert metrics.expected_calibration_error(y, np.full(10, 0.8)) == pytest.approx(0.0)


def test_bootstrap_auc_ci_is_deterministic_and_brackets_auc() -> None:
    y, p = _scored_data(n=200)
    ci = metrics.bootstrap_auc_ci(y, p, n_boot=200, seed=7)
    assert ci == metrics.bootstrap_auc_ci(y, p, n_boot=200, seed=7)
    assert ci != metrics.bootstrap_auc_ci(y, p, n_boot=200, seed=8)
    low, high = ci
    assert low < skm.roc_auc_score(y, p) < high


def test_bootstrap_auc_ci_skips_single_class_resamples() -> None:
    assert metrics.bootstrap_auc_ci([0, 1], [0.2, 0.8], n_boot=50) == (1.0, 1.0)
    assert metrics.bootstrap_auc_ci([1, 1, 1], [0.2, 0.5, 0.8], n_boot=20) is None


def test_choose_threshold_with_groups_counts_each_generator_alike() -> None:
    """Nine easy MidJourney pictures and one hard DALL-E 2 one: pooled, missing the hard one
    costs a tenth of the AI side; per generator, half of it, so the cut moves below it
    (and one real picture goes over)."""
    y = [0, 0, 0, 0] + [1] * 10
    p = [0.1, 0.2, 0.3, 0.45] + [0.9] * 9 + [0.4]
    groups = [""] * 4 + ["midjourney"] * 9 + ["dalle2"]
    assert metrics.choose_threshold(y, p) == 0.5  # above the hard one: 0.95 balanced
    assert metrics.choose_threshold(y, p, groups) == pytest.approx(0.35)
    assert metrics.choose_threshold(y, p, [""] * 4 + ["one"] * 10) == metrics.choose_threshold(y, p)


def test_choose_threshold_by_hand() -> None:
    # Only the cut between 0.3 and 0.4 separates the classes.
    assert metrics.choose_threshold([0, 0, 1, 1], [0.1, 0.3, 0.4, 0.9]) == pytest.approx(0.35)
    # Any cut in (0.2, 0.7] is perfect: prefer the default 0.5.
    assert metrics.choose_threshold([0, 0, 1, 1], [0.1, 0.2, 0.7, 0.9]) == 0.5
    # Cuts at 0.25 and 0.65 tie at 5/6 balanced accuracy (0.5 gets 3/4); 0.65 is nearer 0.5.
    y, p = [0, 0, 1, 0, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.9]
    assert metrics.choose_threshold(y, p) == pytest.approx(0.65)
    assert metrics.choose_threshold([1, 1], [0.2, 0.9]) == 0.5


def test_single_class_does_not_crash() -> None:
    y = np.ones(5, dtype=int)
    p = np.array([0.1, 0.6, 0.7, 0.8, 0.9])
    report = metrics.classification_report(y, p, 0.5)
    assert report["roc_auc"] is None
    assert report["average_precision"] is None
    assert report["accuracy"] == pytest.approx(0.8)
    assert report["balanced_accuracy"] == pytest.approx(0.8)
    assert report["per_class"]["real"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert metrics.roc_points(y, p) == []
    assert metrics.pr_points(y, p) == []
    assert_plain_json(report)
    json.dumps(report)


def test_real_only_report_counts_and_balances_what_is_there() -> None:
    """Four reals, one called AI: the ai class has no support, so balanced accuracy is the
    real recall alone, and the library's warnings about the missing class stay out."""
    y, p = [0, 0, 0, 0], [0.1, 0.2, 0.3, 0.9]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = metrics.classification_report(y, p, 0.5)
    assert report["confusion"] == {"tn": 3, "fp": 1, "fn": 0, "tp": 0}
    assert report["accuracy"] == report["balanced_accuracy"] == pytest.approx(0.75)
    assert report["per_class"]["real"] == {
        "precision": 1.0,
        "recall": 0.75,
        "f1": pytest.approx(6 / 7),
        "support": 4,
    }
    assert report["per_class"]["ai"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["brier"] == pytest.approx((0.01 + 0.04 + 0.09 + 0.81) / 4)
    assert report["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.7, 0.1])))
    assert report["roc_auc"] is None and report["average_precision"] is None
    assert_plain_json(report)


def test_all_correct_report() -> None:
    y, p = [0, 1, 0, 1], [0.0, 1.0, 0.2, 0.7]
    report = metrics.classification_report(y, p, 0.5)
    assert report["accuracy"] == report["balanced_accuracy"] == report["roc_auc"] == 1.0
    assert report["confusion"] == {"tn": 2, "fp": 0, "fn": 0, "tp": 2}
    for stats in report["per_class"].values():
        assert (stats["precision"], stats["recall"], stats["f1"], stats["support"]) == (1, 1, 1, 2)
    assert report["brier"] == pytest.approx((0.04 + 0.09) / 4)
    assert report["accuracy_ci95"] == [pytest.approx(0.5101, abs=1e-4), 1.0]  # Wilson 4 of 4


def test_curve_points_are_small_json_and_match_sklearn_ends() -> None:
    y, p = _scored_data(n=2000, seed=2)
    p = p + np.random.default_rng(0).uniform(0, 1e-3, size=p.size)  # many distinct scores
    p = np.clip(p, 0, 1)
    roc = metrics.roc_points(y, p, max_points=50)
    pr = metrics.pr_points(y, p, max_points=50)
    assert 2 <= len(roc) <= 50
    assert 2 <= len(pr) <= 50
    assert roc[0] == {"fpr": 0.0, "tpr": 0.0, "threshold": None}
    assert (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    assert pr[-1] == {"recall": 0.0, "precision": 1.0}
    area = np.trapezoid([r["tpr"] for r in roc], [r["fpr"] for r in roc])
    assert area == pytest.approx(skm.roc_auc_score(y, p), abs=0.01)
    json.dumps({"roc": roc, "pr": pr, "calibration": metrics.reliability_bins(y, p)})


def test_rejects_malformed_input() -> None:
    with pytest.raises(ValueError, match="equal length"):
        metrics.log_loss([0, 1], [0.5])
    with pytest.raises(ValueError, match="only 0"):
        metrics.log_loss([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="probabilities"):
        metrics.log_loss([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="at least one"):
        metrics.log_loss([], [])


def test_threshold_at_fpr_by_hand() -> None:
    """Ten reals and four AI: a 10% target allows one real at or above the threshold."""
    y = [0] * 10 + [1] * 4
    p = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.5, 0.95, 0.3, 0.6, 0.9, 0.97]
    t = metrics.threshold_at_fpr(y, p, 0.1)
    assert t == pytest.approx(0.6)  # below it the 0.5 real is called AI too: 20%
    called = np.asarray(p) >= t
    assert called[:10].mean() == 0.1 and called[10:].sum() == 3
    assert metrics.threshold_at_fpr(y, p, 0.2) == pytest.approx(0.3)
    assert metrics.threshold_at_fpr(y, p, 0.0) == pytest.approx(0.97)  # no real called AI
    assert metrics.threshold_at_fpr([1, 1], [0.2, 0.9], 0.05) == 0.5


@pytest.mark.parametrize("top", [0.8, 1.0])
def test_threshold_at_fpr_above_a_real_that_outscores_every_ai_picture(top: float) -> None:
    """No cut at a score keeps every real below it: the cut goes just above the highest
    score, and stays below 1, which a model card requires (a real at 1.0 is then called AI)."""
    t = metrics.threshold_at_fpr([0, 0, 1], [0.1, top, 0.7], 0.0)
    assert 0 < t < 1
    assert (t > top) == (top < 1) and t == pytest.approx(top)
