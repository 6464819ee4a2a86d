"""Standardized images as uint8 tensors decoded once per stage where they fit in memory, and
read from the shards batch by batch where they do not.

The shards hold JPEG bytes; decoding them every epoch would make a small CNN wait on Pillow.
One decode into an N x 3 x H x W uint8 tensor costs ~1 s per thousand images and the tensor
is shared (not copied) by DataLoader workers. At 173 KB per 240 px image that tensor outgrows
memory at ~100k images, so past a budget (train.memory_gb) the splits stay `ShardImages`, which
DataLoader workers decode as each batch is due.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from sneakers.errors import SneakersError
from sneakers.files import read_csv
from sneakers.shards import read_member

CLASS_NAMES = ("real", "ai")  # index = label id; 1 = ai, the positive class
MEAN, STD = 0.5, 0.5  # inputs are scaled to [-1, 1]


def decode(data: bytes) -> np.ndarray:
    """JPEG bytes to a writable H x W x 3 uint8 array (a tensor may share it)."""
    with Image.open(io.BytesIO(data)) as im:
        return np.array(im.convert("RGB"))


class ShardImages(Dataset):
    """Images left in their shards, indexed like the uint8 tensor they stand for: an int gives
    one 3 x H x W image, decoded when asked for. Only numpy arrays per image, so forked
    DataLoader workers share them without copying."""

    def __init__(
        self, shards: list[Path], shard_of: np.ndarray, offsets: np.ndarray, lengths: np.ndarray
    ) -> None:
        self.shards, self.shard_of, self.offsets, self.lengths = shards, shard_of, offsets, lengths
        first = tuple(self[0].shape) if len(offsets) else (3, 0, 0)
        self.shape = (len(offsets), *first)

    @classmethod
    def of(cls, shard_dir: Path, rows: pd.DataFrame) -> ShardImages:
        """The images of these index rows (shard, offset, length), in row order."""
        names, shard_of = np.unique(rows["shard"].to_numpy(str), return_inverse=True)
        offsets, lengths = (rows[c].to_numpy(np.int64) for c in ("offset", "length"))
        return cls([shard_dir / n for n in names], shard_of.astype(np.int32), offsets, lengths)

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int) -> torch.Tensor:
        data = read_member(
            self.shards[self.shard_of[i]], int(self.offsets[i]), int(self.lengths[i])
        )
        return torch.from_numpy(decode(data)).permute(2, 0, 1)

    def __add__(self, other: ShardImages) -> ShardImages:
        """These images, then other's (the train split and the simulated fakes)."""
        return ShardImages(
            self.shards + other.shards,
            np.concatenate([self.shard_of, other.shard_of + len(self.shards)]),
            np.concatenate([self.offsets, other.offsets]),
            np.concatenate([self.lengths, other.lengths]),
        )

    def take(self, keep: np.ndarray) -> ShardImages:
        """The images where keep (a boolean mask) is true, still in their shards."""
        return ShardImages(self.shards, self.shard_of[keep], self.offsets[keep], self.lengths[keep])

    @property
    def nbytes(self) -> int:
        """What the decoded images take as one uint8 tensor."""
        return math.prod(self.shape)

    def stack(self, indices: Sequence[int], desc: str | None = None) -> torch.Tensor:
        """The images at indices in one N x 3 x H x W tensor, filled in place: the peak is the
        tensor and one image (np.stack of a list would hold both the list and the stack)."""
        out = torch.empty((len(indices), *self.shape[1:]), dtype=torch.uint8)
        for k, i in enumerate(
            tqdm(
                indices,
                desc=desc,
                unit="image",
                leave=False,
                disable=True if desc is None else None,
            )
        ):
            out[k] = self[i]
        return out


Images = torch.Tensor | ShardImages


@dataclass
class SplitData:
    """One split: images (uint8 N x 3 x H x W, in memory or in the shards), labels (0 real,
    1 ai) and the index rows."""

    images: Images
    labels: torch.Tensor
    rows: pd.DataFrame

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, keep: np.ndarray) -> SplitData:
        """The pictures where keep (a boolean mask) is true."""
        mask = torch.from_numpy(keep)
        images = (
            self.images.take(keep) if isinstance(self.images, ShardImages) else self.images[mask]
        )
        return SplitData(images, self.labels[mask], self.rows[keep].reset_index(drop=True))


def generators_in(data: SplitData) -> list[str]:
    """The generators of a split's AI pictures."""
    ai = data.rows[data.rows["label"] == "ai"]
    return sorted(set(ai["generator"].dropna()) - {""})


def generator_masks(
    splits: dict[str, SplitData], generators: str | list[str]
) -> dict[str, np.ndarray]:
    """Which train and val pictures a model learns from and is tuned on: every real one and the
    AI ones of train.generators ("all": every generator); the others stay unseen."""
    made = {name: splits[name].rows["generator"].fillna("") for name in ("train", "val")}
    if generators == "all":
        return {name: np.ones(len(g), bool) for name, g in made.items()}
    known = sorted(set(made["train"]) - {""})
    unknown = [g for g in generators if g not in known]
    if unknown:
        raise SneakersError(
            f"train.generators: {', '.join(unknown)} made no training picture "
            f"(known: {', '.join(known)})"
        )
    return {
        name: ((splits[name].rows["label"] == "real") | g.isin(generators)).to_numpy()
        for name, g in made.items()
    }


def load_splits(
    standardized_dir: Path, split_csv: Path, names: Sequence[str] | None = None
) -> dict[str, SplitData]:
    """Every split (or the named ones) with its images still in the shards: `cache` decodes."""
    index = read_csv(standardized_dir / "index.csv")
    split = read_csv(split_csv)[["id", "split"]]
    try:
        rows = index.merge(split, on="id", how="inner", validate="one_to_one")
    except pd.errors.MergeError:
        raise SneakersError(f"{split_csv} lists an id twice: run `dvc repro split`") from None
    if len(rows) != len(index):
        raise SneakersError(f"{split_csv} does not cover {standardized_dir}: run `dvc repro split`")
    out = {}
    for name, part in rows.groupby("split", sort=False):
        if names is not None and name not in names:
            continue
        part = part.reset_index(drop=True)
        out[str(name)] = SplitData(
            images=ShardImages.of(standardized_dir, part),
            labels=torch.tensor([CLASS_NAMES.index(x) for x in part["label"]], dtype=torch.long),
            rows=part,
        )
    return out


def cache(splits: dict[str, SplitData], budget_bytes: float = math.inf, show: bool = True) -> bool:
    """Decode every split into one uint8 tensor each, in place, if together they fit
    budget_bytes; whether they did (if not, they stay in the shards and stream)."""
    if sum(s.images.nbytes for s in splits.values()) > budget_bytes:
        return False
    for name, data in splits.items():
        if isinstance(data.images, ShardImages):
            desc = f"decode {name}" if show else None
            data.images = data.images.stack(range(len(data.images)), desc)
    return True


def batches(
    images: Images, batch_size: int, rank: int = 0, world: int = 1, workers: int = 0
) -> Iterator[torch.Tensor]:
    """Consecutive batches of batch_size images, in order, each cut to this rank's every
    world-th image: slices of a tensor, or decoded from the shards a batch per DataLoader
    worker (none: in this process)."""
    starts = range(0, len(images), batch_size)
    if isinstance(images, torch.Tensor):
        return (images[i + rank : i + batch_size : world] for i in starts)
    spans = [range(i + rank, min(i + batch_size, len(images)), world) for i in starts]
    return iter(DataLoader(spans, batch_size=None, collate_fn=images.stack, num_workers=workers))


def add_simulated(train: SplitData, simulated_dir: Path) -> SplitData:
    """The train split plus the simulate stage's fakes (labelled ai), each made from one of the
    split's own photos: a fake of a val or test photo would leak it into training."""
    rows = read_csv(simulated_dir / "index.csv")
    if rows.empty:
        return train
    strays = set(rows["parent"]) - set(train.rows.loc[train.rows["label"] == "real", "id"])
    if strays:
        raise SneakersError(
            f"{simulated_dir} has fakes of {len(strays)} pictures that are not real train photos: "
            "run `dvc repro simulate`"
        )
    labels = torch.full((len(rows),), CLASS_NAMES.index("ai"), dtype=torch.long)
    fakes = ShardImages.of(simulated_dir, rows)
    if isinstance(train.images, ShardImages):
        images = train.images + fakes  # both still in their shards: `cache` decodes them
    else:
        images = torch.cat([train.images, fakes.stack(range(len(fakes)))])
    return SplitData(
        images=images,
        labels=torch.cat([train.labels, labels]),
        rows=pd.concat(
            [train.rows, rows.drop(columns=["parent", "scale"]).assign(split="train")],
            ignore_index=True,
        ),
    )
