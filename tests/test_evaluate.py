"""Evaluation: per-split metrics and per-source/brand accuracy from predictions, and the whole
evaluate() on a small trained model, its robustness conditions and their plot data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import Trained, make_artifact
from PIL import Image

import sneakers.evaluate
from sneakers import paths
from sneakers.data import SplitData
from sneakers.evaluate import (
    RESAMPLE_SCALES,
    accuracy_by,
    by_generator,
    counterfactual,
    cross_source,
    evaluate,
    heatmap_picks,
    history_sensitivity,
    predict_splits,
    robustness,
    split_metrics,
)
from sneakers.history import History, dominant_histories, resample, with_history
from sneakers.inference import Scorer
from sneakers.metrics import roc_auc
from sneakers.perturb import CONDITIONS
from sneakers.plots import write_robustness_data
from sneakers.probe import probe_bytes

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")

REPORT_KEYS = {
    "accuracy",
    "loss",
    "balanced_accuracy",
    "roc_auc",
    "average_precision",
    "accuracy_ci95",
    "roc_auc_ci95",
    "ece",
    "brier",
    "threshold",
    "per_class",
    "n",
    "confusion",
}


def predictions() -> pd.DataFrame:
    """4 val rows (all right) and 6 test rows (2 wrong), decided at threshold 0.5."""
    rows = [
        # split, label, p_ai, source, brand
        ("val", "ai", 0.9, "a", "nike"),
        ("val", "real", 0.2, "a", "nike"),
        ("val", "ai", 0.7, "b", None),
        ("val", "real", 0.4, "b", None),
        ("test", "ai", 0.8, "a", "nike"),  # right
        ("test", "ai", 0.3, "a", "adidas"),  # wrong
        ("test", "real", 0.1, "a", None),  # right
        ("test", "real", 0.6, "b", "nike"),  # wrong
        ("test", "real", 0.2, "b", "nike"),  # right
        ("test", "ai", 0.95, "b", None),  # right
    ]
    frame = pd.DataFrame(rows, columns=["split", "label", "p_ai", "source", "brand"])
    frame["id"] = [f"id{i}" for i in range(len(frame))]
    frame["path"] = frame["id"] + ".jpg"
    frame["predicted"] = np.where(frame["p_ai"] >= 0.5, "ai", "real")
    return frame


def test_split_metrics_per_split() -> None:
    out = split_metrics(predictions(), threshold=0.5, seed=0)
    assert list(out) == ["val", "test"]
    val, test = out["val"], out["test"]
    assert (val["n"], val["accuracy"], val["roc_auc"]) == (4, 1.0, 1.0)
    assert test["n"] == 6
    assert test["accuracy"] == pytest.approx(4 / 6)
    assert test["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    assert test["balanced_accuracy"] == pytest.approx(2 / 3)
    assert test["roc_auc"] == pytest.approx(8 / 9)  # 8 of 9 (ai, real) pairs ordered right
    assert test["per_class"]["ai"]["support"] == 3 and test["per_class"]["real"]["support"] == 3
    low, high = test["roc_auc_ci95"]
    assert 0 <= low <= test["roc_auc"] <= high <= 1
    assert set(test) >= REPORT_KEYS


def test_split_metrics_uses_the_given_threshold() -> None:
    """At 0.25 the ai image at 0.3 becomes right and the real one at 0.4 (val) wrong."""
    out = split_metrics(predictions(), threshold=0.25, seed=0)
    assert out["val"]["accuracy"] == pytest.approx(3 / 4)
    assert out["test"]["confusion"] == {"tn": 2, "fp": 1, "fn": 0, "tp": 3}
    assert out["test"]["threshold"] == 0.25


def test_accuracy_by_source_and_brand_uses_test_rows_only() -> None:
    frame = predictions()
    assert accuracy_by(frame, "source") == {
        "a": {"accuracy": pytest.approx(2 / 3), "n": 3},
        "b": {"accuracy": pytest.approx(2 / 3), "n": 3},
    }
    # Rows without a brand are left out, not counted under a "nan" brand.
    assert accuracy_by(frame, "brand") == {
        "adidas": {"accuracy": 0.0, "n": 1},
        "nike": {"accuracy": pytest.approx(2 / 3), "n": 3},
    }


HISTORIES = {"real": History("JPEG", 95, 40, 40), "ai": History("PNG", None, 64, 64)}


def test_evaluate_on_a_trained_model(trained: Trained) -> None:
    card = trained.artifact.card
    size = card.image_size
    scorer = Scorer(trained.network(), torch.device("cpu"), 64, "fp32")
    metrics, preds, explained = evaluate(scorer, card, trained.splits, 0, HISTORIES)
    for name in ("val", "test"):
        report = metrics[name]
        assert set(report) >= REPORT_KEYS, REPORT_KEYS - set(report)
        assert report["n"] == len(trained.splits[name])
        assert report["threshold"] == card.threshold
        assert 0 <= report["accuracy"] <= 1 and report["loss"] > 0
        assert set(report["per_class"]) == {"real", "ai"}
        assert len(report["accuracy_ci95"]) == 2 and len(report["roc_auc_ci95"]) == 2
    assert metrics["test"]["accuracy"] >= 0.9  # the synthetic task is easy
    assert set(metrics["by_source"]) == {"gen-a", "gen-b"}
    assert set(metrics["by_brand"]) == {"nike"}

    assert list(preds["split"].unique()) == ["val", "test"]
    test = preds[preds["split"] == "test"]
    assert list(test["id"]) == list(trained.splits["test"].rows["id"])
    expected = np.where(test["p_ai"] >= card.threshold, "ai", "real")
    assert list(test["predicted"]) == list(expected)
    accuracy = float((test["label"] == test["predicted"]).mean())
    assert metrics["test"]["accuracy"] == pytest.approx(accuracy)

    robustness = metrics["robustness"]
    assert list(robustness) == [*CONDITIONS, "resample_0.8x", "resample_1.07x", "resample_1.25x"]
    assert robustness["clean"]["accuracy"] == pytest.approx(accuracy)
    assert all(0 <= r["accuracy"] <= 1 for r in robustness.values())
    y = trained.splits["test"].labels.numpy()
    for r in robustness.values():  # the per-class accuracies weigh up to the overall one
        per_class = r["per_class_accuracy"]
        overall = per_class["real"] * np.mean(y == 0) + per_class["ai"] * np.mean(y == 1)
        assert r["accuracy"] == pytest.approx(overall)
    history = metrics["history"]
    assert history["real_history"]["history"] == "JPEG q95 40x40"
    assert history["ai_history"]["history"] == "PNG 64x64"
    for owner in ("real_history", "ai_history"):
        for name in ("real", "ai"):
            assert 0 <= history[owner][name]["accuracy"] <= 1
            assert 0 <= history[owner][name]["mean_p_ai"] <= 1
    shift = history["shift_mean_p_ai"]
    assert shift["ai"] == pytest.approx(
        history["ai_history"]["ai"]["mean_p_ai"] - history["real_history"]["ai"]["mean_p_ai"]
    )
    assert list(dict.fromkeys(explained.rows["group"])) == ["test real", "test ai"]  # no eval
    assert explained.images.shape == (12, size, size, 3) and explained.heat.shape == (
        12,
        size,
        size,
    )
    position = {image_id: i for i, image_id in enumerate(trained.splits["test"].rows["id"])}
    first = trained.splits["test"].images[position[explained.rows["id"][0]]]
    assert (explained.images[0] == first.permute(1, 2, 0).numpy()).all()
    assert metrics["run"]["heatmap_seconds"] >= 0


@pytest.fixture(scope="module")
def robust(trained: Trained) -> dict[str, dict[str, Any]]:
    """robustness() of the shared trained model under the real conditions."""
    card = trained.artifact.card
    return robustness(Scorer(trained.network(), CPU, 64, "fp32"), card, trained.splits["test"])


def test_robustness_scores_every_condition(trained: Trained, robust: dict[str, Any]) -> None:
    resampled = [f"resample_{scale}x" for scale in RESAMPLE_SCALES]
    assert list(robust) == [*CONDITIONS, *resampled]
    y = trained.splits["test"].labels.numpy()
    counts = {"real": int((y == 0).sum()), "ai": int((y == 1).sum())}
    for name, r in robust.items():
        assert set(r) == {"accuracy", "roc_auc", "per_class_accuracy"}, name
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["roc_auc"] <= 1, name
        per_class = r["per_class_accuracy"]
        assert set(per_class) == {"real", "ai"} and all(0 <= a <= 1 for a in per_class.values())
        weighted = sum(per_class[c] * counts[c] for c in counts) / y.size
        assert r["accuracy"] == pytest.approx(weighted, abs=1e-12), name
        # a share of the test pictures: neither rounded nor smoothed
        assert r["accuracy"] * y.size == pytest.approx(round(r["accuracy"] * y.size)), name
    json.dumps(robust)


def test_robustness_clean_is_the_test_score(trained: Trained, robust: dict[str, Any]) -> None:
    """The unperturbed condition is evaluate's own test accuracy and ROC AUC, same model."""
    card = trained.artifact.card
    scored = predict_splits(Scorer(trained.network(), CPU, 64, "fp32"), card, trained.splits)
    test = split_metrics(scored, card.threshold, seed=0)["test"]
    assert robust["clean"]["accuracy"] == test["accuracy"]
    assert robust["clean"]["roc_auc"] == pytest.approx(test["roc_auc"], abs=1e-12)
    assert robust["clean"]["per_class_accuracy"] == {
        name: pytest.approx(test["per_class"][name]["recall"], abs=1e-12) for name in ("real", "ai")
    }


def test_robustness_sees_what_a_perturbation_does(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grey pictures all score alike, so one class is always wrong and the AUC is a coin
    toss; an identity perturbation (PIL round trip) changes nothing; the split is untouched."""
    grey = {
        "clean": None,
        "same": lambda im: im.copy(),
        "grey": lambda im: Image.new("RGB", im.size, (128, 128, 128)),
    }
    monkeypatch.setattr(sneakers.evaluate, "CONDITIONS", grey)
    monkeypatch.setattr(sneakers.evaluate, "RESAMPLE_SCALES", ())
    test = trained.splits["test"]
    before = test.images.clone()
    out = robustness(Scorer(trained.network(), CPU, 64, "fp32"), trained.artifact.card, test)
    assert list(out) == ["clean", "same", "grey"]
    assert out["same"] == out["clean"]
    assert out["clean"]["accuracy"] >= 0.9  # the synthetic task is easy
    y = test.labels.numpy()
    assert sorted(out["grey"]["per_class_accuracy"].values()) == [0.0, 1.0]
    assert out["grey"]["accuracy"] in (np.mean(y == 0), np.mean(y == 1))
    assert out["grey"]["roc_auc"] == 0.5
    assert torch.equal(test.images, before)


def test_robustness_plot_data_is_what_dvc_plots_read(
    robust: dict[str, Any], tmp_path: Path
) -> None:
    """One row per condition, in order, with exactly the x and y fields of the dvc.yaml plot,
    written by the evaluate stage to the file that plot reads."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    spec = next(p["Robustness (test accuracy)"] for p in plots if "Robustness (test accuracy)" in p)
    ((file, y_field),) = spec["y"].items()
    assert (spec["template"], spec["x"], y_field) == ("bar_horizontal", "accuracy", "condition")
    assert file == "metrics/plots/robustness.json"  # under the evaluate stage's metrics/plots out
    assert Path(file) == paths.PLOTS / "robustness.json"
    assert 'PLOTS / "robustness.json"' in (ROOT / "stages" / "evaluate.py").read_text()

    write_robustness_data(robust, tmp_path / file)
    rows = json.loads((tmp_path / file).read_text())
    assert rows == [{y_field: name, spec["x"]: r["accuracy"]} for name, r in robust.items()]
    assert all(set(row) == {spec["x"], y_field} for row in rows)


def test_cross_source_scores_each_eval_source_on_its_own(trained: Trained) -> None:
    """The test pictures posed as three eval sources: real only, AI only, and both."""
    test = trained.splits["test"]
    y = test.labels.numpy()
    sources = np.where(np.arange(len(y)) % 3 == 0, "mixed", np.where(y == 0, "shop", "gen"))
    held = SplitData(test.images, test.labels, test.rows.assign(source=sources))
    scorer = Scorer(trained.network(), torch.device("cpu"), 64, "fp32")
    scored = predict_splits(scorer, trained.artifact.card, {**trained.splits, "eval": held})
    assert list(scored["split"].unique()) == ["val", "test", "eval"]
    cross = cross_source(scored)
    p_ai = scorer.proba(test.images)
    called = p_ai >= trained.artifact.card.threshold
    assert set(cross) == {"gen", "mixed", "shop"}
    shop, gen, mixed = (sources == "shop"), (sources == "gen"), (sources == "mixed")
    assert cross["shop"]["n"] == shop.sum()
    assert cross["shop"]["false_positive_rate"] == pytest.approx(called[shop].mean())
    assert cross["shop"]["accuracy"] == pytest.approx(1 - called[shop].mean())
    assert "detection_rate" not in cross["shop"] and "roc_auc" not in cross["shop"]
    assert cross["gen"]["detection_rate"] == pytest.approx(called[gen].mean())
    assert cross["gen"]["mean_p_ai"] == pytest.approx(p_ai[gen].mean(), abs=1e-6)
    assert cross["mixed"]["roc_auc"] == pytest.approx(roc_auc(y[mixed], p_ai[mixed]))
    both = shop | gen
    assert cross["shop"]["roc_auc_vs"] == {"gen": pytest.approx(roc_auc(y[both], p_ai[both]))}
    assert cross_source(scored[scored["split"] != "eval"]) == {}
    assert set(split_metrics(scored, trained.artifact.card.threshold, 0)) == {"val", "test"}


def test_by_generator_scores_each_generator_against_each_real_source() -> None:
    frame = pd.DataFrame(
        [
            ("test", "real", "shop", None, 0.1),
            ("test", "real", "shop", None, 0.6),
            ("test", "ai", "mj", "midjourney", 0.9),
            ("test", "ai", "mj", "midjourney", 0.7),
            ("eval", "real", "other-shop", None, 0.2),
            ("eval", "real", "other-shop", None, 0.3),
            ("eval", "ai", "gan", "stylegan2", 0.4),
            ("eval", "ai", "gan", "stylegan2", 0.25),
            ("val", "ai", "mj", "midjourney", 0.01),  # never scored here
        ],
        columns=["split", "label", "source", "generator", "p_ai"],
    )
    frame["predicted"] = np.where(frame["p_ai"] >= 0.5, "ai", "real")
    out = by_generator(frame, ["midjourney"])
    assert list(out) == ["midjourney", "stylegan2"]
    assert out["midjourney"] == {
        "n": 2,
        "in": "test",
        "seen": True,
        "detection_rate": 1.0,
        "roc_auc_vs": {"test": 1.0, "other-shop": 1.0},
    }
    gan = out["stylegan2"]
    assert (gan["n"], gan["in"], gan["seen"], gan["detection_rate"]) == (2, "eval", False, 0.0)
    assert gan["roc_auc_vs"] == {"test": 0.5, "other-shop": 0.75}


def assert_nested_close(got: object, expected: object, where: str = "") -> None:
    """Equal structure and text, numbers equal up to float rounding."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), where
        for key, value in expected.items():
            assert_nested_close(got[key], value, f"{where}.{key}")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, abs=1e-6), where
    else:
        assert got == expected, where


def test_the_batch_size_only_sets_how_many_pictures_go_per_pass(trained: Trained) -> None:
    card, test = trained.artifact.card, trained.splits["test"]
    by = {n: Scorer(trained.network(), torch.device("cpu"), n, "fp32") for n in (1, 5, 64)}
    assert_nested_close(robustness(by[5], card, test), robustness(by[64], card, test))
    assert_nested_close(
        history_sensitivity(by[5], card, test, HISTORIES),
        history_sensitivity(by[64], card, test, HISTORIES),
    )
    one = predict_splits(by[1], card, trained.splits)
    many = predict_splits(by[64], card, trained.splits)
    np.testing.assert_allclose(one["p_ai"], many["p_ai"], atol=1e-6)
    assert list(one["predicted"]) == list(many["predicted"])


def test_counterfactual_pictures_carry_the_intended_history() -> None:
    """The builder's raw files are what the history says (read back with the manifest's
    probe), and the standardized result has the model's size whatever the history's size."""
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    resampled = resample(image, 1.07)
    assert resampled.size == (43, 43)
    for history in (History("JPEG", 95, 48, 48), History("JPEG", 90, 240, 240), None):
        facts = probe_bytes(with_history(resampled, history), min_size=1, max_pixels=2**40)
        if history is None:
            assert (facts["format"], facts["width"]) == ("PNG", 43)
        else:
            assert (facts["format"], facts["jpeg_quality"]) == ("JPEG", history.quality)
            assert (facts["width"], facts["height"]) == (history.width, history.height)
    split = SplitData(
        torch.from_numpy(image).permute(2, 0, 1)[None].contiguous(),
        torch.tensor([1]),
        pd.DataFrame({"id": ["x"]}),
    )
    card = make_artifact("seed_cnn", 40).card
    out = counterfactual(split, card.preprocess, 1.25, HISTORIES["real"])
    assert out.shape == (1, 3, 40, 40) and out.dtype == torch.uint8


def test_dominant_histories_take_the_most_common_raw_encoding() -> None:
    manifest = pd.DataFrame(
        {
            "status": ["accepted"] * 5 + ["duplicate"] * 3 + ["accepted"] * 3,
            "role": ["train"] * 8 + ["eval"] * 3,
            "label": ["real", "real", "real", "ai", "ai", "ai", "ai", "ai", "real", "real", "real"],
            "format": ["JPEG"] * 2 + ["PNG"] * 3 + ["JPEG"] * 3 + ["PNG"] * 3,
            "jpeg_quality": [95, 95, None, None, None, 90, 90, 90, None, None, None],
            "width": [240, 240, 100, 1024, 1024, 240, 240, 240, 512, 512, 512],
            "height": [240, 240, 100, 1024, 1024, 240, 240, 240, 512, 512, 512],
        }
    )
    histories = dominant_histories(manifest)  # duplicates and eval sources never count
    assert histories == {
        "real": History("JPEG", 95, 240, 240),
        "ai": History("PNG", None, 1024, 1024),
    }


def test_heatmap_picks_put_the_most_confident_mistakes_first() -> None:
    frame = predictions()
    held = frame[frame["split"] == "test"].assign(
        split="eval", source="shop", id=lambda f: "e" + f["id"]
    )
    both = pd.concat([frame, held], ignore_index=True)
    picks = heatmap_picks(both, seed=3, per_group=2)
    assert list(dict.fromkeys(picks["group"])) == [
        "test real",
        "test ai",
        "held-out real",
        "held-out ai",
    ]
    real = picks[picks["group"] == "test real"]
    assert list(real["p_ai"]) == [0.6, 0.1] or list(real["p_ai"]) == [0.6, 0.2]  # wrong one first
    ai = picks[picks["group"] == "test ai"]
    assert ai["p_ai"].iloc[0] == 0.3 and ai["predicted"].iloc[1] == "ai"
    assert (picks[picks["group"] == "held-out real"]["id"].str.startswith("e")).all()
    assert heatmap_picks(both, seed=3, per_group=2).equals(picks)  # seeded
    many = heatmap_picks(both, seed=3, per_group=6)
    assert (many["group"] == "test real").sum() == 3  # all there are: 1 wrong, 2 right


def test_heatmap_picks_take_turns_between_sources_among_mistakes() -> None:
    rows = [
        ("eval", "ai", p, source, None)
        for source, p in [
            ("gan", 0.0),
            ("gan", 0.01),
            ("gan", 0.02),
            ("dc", 0.3),
            ("dc", 0.1),
            ("gan", 0.9),
        ]
    ]
    frame = pd.DataFrame(rows, columns=["split", "label", "p_ai", "source", "brand"])
    frame = frame.assign(
        id=[f"i{i}" for i in range(6)], predicted=np.where(frame["p_ai"] >= 0.5, "ai", "real")
    )
    picks = heatmap_picks(frame, seed=0, per_group=4)
    shown = list(zip(picks["source"], picks["p_ai"], strict=True))
    assert shown == [("gan", 0.0), ("dc", 0.1), ("gan", 0.01), ("gan", 0.9)]  # 3 wrong, 1 right
