"""Stratified, group-aware, seeded train/val/test split.

Whole duplicate groups are assigned, so near-copies of a picture never sit on both sides of
the train/test line; each label is split on its own, so every split keeps the class balance.
Images of `role: eval` sources are never split: their split is `eval`, scored by evaluate only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")  # the order the cumulative fractions are cut in
EVAL = "eval"


def assign_splits(index: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.DataFrame:
    """Add a `split` column: groups shuffled per label, then cut at the cumulative fractions."""
    out = index.copy()
    out["group"] = out["group"].fillna(out["id"])
    out["split"] = EVAL
    trained = out[out["role"] == "train"]
    for code, label in enumerate(sorted(trained["label"].unique())):
        rows = trained[trained["label"] == label]
        sizes = rows.groupby("group").size().sort_index()
        order = np.random.default_rng([seed, code]).permutation(len(sizes))
        bounds = np.cumsum([fractions[s] for s in SPLITS]) * len(rows)
        taken = 0
        for g in order:
            cut = min(int(np.searchsorted(bounds, taken, side="right")), len(SPLITS) - 1)
            split = SPLITS[cut]
            out.loc[rows.index[rows["group"] == sizes.index[g]], "split"] = split
            taken += int(sizes.iloc[g])
    return out


def summarize(split: pd.DataFrame) -> dict[str, Any]:
    """Counts per split by label and by source, for metrics/data.json."""
    return {
        name: {
            "total": int(len(part)),
            "by_label": {k: int(v) for k, v in part["label"].value_counts().sort_index().items()},
            "by_source": {k: int(v) for k, v in part["source"].value_counts().sort_index().items()},
        }
        for name, part in ((s, split[split["split"] == s]) for s in (*SPLITS, EVAL))
        if name != EVAL or len(part)
    }
