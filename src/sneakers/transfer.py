"""Leave-one-generator-out: what a recipe does on a generator nobody trained it on.

Every fit is the train stage's head recipe (same features, views, weights and threshold rule)
on a set of training generators: all of them (the train stage's model), all but one (the
honest estimate for an unseen generator) and one alone (the matrix's rows). Each reads the
features stage's cache, so a fit costs one logistic regression; there are 2G + 1 fits for G
generators, so the cost grows linearly with G.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from tqdm import tqdm

from sneakers.data import CLASS_NAMES, SplitData
from sneakers.features import fit_head_on
from sneakers.metrics import roc_auc
from sneakers.model import EfficientNetLite
from sneakers.params import TrainSettings
from sneakers.split import EVAL
from sneakers.train import pick_threshold

REAL = "real: "  # column prefix of a real source's false-positive rate in the matrix


def plan(generators: list[str]) -> dict[str, list[str]]:
    """The fits by name: all, then without each and only each (where there are two or more)."""
    fits = {"all": list(generators)}
    if len(generators) > 1:
        fits |= {f"without {g}": [o for o in generators if o != g] for g in generators}
        fits |= {f"only {g}": [g] for g in generators}
    return fits


def pictures(splits: dict[str, SplitData]) -> pd.DataFrame:
    """One row per picture of every split (train with its simulated fakes, val, test, eval):
    split, label, generator, the real source, and its row in `features`."""
    frames = [
        data.rows[["label", "source", "generator"]].assign(split=name)
        for name, data in splits.items()
    ]
    table = pd.concat(frames, ignore_index=True)
    table["generator"] = table["generator"].fillna("")
    table["ai"] = table["label"] == CLASS_NAMES[1]
    return table


def fit_and_score(
    model: EfficientNetLite,
    table: pd.DataFrame,
    features: Tensor,
    views: Tensor | None,
    trained_on: list[str],
    settings: TrainSettings,
    seed: int,
) -> dict[str, dict[str, float | int | None]]:
    """Fit the head on train's reals and the AI pictures of trained_on (and their views), fix
    the threshold on val alike, then score every generator on the pictures this fit never
    learned from or tuned on: test pictures for a trained generator, all of them for another;
    and each real source's test or held-out pictures."""
    learned = (~table["ai"] | table["generator"].isin(trained_on)).to_numpy()
    in_train = (table["split"] == "train").to_numpy()
    fit_head_on(
        model,
        features[torch.from_numpy(in_train)],
        views,
        table[in_train],
        learned[in_train],
        settings.head_c,
        settings.balance,
        seed,
    )
    with torch.no_grad():
        p_ai = torch.softmax(model.head(features).float(), 1)[:, 1].numpy()
    val = (table["split"] == "val").to_numpy() & learned
    threshold = pick_threshold(settings, table[val], p_ai[val])
    called = p_ai >= threshold
    real_test = (~table["ai"] & (table["split"] == "test")).to_numpy()
    out: dict[str, dict[str, float | int | None]] = {}
    for name in sorted(set(table.loc[table["ai"], "generator"])):
        unseen = ((table["generator"] == name) & table["ai"]).to_numpy()
        if name in trained_on:
            unseen &= table["split"].isin(["test", EVAL]).to_numpy()
        both = unseen | real_test
        out[name] = {
            "n": int(unseen.sum()),
            # None where it has no such picture (a trained generator none of whose groups
            # fell in test)
            "detection_rate": float(called[unseen].mean()) if unseen.any() else None,
            "roc_auc": roc_auc(table["ai"].to_numpy()[both], p_ai[both]),
        }
    reals = {"test": real_test}
    for source in sorted(set(table.loc[~table["ai"] & (table["split"] == EVAL), "source"])):
        reals[source] = (~table["ai"] & (table["source"] == source)).to_numpy()
    for name, mask in reals.items():
        out[REAL + name] = {
            "n": int(mask.sum()),
            "detection_rate": float(called[mask].mean()),
            "roc_auc": None,
        }
    return out


def leave_one_out(
    model: EfficientNetLite,
    splits: dict[str, SplitData],
    embedded: dict[str, Tensor],
    generators: list[str],
    settings: TrainSettings,
    seed: int,
) -> dict[str, Any]:
    """Every fit of `plan(generators)`, the leave-one-out table and the matrix, JSON-ready;
    embedded holds the features of every split and of train's views (features.fill)."""
    table = pictures(splits)
    features = torch.cat([embedded[name] for name in splits]).cpu()
    views = embedded["views"].cpu() if "views" in embedded else None
    model = model.cpu()  # a head on cached features: the trunk never runs here
    started = time.perf_counter()
    fits = {}
    for name, trained_on in tqdm(plan(generators).items(), "transfer", unit="fit", disable=None):
        fits[name] = fit_and_score(model, table, features, views, trained_on, settings, seed)
    seconds = time.perf_counter() - started
    held_out = {}
    for g in generators:
        if f"without {g}" in fits:
            fit = fits[f"without {g}"]
            held_out[g] = {**fit[g], "real_test_fpr": fit[REAL + "test"]["detection_rate"]}
    return {
        "generators": list(generators),
        "fits": len(fits),
        "seconds": round(seconds, 1),
        "seconds_per_fit": round(seconds / len(fits), 2),
        "leave_one_out": held_out,
        "matrix": {
            name: {col: r["detection_rate"] for col, r in fit.items()} for name, fit in fits.items()
        },
        "roc_auc": {
            name: {col: r["roc_auc"] for col, r in fit.items() if r["roc_auc"] is not None}
            for name, fit in fits.items()
        },
        "n": {col: r["n"] for col, r in fits["all"].items()},
    }
