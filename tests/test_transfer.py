"""Leave-one-generator-out (sneakers.transfer) on synthetic features: no trunk needed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from sneakers import features, transfer
from sneakers.data import SplitData
from sneakers.params import TrainSettings
from sneakers.transfer import REAL, leave_one_out, plan

FEATURES = 6
GENERATORS = ("dalle2", "midjourney", "pix2pix")


class Head(nn.Module):
    """What leave_one_out asks of a backbone: net._fc, written by fit_head, and head()."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Module()
        self.net._fc = nn.Linear(FEATURES, 2)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.net._fc(x)


Features = dict[str, torch.Tensor]


def synthetic(seed: int = 0, views: int = 1) -> tuple[dict[str, SplitData], Features]:
    """Reals around 0, each generator's pictures shifted along its own feature; every split
    holds every generator, and eval holds a real shop and an unseen generator."""
    rng = np.random.default_rng(seed)
    splits, embedded = {}, {}
    for name, n in (("train", 40), ("val", 20), ("test", 20), ("eval", 20)):
        rows, feats = [], []
        kinds = [("real", "", "shop")] + [("ai", g, g) for g in GENERATORS]
        if name == "eval":
            kinds = [("real", "", "other-shop"), ("ai", "unseen", "unseen-gan")]
        for k, (label, generator, source) in enumerate(kinds):
            x = rng.normal(size=(n, FEATURES))
            if label == "ai":
                x[:, k % FEATURES] += 5.0
            feats.append(x)
            rows += [{"label": label, "generator": generator or np.nan, "source": source}] * n
        frame = pd.DataFrame(rows)
        labels = torch.tensor((frame["label"] == "ai").to_numpy(), dtype=torch.long)
        images = torch.zeros((len(frame), 3, 1, 1), dtype=torch.uint8)
        splits[name] = SplitData(images, labels, frame)
        embedded[name] = torch.tensor(np.concatenate(feats), dtype=torch.float32)
    train = embedded["train"]
    embedded["views"] = torch.cat([train + 0.1 * (v + 1) for v in range(views)])
    return splits, embedded


def test_plan_has_all_then_without_and_only_each() -> None:
    assert plan(["a"]) == {"all": ["a"]}
    assert plan(["a", "b"]) == {
        "all": ["a", "b"],
        "without a": ["b"],
        "without b": ["a"],
        "only a": ["a"],
        "only b": ["b"],
    }


def test_a_left_out_generator_is_never_trained_or_tuned_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checked on the fits' inputs: no feature row of the left-out generator's pictures (or of
    their views) reaches fit_head, and no val picture of it reaches the threshold."""
    splits, embedded = synthetic()
    fitted, tuned = [], []
    real_fit, real_pick = features.fit_head, transfer.pick_threshold

    def spy_fit(model, x, *args, **kwargs):
        fitted.append(x.clone())
        return real_fit(model, x, *args, **kwargs)

    def spy_pick(settings, rows, p):
        tuned.append(rows.copy())
        return real_pick(settings, rows, p)

    monkeypatch.setattr(features, "fit_head", spy_fit)
    monkeypatch.setattr(transfer, "pick_threshold", spy_pick)
    result = leave_one_out(Head(), splits, embedded, list(GENERATORS), TrainSettings(), 0)
    names = list(plan(list(GENERATORS)))
    assert len(fitted) == len(tuned) == len(names) == result["fits"] == 7
    train_rows = splits["train"].rows
    views = embedded["views"]
    for name, x, val in zip(names, fitted, tuned, strict=True):
        trained_on = plan(list(GENERATORS))[name]
        for g in GENERATORS:
            mine = (train_rows["generator"] == g).to_numpy()
            rows = torch.cat([embedded["train"][mine], views[mine]])
            present = (x[:, None, :] == rows[None]).all(-1).any(0)
            assert bool(present.all()) == (g in trained_on), (name, g)
            assert not present.any() or g in trained_on
            assert (g in set(val["generator"])) == (g in trained_on), (name, g)
        reals = (train_rows["label"] == "real").to_numpy()
        learned = reals.sum() + train_rows["generator"].isin(trained_on).sum()
        assert len(x) == 2 * learned  # the pictures and their views


def test_leave_one_out_scores_the_left_out_generator_on_all_its_pictures() -> None:
    splits, embedded = synthetic()
    result = leave_one_out(Head(), splits, embedded, list(GENERATORS), TrainSettings(), 0)
    for g in GENERATORS:
        assert result["leave_one_out"][g]["n"] == 40 + 20 + 20  # train, val and test
        assert result["matrix"][f"without {g}"][g] == result["leave_one_out"][g]["detection_rate"]
    # a trained generator is scored on its test pictures only; the unseen one on eval
    assert result["n"]["midjourney"] == 20 and result["n"]["unseen"] == 20
    columns = {*GENERATORS, "unseen", REAL + "test", REAL + "other-shop"}
    assert set(result["matrix"]["all"]) == columns
    # each generator has its own direction: without it, it is barely detected; with it, it is
    assert result["matrix"]["all"]["dalle2"] > 0.8
    assert result["leave_one_out"]["dalle2"]["detection_rate"] < 0.5
    assert result["matrix"]["only dalle2"]["dalle2"] > 0.8


def test_the_matrix_is_deterministic_for_a_seed() -> None:
    splits, embedded = synthetic(seed=3)
    settings = TrainSettings(balance="generator", threshold="val_generator")
    first = leave_one_out(Head(), splits, embedded, list(GENERATORS), settings, 7)
    second = leave_one_out(Head(), splits, embedded, list(GENERATORS), settings, 7)
    for key in ("matrix", "roc_auc", "leave_one_out", "n"):
        assert first[key] == second[key]
