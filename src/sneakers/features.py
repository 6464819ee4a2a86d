"""A frozen backbone's features, computed once per picture and kept (model.train: head).

The store is a folder per trunk (`trunk_id`: backbone, its weights' sha256, picture size,
device type and precision) of part files {"keys", "values"}: one row of features (every pooling
at once) per picture, keyed by the sha256 of the picture's exact network input. A picture that
changes, or a trunk that changes, is a new key, so nothing stale is ever read; a run computes
only the keys it lacks and adds them as a new part. The features stage fills it (DVC output
data/features, persisted between runs); train reads it, evaluate reads it and computes what is
missing without writing.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import Tensor, nn
from tqdm import tqdm

from sneakers.backbones import backbone_sha256
from sneakers.data import Images, ShardImages, SplitData, batches
from sneakers.errors import SneakersError
from sneakers.files import write_new
from sneakers.inference import autocast, resolve_device, resolve_precision, to_input
from sneakers.model import EfficientNetLite, build_model
from sneakers.params import AugmentSettings, ModelSettings, RuntimeSettings
from sneakers.perturb import augment_batch


def frozen_backbone(
    model_settings: ModelSettings, image_size: int, device: torch.device
) -> EfficientNetLite:
    """model.arch with its ImageNet weights, for model.train head: in eval mode on device."""
    model = build_model(model_settings.arch, image_size, part="head", pool=model_settings.pool)
    return model.to(device, memory_format=torch.channels_last).eval()


def trunk_and_store(
    model_settings: ModelSettings, runtime: RuntimeSettings, image_size: int, folder: Path
) -> tuple[EfficientNetLite, FeatureStore, torch.device, str]:
    """The frozen trunk on the runtime's device, its store in folder, the device and the
    precision: what the features stage fills and the stages after it read."""
    device = resolve_device(runtime.device)
    precision = resolve_precision(runtime.precision, device)
    model = frozen_backbone(model_settings, image_size, device)
    store = FeatureStore(folder, trunk_id(model, model_settings.arch, device, precision))
    return model, store, device, precision


def trunk_id(model: EfficientNetLite, arch: str, device: torch.device, precision: str) -> str:
    """What a feature depends on besides the picture: the trunk and how it ran (the store keeps
    every pooling, model.EfficientNetLite.pooled)."""
    sha = backbone_sha256(arch)
    side = model.net._global_params.image_size
    return f"{arch}-{sha[:12]}-{side}px-{device.type}-{precision}"


def keys(x: Tensor) -> list[str]:
    """sha256 of each picture's network input (float32, NCHW order), whatever its layout."""
    x = x.detach().float().cpu().contiguous()
    return [hashlib.sha256(row.numpy().tobytes()).hexdigest() for row in x]


class FeatureStore:
    """Features of one trunk by picture key; `computed` and `read` count this run's rows."""

    def __init__(self, root: Path, trunk: str) -> None:
        self.folder = root / trunk
        self.rows: dict[str, Tensor] = {}
        self.new: dict[str, Tensor] = {}
        self.computed = self.read = 0
        for part in sorted(self.folder.glob("part-*.pt")) if self.folder.is_dir() else []:
            try:
                stored = torch.load(part, map_location="cpu", weights_only=True)
                self.rows.update(zip(stored["keys"], stored["values"], strict=True))
            except Exception as err:  # noqa: BLE001 - any damage: say which file, and the cure
                what = f"{part}: unreadable feature cache ({type(err).__name__})"
                raise SneakersError(f"{what}: delete {self.folder}, then `dvc repro`") from None

    def __len__(self) -> int:
        return len(self.rows)

    @torch.no_grad()
    def features(self, model: EfficientNetLite, x: Tensor) -> Tensor:
        """The model's features of a batch of network inputs: stored rows read, the others
        computed (in the caller's autocast) and kept for `save`."""
        names = keys(x)
        missing = [i for i, k in enumerate(names) if k not in self.rows]
        if missing:
            computed = model.pooled(x[missing]).float().cpu()
            for i, row in zip(missing, computed, strict=True):
                self.rows[names[i]] = self.new[names[i]] = row.clone()
        self.computed += len(missing)
        self.read += len(names) - len(missing)
        return model.select(torch.stack([self.rows[k] for k in names]))

    def save(self) -> Path | None:
        """Add this run's new rows as one more part file; None when there were none."""
        if not self.new:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / f"part-{len(list(self.folder.glob('part-*.pt'))):05d}.pt"
        values = torch.stack(list(self.new.values()))
        buffer = io.BytesIO()
        torch.save({"keys": list(self.new), "values": values}, buffer)
        write_new(part, buffer.getvalue())
        self.new = {}
        return part


@torch.no_grad()
def embed(
    model: EfficientNetLite,
    store: FeatureStore,
    images: Images | Iterable[Tensor],
    device: torch.device,
    precision: str,
    batch_size: int = 64,
    desc: str = "features",
) -> Tensor:
    """The features of uint8 pictures (a tensor or shards, or an iterable of uint8 batches),
    in order, through the store."""
    model.eval()
    chunks = batches(images, batch_size) if isinstance(images, Tensor | ShardImages) else images
    out = []
    for batch in tqdm(chunks, desc=desc, unit="batch", leave=False, disable=None):
        with autocast(device, precision):
            out.append(store.features(model, to_input(batch, device)))
    return torch.cat(out) if out else torch.zeros((0, model.net._fc.in_features))


def views(
    images: Images, settings: AugmentSettings, seed: int, batch_size: int = 64
) -> Iterable[Tensor]:
    """settings.views augmented copies of every picture, batch by batch: view v of picture i is
    drawn from its own generator (seed, v, i), so a copy is the same whatever the batching."""
    for view in range(settings.views):
        start = 0
        for batch in batches(images, batch_size):
            yield torch.cat(
                [
                    augment_batch(
                        im[None], settings, np.random.default_rng([seed, view, start + j])
                    )
                    for j, im in enumerate(batch)
                ]
            )
            start += len(batch)


class Cached(nn.Module):
    """A head-trained backbone that reads its features from the store where it can: the same
    P(ai) as the network (the store holds what the same trunk computed at the same precision),
    without the trunk's cost for pictures seen before."""

    def __init__(self, model: EfficientNetLite, store: FeatureStore) -> None:
        super().__init__()
        self.model, self.store = model, store

    def forward(self, x: Tensor) -> Tensor:
        features = self.store.features(self.model, x).to(x.device)
        return self.model.head(features)


def sample_weights(rows: pd.DataFrame, balance: str) -> np.ndarray:
    """Each picture's weight in the head's loss, the two classes weighing the same in total.
    label: every AI picture alike (scikit-learn's balanced class weights); generator: each
    generator's pictures the same in total, so 24 DALL-E 2 pictures count as much as 1,237
    MidJourney ones."""
    n, ai = len(rows), (rows["label"] == "ai").to_numpy()
    weights = np.where(ai, n / (2 * max(ai.sum(), 1)), n / (2 * max((~ai).sum(), 1)))
    if balance == "generator" and ai.any():
        made = rows["generator"].fillna("").to_numpy()[ai]
        names, code, counts = np.unique(made, return_inverse=True, return_counts=True)
        weights[ai] = n / (2 * len(names) * counts[code])
    return weights


def fit_head(
    model: EfficientNetLite, x: Tensor, y: Tensor, c: float, seed: int, weights: np.ndarray
) -> None:
    """scikit-learn's logistic regression (per-picture weights, L2 of strength 1/c) on
    standardized features, written into the model's linear layer: logit(ai) - logit(real) =
    w . x + b."""
    scaler = StandardScaler().fit(x.numpy())
    clf = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    clf.fit(scaler.transform(x.numpy()), y.numpy(), sample_weight=weights)
    w = clf.coef_[0] / scaler.scale_
    b = clf.intercept_[0] - float(np.dot(w, scaler.mean_))
    fc = model.net._fc
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()
        fc.weight[1] = torch.from_numpy(w).float()
        fc.bias[1] = float(b)


def fit_head_on(
    model: EfficientNetLite,
    train: Tensor,
    views: Tensor | None,
    rows: pd.DataFrame,
    keep: np.ndarray,
    c: float,
    balance: str,
    seed: int,
) -> int:
    """fit_head on the train pictures where keep is true and on their augmented views (fill's
    "views": copies of train, in turn), labelled and weighed from their rows; how many feature
    rows it fitted. The train stage's head and the transfer stage's fits alike."""
    copies = 1 + (0 if views is None else len(views) // max(len(train), 1))
    x = torch.cat([train, *([] if views is None else [views])])
    x = x[torch.from_numpy(np.tile(keep, copies))]
    kept = rows[keep]
    y = torch.tensor((kept["label"] == "ai").to_numpy(), dtype=torch.long).repeat(copies)
    fit_head(model, x, y, c, seed, np.tile(sample_weights(kept, balance), copies))
    return len(x)


def fill(
    model: EfficientNetLite,
    store: FeatureStore,
    splits: dict[str, SplitData],
    conditions: dict[str, Tensor],
    augment: AugmentSettings,
    seed: int,
    device: torch.device,
    precision: str,
    batch_size: int,
) -> dict[str, Tensor]:
    """Everything train and evaluate will ask of the trunk, through the store: every split's
    pictures, the augmented views of train that the head trains on ("views": augment.views
    copies of train, in turn) and evaluate's test conditions; the features by name."""
    out = {
        name: embed(model, store, data.images, device, precision, batch_size, f"features {name}")
        for name, data in splits.items()
    }
    if augment.views:
        pictures = views(splits["train"].images, augment, seed, batch_size)
        out["views"] = embed(model, store, pictures, device, precision, desc="features views")
    for name, images in conditions.items():
        out[name] = embed(
            model, store, images, device, precision, batch_size, f"features test {name}"
        )
    return out
