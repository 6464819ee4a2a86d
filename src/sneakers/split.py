"""Stratified, group-aware, seeded train/val/test split.

Whole duplicate groups are assigned, so near-copies of a picture never sit on both sides of
the train/test line; each label is split on its own, so every split keeps the class balance.
Images of `role: eval` sources are never split: their split is `eval`, scored by evaluate only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sneakers.errors import SneakersError

SPLITS = ("train", "val", "test")  # the order the cumulative fractions are cut in
EVAL = "eval"
LABELS = ("real", "ai")


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


def require_both_labels(labels: pd.Series, what: str) -> None:
    """Refuse training pictures of one label only, the labels of what merge accepted: a detector
    trained on them learns nothing, and scores a perfect 1.0 on a test split of that label."""
    counts = labels.value_counts()
    missing = " and ".join(label for label in LABELS if not counts.get(label, 0))
    if missing:
        found = ", ".join(f"{int(counts.get(label, 0))} {label}" for label in LABELS)
        raise SneakersError(
            f"{what} hold no {missing} picture ({found}): add a role: train source of {missing} "
            "pictures, or see data/merged/manifest.csv for why files were not accepted"
        )


def check_splits(split: pd.DataFrame, fractions: dict[str, float]) -> None:
    """Refuse a split that leaves train, val or test without a picture of each label: training
    needs both, the threshold is chosen on val, and test scores both classes."""
    trained = split[split["split"] != EVAL]
    counts = pd.crosstab(trained["split"], trained["label"])
    counts = counts.reindex(index=list(SPLITS), columns=list(LABELS), fill_value=0)
    lacking = {label: [name for name in SPLITS if not counts.at[name, label]] for label in LABELS}
    short = [label for label in LABELS if lacking[label]]
    if not short:
        return
    groups = trained.groupby("label")["group"].nunique()
    found = []
    for label in LABELS:
        n, g = int(counts[label].sum()), int(groups.get(label, 0))
        copies = f" in {g} group{'s' if g > 1 else ''} of copies" if g < n else ""
        found.append(f"{n} {label}{copies}")
    gaps = "; ".join(
        f"{listed(lacking[label])} get{'s' if len(lacking[label]) == 1 else ''} no {label} picture"
        for label in short
    )
    now = ", ".join(f"{name} {fractions[name]:g}" for name in SPLITS)
    raise SneakersError(
        f"split: {gaps} ({', '.join(found)}; train, val and test each need both labels): add "
        f"{listed(short)} pictures, or change split.fractions (now {now})"
    )


def listed(words: list[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


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
