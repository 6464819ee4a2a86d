"""Stratified, group-aware, seeded train/val/test split.

Whole duplicate groups are assigned, so near-copies of a picture never sit on both sides of
the train/test line; each label is split on its own, so every split keeps the class balance.
Images of `role: eval` sources are never split: their split is `eval`, scored by evaluate only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sneakers.errors import SneakersError
from sneakers.params import settings_from

SPLITS = ("train", "val", "test")
EVAL = "eval"


@dataclass(frozen=True)
class SplitSettings:
    """The `split` params section."""

    fractions: dict[str, float]

    @classmethod
    def from_params(cls, section: dict[str, Any]) -> SplitSettings:
        settings = settings_from(cls, section, "split")
        check_fractions(settings.fractions)
        return settings


def check_fractions(fractions: dict[str, float]) -> None:
    """Fractions must name the three splits, be positive and sum to 1."""
    values = list(fractions.values())
    if set(fractions) != set(SPLITS) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in values
    ):
        raise SneakersError("split.fractions needs positive train, val and test values")
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise SneakersError(
            f"split.fractions sum to {sum(fractions.values()):g}; make them sum to 1"
        )


def assign_splits(index: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.DataFrame:
    """Add a `split` column: groups shuffled per label, then cut at the cumulative fractions."""
    check_fractions(fractions)
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
