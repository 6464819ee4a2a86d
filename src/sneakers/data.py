"""Standardized images as in-memory uint8 tensors, decoded once per stage, not once per epoch.

The shards hold JPEG bytes; decoding them every epoch would make a small CNN wait on Pillow.
One decode into an N x 3 x H x W uint8 tensor costs ~1 s per thousand images and the tensor
is shared (not copied) by DataLoader workers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from sneakers.errors import SneakersError
from sneakers.files import read_csv
from sneakers.shards import read_image

CLASS_NAMES = ("real", "ai")  # index = label id; 1 = ai, the positive class
MEAN, STD = 0.5, 0.5  # inputs are scaled to [-1, 1]


@dataclass
class SplitData:
    """One split: images (uint8, N x 3 x H x W), labels (0 real, 1 ai) and the index rows."""

    images: torch.Tensor
    labels: torch.Tensor
    rows: pd.DataFrame

    def __len__(self) -> int:
        return len(self.labels)


def decode(data: bytes) -> np.ndarray:
    """JPEG bytes to an H x W x 3 uint8 array."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def load_splits(standardized_dir: Path, split_csv: Path) -> dict[str, SplitData]:
    """Decode every standardized image once and group them by split."""
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
        part = part.reset_index(drop=True)
        out[str(name)] = SplitData(
            images=decode_rows(standardized_dir, part),
            labels=torch.tensor([CLASS_NAMES.index(x) for x in part["label"]], dtype=torch.long),
            rows=part,
        )
    return out


def decode_rows(standardized_dir: Path, rows: pd.DataFrame) -> torch.Tensor:
    """Decode each row's standardized JPEG into one N x 3 x H x W uint8 tensor."""
    arrays = [decode(read_image(standardized_dir, row)) for _, row in rows.iterrows()]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


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
    return SplitData(
        images=torch.cat([train.images, decode_rows(simulated_dir, rows)]),
        labels=torch.cat([train.labels, labels]),
        rows=pd.concat(
            [train.rows, rows.drop(columns=["parent", "scale"]).assign(split="train")],
            ignore_index=True,
        ),
    )
