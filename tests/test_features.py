"""model.train head: the feature cache (reused, invalidated by a changed picture or trunk) and
the linear head trained on it (a frozen trunk, the network's own P(ai), Grad-CAM)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import SYNTH_SIZE, synthetic_recipe, synthetic_splits

from sneakers import artifact
from sneakers.artifact import Artifact
from sneakers.backbones import load_weights
from sneakers.data import SplitData
from sneakers.errors import SneakersError
from sneakers.explain import heatmaps
from sneakers.features import (
    Cached,
    FeatureStore,
    embed,
    fill,
    sample_weights,
    trunk_id,
    views,
)
from sneakers.inference import Scorer
from sneakers.logs import MemoryLog
from sneakers.metrics import log_loss
from sneakers.model import EfficientNetLite, build_model
from sneakers.params import AugmentSettings, ModelSettings, RuntimeSettings, TrainSettings
from sneakers.train import train_head

CPU = torch.device("cpu")
ARCH = "efficientnet_lite0"
SIZE = SYNTH_SIZE  # the synthetic pictures'


@dataclass
class HeadRun:
    splits: dict[str, SplitData]
    artifact: Artifact
    log: MemoryLog

    def network(self) -> torch.nn.Module:
        return self.artifact.network(CPU)


def head_run(features: Path, pool: str = "mean", augment: bool = False) -> HeadRun:
    """train_head on fresh synthetic train and val splits, in fp32, with its store at features."""
    net = ModelSettings(arch=ARCH, train="head", pool=pool)
    runtime = RuntimeSettings(device="cpu", precision="fp32", batch_size=32)
    settings = TrainSettings(head_c=1.0)
    splits = synthetic_splits()
    log = MemoryLog()
    fitted = train_head(
        {k: splits[k] for k in ("train", "val")},
        net,
        settings,
        runtime,
        1,
        log,
        AugmentSettings(views=int(augment)),
        features,
    )
    return HeadRun(splits, Artifact.of(fitted, net, synthetic_recipe(), "synthetic"), log)


def trunk_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the batch size of every pass through a backbone's trunk."""
    calls: list[int] = []
    pooled = EfficientNetLite.pooled

    def counted(self: EfficientNetLite, x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return pooled(self, x)

    monkeypatch.setattr(EfficientNetLite, "pooled", counted)
    return calls


def store_for(root: Path, precision: str = "fp32") -> tuple[EfficientNetLite, FeatureStore]:
    model = build_model(ARCH, SIZE, part="head").eval()
    return model, FeatureStore(root, trunk_id(model, ARCH, CPU, precision))


@pytest.mark.parametrize("pool", ["mean", "meanmax", "blocks"])
def test_the_head_learns_on_a_trunk_left_bit_identical(tmp_path: Path, pool: str) -> None:
    run = head_run(tmp_path, pool)
    start = load_weights(ARCH)
    state = run.artifact.state_dict
    trunk = [k for k in state if not k.startswith("net._fc.")]
    assert trunk and all(torch.equal(state[k], start[k[len("net.") :]]) for k in trunk)
    assert run.log.values("val/acc")[-1] >= 0.9
    assert run.artifact.card.part == "head" and run.artifact.card.pool == pool


def test_after_the_features_stage_training_computes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the features stage keeps (every split, the augmented views) is all the head reads,
    and the head is the same as one trained with the trunk run afresh."""
    fresh = head_run(tmp_path / "unused", augment=True)
    splits = synthetic_splits()
    model, store = store_for(tmp_path)
    augment = AugmentSettings(views=1)  # views are drawn whether or not `enabled` is set
    fill(model, store, splits, {}, augment, 1, CPU, "fp32", 32)
    assert store.save() is not None
    calls = trunk_calls(monkeypatch)
    cached = head_run(tmp_path, augment=True)
    assert calls == []
    for key, value in fresh.artifact.state_dict.items():
        assert torch.allclose(value, cached.artifact.state_dict[key], atol=1e-6), key


def test_a_changed_picture_or_trunk_is_computed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = synthetic_splits()["val"].images[:10]
    model, store = store_for(tmp_path)
    first = embed(model, store, images, CPU, "fp32", 4)
    assert (store.computed, store.read) == (10, 0)
    store.save()
    model, store = store_for(tmp_path)
    assert len(store) == 10
    changed = images.clone()
    changed[3, 0, 0, 0] ^= 1
    again = embed(model, store, changed, CPU, "fp32", 4)
    assert (store.computed, store.read) == (1, 9)
    assert torch.equal(again[[0, 1, 2, 4]], first[[0, 1, 2, 4]])
    assert not torch.equal(again[3], first[3])
    _, other = store_for(tmp_path, "bf16")  # another way to run the trunk: another folder
    assert len(other) == 0 and other.folder != store.folder


def test_stored_features_equal_a_fresh_pass(tmp_path: Path) -> None:
    images = synthetic_splits()["val"].images[:8]
    model, store = store_for(tmp_path)
    embed(model, store, images, CPU, "fp32", 3)
    store.save()
    model, store = store_for(tmp_path)
    read = embed(model, store, images, CPU, "fp32", 8)
    with torch.no_grad():
        fresh = model.features((images.float() / 255 - 0.5) / 0.5)
    assert store.computed == 0
    assert torch.allclose(read, fresh, atol=1e-5)


def test_augmented_views_do_not_depend_on_the_batching() -> None:
    images = synthetic_splits()["train"].images[:7]
    settings = AugmentSettings(enabled=True, views=2, p_blur=1.0)
    small = torch.cat(list(views(images, settings, 3, batch_size=2)))
    large = torch.cat(list(views(images, settings, 3, batch_size=64)))
    assert small.shape == (14, *images.shape[1:]) and torch.equal(small, large)
    assert not torch.equal(small[:7], small[7:])  # two views, two draws


def test_the_saved_model_scores_as_training_and_the_cache_do(tmp_path: Path) -> None:
    """train/predict parity: the model file's network, run whole on the pictures, gives the P(ai)
    that the head gave the cached features in training, and evaluate's Cached scorer."""
    model, store = store_for(tmp_path)
    val = synthetic_splits()["val"]
    embed(model, store, val.images, CPU, "fp32", 64)
    store.save()
    run = head_run(tmp_path)
    path = tmp_path / "model.pt"
    artifact.save(path, run.artifact)
    loaded, network = artifact.load(path, CPU)
    whole = Scorer(network, CPU, 16, "fp32").proba(val.images)
    assert log_loss(val.labels.numpy(), whole) == pytest.approx(run.log.values("val/loss")[0])
    store = FeatureStore(tmp_path, trunk_id(network, ARCH, CPU, "fp32"))
    cached = Scorer(Cached(network, store), CPU, 16, "fp32").proba(val.images)
    assert store.computed == 0 and store.read == len(val)
    assert np.allclose(whole, cached, atol=1e-6)
    threshold = loaded.card.threshold
    assert ((whole >= threshold) == val.labels.numpy()).mean() >= 0.9
    heat = heatmaps(network, val.images[:3], CPU)  # Grad-CAM on the head model's last map
    assert heat.shape == (3, SIZE, SIZE) and np.isfinite(heat).all()
    assert heat.max() == pytest.approx(1.0)  # gradients reach the frozen trunk's last map


def test_a_damaged_part_file_is_one_line(tmp_path: Path) -> None:
    model, store = store_for(tmp_path)
    embed(model, store, synthetic_splits()["val"].images[:2], CPU, "fp32", 2)
    part = store.save()
    assert part is not None
    part.write_bytes(b"not a torch file")
    with pytest.raises(SneakersError, match=r"unreadable feature cache.*delete .*dvc repro"):
        store_for(tmp_path)


def test_generator_balance_weighs_each_generator_alike_and_the_classes_equally() -> None:
    rows = pd.DataFrame(
        {
            "label": ["real"] * 6 + ["ai"] * 10,
            "generator": [None] * 6 + ["midjourney"] * 8 + ["dalle2"] * 2,
        }
    )
    ai = (rows["label"] == "ai").to_numpy()
    for balance in ("label", "generator"):
        w = sample_weights(rows, balance)
        assert w[ai].sum() == pytest.approx(w[~ai].sum()) == pytest.approx(len(rows) / 2)
    by_label, by_generator = sample_weights(rows, "label"), sample_weights(rows, "generator")
    assert len(set(by_label[ai])) == 1  # scikit-learn's balanced class weights
    made = rows["generator"].to_numpy()
    assert by_generator[made == "dalle2"].sum() == pytest.approx(
        by_generator[made == "midjourney"].sum()
    )
