"""load_splits: shards + index + split CSV in, one split each out, rows aligned; cache decodes
them into uint8 tensors, batches cuts either kind the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from sneakers.data import (
    ShardImages,
    SplitData,
    add_simulated,
    batches,
    cache,
    generator_masks,
    generators_in,
    load_splits,
)
from sneakers.errors import SneakersError
from sneakers.shards import META_COLUMNS, ShardWriter, tar_member

SIZE = 16
SPLITS = ["train", "val", "train", "test", "val", "train", "test", "train", "val", "train"]


def write_shards(
    rows: pd.DataFrame, images: list[bytes], out_dir: Path, shard_size: int
) -> pd.DataFrame:
    """Pack images into shards one by one, as the standardize stage lays them out."""
    shards = ShardWriter(out_dir, shard_size)
    for meta, data in zip(rows[META_COLUMNS].to_dict("records"), images, strict=True):
        shards.add(tar_member(f"{meta['id']}.jpg", data), [meta], [len(data)])
    shards.close()
    return shards.index()


def grey(i: int) -> int:
    """Each image is one flat grey level, far enough apart to survive JPEG."""
    return 10 + 24 * i


@pytest.fixture
def standardized(tmp_path: Path, encode: Callable[..., bytes]) -> tuple[Path, pd.DataFrame]:
    """A standardized dir of 10 flat-grey images in 3 shards, and its split table.

    Labels alternate, so a mix-up of rows, images or labels shows as a wrong grey or label.
    """
    rows = pd.DataFrame(
        {
            "id": [f"img{i:02d}" for i in range(len(SPLITS))],
            "label": ["ai" if i % 2 else "real" for i in range(len(SPLITS))],
            "source": "src",
            "role": "train",
            "path": [f"{i}.png" for i in range(len(SPLITS))],
            "brand": None,
            "generator": ["src" if i % 2 else None for i in range(len(SPLITS))],
            "group": [f"img{i:02d}" for i in range(len(SPLITS))],
        }
    )
    images = [
        encode(Image.new("RGB", (SIZE, SIZE), (grey(i),) * 3), "JPEG", quality=95)
        for i in range(len(SPLITS))
    ]
    out = tmp_path / "standardized"
    out.mkdir()
    index = write_shards(rows, images, out, shard_size=4)
    index.to_csv(out / "index.csv", index=False)
    split = rows[["id", "label"]].assign(split=SPLITS)
    return out, split


@pytest.mark.parametrize("in_memory", [False, True])
def test_load_splits_shapes_labels_and_order(
    standardized: tuple[Path, pd.DataFrame], tmp_path: Path, in_memory: bool
) -> None:
    out, split = standardized
    split.sample(frac=1, random_state=0).to_csv(tmp_path / "split.csv", index=False)
    splits = load_splits(out, tmp_path / "split.csv")
    assert all(isinstance(s.images, ShardImages) for s in splits.values())  # nothing decoded
    if in_memory:
        assert cache(splits)
        assert all(isinstance(s.images, torch.Tensor) for s in splits.values())

    assert set(splits) == {"train", "val", "test"}
    seen: list[str] = []
    for name, data in splits.items():
        expected_ids = [f"img{i:02d}" for i, s in enumerate(SPLITS) if s == name]
        assert list(data.rows["id"]) == expected_ids  # index order within each split
        assert (data.rows["split"] == name).all()
        assert data.images[0].dtype == torch.uint8
        assert data.images.shape == (len(expected_ids), 3, SIZE, SIZE)
        assert len(data) == len(expected_ids)
        for k, image_id in enumerate(data.rows["id"]):
            i = int(image_id[3:])
            assert abs(float(data.images[k].float().mean()) - grey(i)) < 3, image_id
            assert int(data.labels[k]) == (1 if data.rows["label"][k] == "ai" else 0)
            assert int(data.labels[k]) == i % 2  # 1 = ai, 0 = real
        seen += list(data.rows["id"])
    assert sorted(seen) == sorted(split["id"])  # every id exactly once


def test_only_the_named_splits_are_loaded(
    standardized: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    out, split = standardized
    split.to_csv(tmp_path / "split.csv", index=False)
    assert set(load_splits(out, tmp_path / "split.csv", ("train", "val"))) == {"train", "val"}
    split.iloc[:-1].to_csv(tmp_path / "split.csv", index=False)  # still checked whole
    with pytest.raises(SneakersError, match="does not cover"):
        load_splits(out, tmp_path / "split.csv", ("train",))


def test_cache_decodes_only_what_fits_the_budget(
    standardized: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    out, split = standardized
    split.to_csv(tmp_path / "split.csv", index=False)
    splits = load_splits(out, tmp_path / "split.csv")
    total = sum(s.images.nbytes for s in splits.values())
    assert total == len(SPLITS) * 3 * SIZE * SIZE
    assert not cache(splits, budget_bytes=total - 1)
    assert all(isinstance(s.images, ShardImages) for s in splits.values())
    streamed = {k: v.images.stack(range(len(v))) for k, v in splits.items()}
    assert cache(splits, budget_bytes=total)
    assert all(torch.equal(splits[k].images, streamed[k]) for k in splits)


@pytest.mark.parametrize(("rank", "world"), [(0, 1), (0, 2), (1, 2), (2, 3)])
@pytest.mark.parametrize("workers", [0, 2])
def test_batches_cut_streamed_images_as_they_cut_a_tensor(
    standardized: tuple[Path, pd.DataFrame], tmp_path: Path, rank: int, world: int, workers: int
) -> None:
    """Batches of 4 of 10 images, each cut to the rank's every world-th image (at world 3 the
    last batch of 2 leaves rank 2 none), in order, from the shards as from memory."""
    out, split = standardized
    split.assign(split="train").to_csv(tmp_path / "split.csv", index=False)
    images = load_splits(out, tmp_path / "split.csv")["train"].images
    tensor = images.stack(range(len(images)))
    got = list(batches(images, 4, rank, world, workers))
    want = list(batches(tensor, 4, rank, world))
    assert (
        [len(b) for b in got]
        == [len(b) for b in want]
        == [len(range(s, min(s + 4, 10))[rank::world]) for s in (0, 4, 8)]
    )
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    assert torch.equal(
        torch.cat(want),
        tensor[[i for s in (0, 4, 8) for i in range(s, min(s + 4, 10))[rank::world]]],
    )


def test_split_missing_ids_is_a_user_error(
    standardized: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    out, split = standardized
    split.iloc[:-2].to_csv(tmp_path / "split.csv", index=False)
    with pytest.raises(SneakersError, match="does not cover"):
        load_splits(out, tmp_path / "split.csv")


def test_split_listing_an_id_twice_is_a_user_error(
    standardized: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    out, split = standardized
    pd.concat([split, split.iloc[:1]]).to_csv(tmp_path / "split.csv", index=False)
    with pytest.raises(SneakersError, match="twice"):
        load_splits(out, tmp_path / "split.csv")


def test_missing_split_csv_points_to_dvc_repro(
    standardized: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    out, _ = standardized
    with pytest.raises(SneakersError, match="dvc repro"):
        load_splits(out, tmp_path / "nope.csv")


def simulated_dir(tmp_path: Path, encode: Callable[..., bytes], parents: list[str]) -> Path:
    """A simulate-stage output: one white fake per parent id."""
    out = tmp_path / "simulated"
    out.mkdir()
    rows = pd.DataFrame(
        {
            "id": [f"{p}-sim" for p in parents],
            "label": "ai",
            "source": "simulated-transposed",
            "role": "train",
            "path": "x.png",
            "brand": None,
            "generator": "autoencoder",
            "group": parents,
        }
    )
    white = encode(Image.new("RGB", (SIZE, SIZE), (255,) * 3), "JPEG", quality=95)
    index = write_shards(rows, [white] * len(parents), out, shard_size=4)
    index.assign(parent=parents, scale=1.0).to_csv(out / "index.csv", index=False)
    return out


@pytest.fixture
def train_and_split(
    standardized: tuple[Path, pd.DataFrame], tmp_path: Path
) -> tuple[SplitData, pd.DataFrame]:
    """The fixture's train split, loaded, and the whole split table."""
    out, split = standardized
    split.to_csv(tmp_path / "split.csv", index=False)
    return load_splits(out, tmp_path / "split.csv")["train"], split


def with_fakes(
    train: SplitData, tmp_path: Path, encode: Callable[..., bytes]
) -> tuple[SplitData, list[str]]:
    """train plus one white simulated fake of each real photo, and those photos' ids."""
    photos = list(train.rows.loc[train.rows["label"] == "real", "id"])
    return add_simulated(train, simulated_dir(tmp_path, encode, photos)), photos


@pytest.mark.parametrize("in_memory", [False, True])
def test_add_simulated_appends_fakes_as_ai(
    train_and_split: tuple[SplitData, pd.DataFrame],
    tmp_path: Path,
    encode: Callable[..., bytes],
    in_memory: bool,
) -> None:
    train, _ = train_and_split
    if in_memory:
        assert cache({"train": train})
    both, photos = with_fakes(train, tmp_path, encode)
    assert isinstance(both.images, torch.Tensor) == in_memory  # a streamed split stays streamed
    cache({"train": both})
    assert len(both) == len(train) + len(photos)
    assert both.labels[len(train) :].tolist() == [1] * len(photos)
    assert int(both.images[len(train) :].float().mean()) > 250  # the white fakes, in order
    assert set(both.rows["split"]) == {"train"}


def test_fakes_of_pictures_outside_the_train_split_are_refused(
    train_and_split: tuple[SplitData, pd.DataFrame], tmp_path: Path, encode: Callable[..., bytes]
) -> None:
    train, split = train_and_split
    val_photo = split.loc[(split["split"] == "val") & (split["label"] == "real"), "id"].iloc[0]
    with pytest.raises(SneakersError, match="not real train photos: run `dvc repro simulate`"):
        add_simulated(train, simulated_dir(tmp_path, encode, [val_photo]))


@pytest.mark.parametrize("in_memory", [False, True])
def test_generator_masks_keep_reals_and_the_chosen_generators_pictures(
    train_and_split: tuple[SplitData, pd.DataFrame],
    tmp_path: Path,
    encode: Callable[..., bytes],
    in_memory: bool,
) -> None:
    train = train_and_split[0]
    both, photos = with_fakes(train, tmp_path, encode)
    if in_memory:
        assert cache({"train": both})
    splits = {"train": both, "val": train}
    assert generators_in(both) == ["autoencoder", "src"]
    every = generator_masks(splits, "all")
    assert all(mask.all() for mask in every.values())
    keep = generator_masks(splits, ["autoencoder"])
    kept = both.take(keep["train"])
    assert set(kept.rows["generator"].dropna()) == {"autoencoder"}
    assert (kept.rows["label"] == "real").sum() == len(photos)
    assert kept.labels.tolist() == (kept.rows["label"] == "ai").astype(int).tolist()
    cache({"train": kept})
    assert int(kept.images[kept.labels == 1].float().mean()) > 250  # the white fakes, not src's
    with pytest.raises(
        SneakersError,
        match=r"^train.generators: dalle2 made no training picture "
        r"\(known: autoencoder, src\)$",
    ):
        generator_masks(splits, ["dalle2"])
