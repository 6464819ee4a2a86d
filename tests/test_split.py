"""assign_splits: stratified by label, whole duplicate groups together, seeded and stable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sneakers.errors import SneakersError
from sneakers.merge import tie_named_groups
from sneakers.params import validate
from sneakers.split import (
    EVAL,
    SPLITS,
    assign_splits,
    check_splits,
    require_both_labels,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def make_index(
    real: int, ai: int, groups: dict[str, tuple[str, int]] | None = None
) -> pd.DataFrame:
    """An index like standardize writes: singletons, plus named groups of (label, size)."""
    rows = []
    for label, count in (("real", real), ("ai", ai)):
        rows += [{"label": label, "group": None} for _ in range(count)]
    for group, (label, size) in (groups or {}).items():
        rows += [{"label": label, "group": group} for _ in range(size)]
    index = pd.DataFrame(rows)
    index.insert(0, "id", [f"{i:016x}" for i in range(len(index))])
    index["source"] = np.where(index.index % 3 == 0, "shop", "compiled")
    index["path"] = [f"img{i}.jpg" for i in range(len(index))]
    index["role"] = "train"
    return index


def test_every_row_gets_one_of_the_three_splits() -> None:
    index = make_index(40, 55)
    split = assign_splits(index, FRACTIONS, seed=42)
    assert len(split) == len(index)
    assert list(split["id"]) == list(index["id"]), "rows keep their order"
    assert set(split["split"]) == set(SPLITS)
    assert "split" not in index.columns, "the input is not modified"


@pytest.mark.parametrize(
    ("real", "ai", "fractions"),
    [
        (40, 55, FRACTIONS),
        (17, 93, FRACTIONS),
        (101, 7, {"train": 0.7, "val": 0.15, "test": 0.15}),
        (30, 30, {"train": 0.5, "val": 0.25, "test": 0.25}),
    ],
)
def test_stratified_per_label_within_one_image(
    real: int, ai: int, fractions: dict[str, float]
) -> None:
    split = assign_splits(make_index(real, ai), fractions, seed=7)
    for label, total in (("real", real), ("ai", ai)):
        counts = split.loc[split["label"] == label, "split"].value_counts()
        for name in SPLITS:
            expected = fractions[name] * total
            assert abs(counts.get(name, 0) - expected) <= 1, (label, name, counts.to_dict())


def test_groups_never_straddle_splits() -> None:
    groups = {f"g{i:05d}": ("real" if i % 2 else "ai", 2 + i % 4) for i in range(14)}
    index = make_index(30, 30, groups)
    for seed in range(5):
        split = assign_splits(index, FRACTIONS, seed=seed)
        grouped = split[split["id"].isin(index.loc[index["group"].notna(), "id"])]
        per_group = grouped.groupby("group")["split"].nunique()
        assert len(per_group) == 14
        assert (per_group == 1).all(), per_group[per_group > 1].to_dict()
        assert set(split["split"]) == set(SPLITS)


def test_pictures_made_from_one_input_never_straddle_splits() -> None:
    """BicycleGAN's 11 pictures per outline, grouped by merge's path pattern, as in the shared
    profile: each outline's pictures land in one split for every seed."""
    index = make_index(60, 40)
    paths = [f"input_image{g:03d}_sample{k:02d}.jpg" for g in range(10) for k in range(11)]
    gan = pd.DataFrame(
        {
            "id": [f"b{i:015x}" for i in range(110)],
            "label": "ai",
            "group": None,
            "source": "bicyclegan",
            "path": paths,
            "role": "train",
            "status": "accepted",
        }
    )
    gan = tie_named_groups(gan, {"bicyclegan": r"input_image\d+"}).drop(columns="status")
    index = pd.concat([index, gan], ignore_index=True)
    for seed in range(5):
        split = assign_splits(index, FRACTIONS, seed=seed)
        outlines = split[split["source"] == "bicyclegan"].groupby("group")["split"]
        assert len(outlines) == 10 and (outlines.nunique() == 1).all()
        assert outlines.first().nunique() > 1  # the outlines themselves are spread


def test_ungrouped_rows_are_their_own_group() -> None:
    split = assign_splits(make_index(10, 10), FRACTIONS, seed=1)
    assert (split["group"] == split["id"]).all()


def test_same_seed_gives_byte_identical_csv(tmp_path: Path) -> None:
    index = make_index(33, 44, {"g00000": ("real", 3), "g00001": ("ai", 2)})
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    assign_splits(index, FRACTIONS, seed=42).to_csv(first, index=False)
    assign_splits(index.copy(), FRACTIONS, seed=42).to_csv(second, index=False)
    assert first.read_bytes() == second.read_bytes()


def test_a_different_seed_gives_a_different_assignment() -> None:
    index = make_index(40, 40)
    a = assign_splits(index, FRACTIONS, seed=42)["split"]
    b = assign_splits(index, FRACTIONS, seed=43)["split"]
    assert not a.equals(b)

    # ... while the per-label counts stay the same: only who goes where changes.
    def counts(split: pd.Series) -> dict:
        return split.groupby(index["label"]).value_counts().to_dict()

    assert counts(a) == counts(b)


def test_labels_are_split_independently() -> None:
    """Adding AI images must not move any real image: each label has its own random stream."""
    small = assign_splits(make_index(25, 10), FRACTIONS, seed=3)
    large = assign_splits(make_index(25, 60), FRACTIONS, seed=3)
    assert list(small.loc[small["label"] == "real", "split"]) == list(
        large.loc[large["label"] == "real", "split"]
    )


def with_fractions(fractions: object) -> dict:
    """The repository's params.yaml with other split.fractions."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["split"]["fractions"] = fractions
    return params


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({"train": 0.6, "val": 0.4}, r"^split\.fractions: needs positive train, val and test"),
        (
            {"train": 0.6, "val": 0.2, "test": 0.2, "holdout": 0.0},
            r"^split\.fractions\.holdout: is 'holdout' \(use 'train', 'val' or 'test'\)",
        ),
        (
            {"train": 0.8, "val": 0.2, "test": 0.0},
            r"^split\.fractions\.test: is 0\.0 \(use more than 0",
        ),
        (
            {"train": 1.2, "val": -0.1, "test": -0.1},
            r"^split\.fractions\.val: is -0\.1 \(use more than 0",
        ),
        (
            {"train": 0.6, "val": 0.2, "test": 0.3},
            r"^split\.fractions: sum to 1\.1 \(make them sum to 1\)",
        ),
        (
            {"train": 0.5, "val": 0.2, "test": 0.2},
            r"^split\.fractions: sum to 0\.9 \(make them sum to 1\)",
        ),
    ],
)
def test_fraction_errors(fractions: dict[str, float], message: str) -> None:
    with pytest.raises(SneakersError, match=message):
        validate(with_fractions(fractions))


def test_fractions_that_sum_to_one_are_kept_as_written() -> None:
    fractions = {"train": 0.7, "val": 0.15, "test": 0.15}
    assert validate(with_fractions(fractions)).split.fractions == fractions


def test_summary_counts_per_split() -> None:
    split = assign_splits(make_index(20, 30), FRACTIONS, seed=5)
    summary = summarize(split)
    assert list(summary) == list(SPLITS)
    assert sum(s["total"] for s in summary.values()) == 50
    assert summary["train"]["by_label"] == {"ai": 18, "real": 12}
    for name, part in summary.items():
        assert sum(part["by_label"].values()) == part["total"] == sum(part["by_source"].values())
        assert part["total"] == int((split["split"] == name).sum())


def test_eval_sources_are_never_split_and_change_no_training_split() -> None:
    """Eval rows all get `eval`; the train/val/test of the other rows is what it is without them."""
    index = make_index(40, 55)
    held = make_index(12, 9).assign(id=lambda d: "e" + d["id"].str[1:], role="eval", source="shop")
    both = assign_splits(pd.concat([index, held], ignore_index=True), FRACTIONS, seed=42)
    alone = assign_splits(index, FRACTIONS, seed=42)
    assert (both.loc[both["role"] == "eval", "split"] == EVAL).all()
    assert both.loc[both["role"] == "train", "split"].tolist() == alone["split"].tolist()
    counts = summarize(both)
    assert counts[EVAL]["total"] == 21 and counts[EVAL]["by_source"] == {"shop": 21}
    assert EVAL not in summarize(alone)


def test_a_split_with_both_labels_everywhere_passes() -> None:
    check_splits(assign_splits(make_index(5, 5), FRACTIONS, seed=0), FRACTIONS)


@pytest.mark.parametrize(
    ("real", "ai", "groups", "message"),
    [
        (
            40,
            2,
            None,
            r"^split: val and test get no ai picture \(40 real, 2 ai; train, val and "
            r"test each need both labels\): add ai pictures, or change split\.fractions "
            r"\(now train 0\.6, val 0\.2, test 0\.2\)$",
        ),
        (
            0,
            0,
            {"g1": ("real", 5), "g2": ("real", 5), "g3": ("real", 5), "g4": ("ai", 3)},
            r"^split: test gets no real picture; val and test get no ai picture \(15 real in 3 "
            r"groups of copies, 3 ai in 1 group of copies;.*: add real and ai pictures, or",
        ),
        (30, 0, None, r"^split: train, val and test get no ai picture \(30 real, 0 ai;"),
    ],
)
def test_a_split_missing_a_label_somewhere_is_one_line(
    real: int, ai: int, groups: dict[str, tuple[str, int]] | None, message: str
) -> None:
    """An empty val or test, or one of one label, would crash evaluate or score nothing."""
    split = assign_splits(make_index(real, ai, groups), FRACTIONS, seed=0)
    with pytest.raises(SneakersError, match=message):
        check_splits(split, FRACTIONS)


def test_eval_sources_count_for_no_split() -> None:
    """Held-out pictures are never split: they cannot stand in for a missing label."""
    index = pd.concat([make_index(30, 0), make_index(0, 9).assign(role="eval")], ignore_index=True)
    index["id"] = [f"{i:016x}" for i in range(len(index))]
    with pytest.raises(SneakersError, match="get no ai picture"):
        check_splits(assign_splits(index, FRACTIONS, seed=0), FRACTIONS)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            ["real"] * 3,
            r"^the training pictures hold no ai picture \(3 real, 0 ai\): add a role: "
            r"train source of ai pictures, or see data/merged/manifest\.csv",
        ),
        (["ai"], r"hold no real picture \(0 real, 1 ai\)"),
        ([], r"hold no real and ai picture \(0 real, 0 ai\)"),
    ],
)
def test_pictures_of_one_label_are_refused(labels: list[str], message: str) -> None:
    with pytest.raises(SneakersError, match=message):
        require_both_labels(pd.Series(labels, dtype=object), "the training pictures")
    require_both_labels(pd.Series(["ai", "real"]), "the training pictures")
