"""The training loop: read it top to bottom.

Seeded and deterministic for a seed, a device and a precision. `train.precision: auto` trains in
bf16 autocast where the hardware computes bf16 (CUDA, or a CPU with AMX-BF16 or AVX512-BF16) and
in fp32 elsewhere; channels_last everywhere. The batches come from loader.py. The epoch with the
lowest validation loss is kept, and the decision threshold is fixed on validation data, never on
test.
"""

from __future__ import annotations

import copy
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.utils.deterministic
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from sneakers import distributed
from sneakers.artifact import Fitted, Trained
from sneakers.data import CLASS_NAMES, Images, SplitData, batches, generator_masks, generators_in
from sneakers.distributed import Ranks
from sneakers.features import fill, fit_head_on, trunk_and_store
from sneakers.inference import (
    Scorer,
    autocast,
    device_label,
    resolve_precision,
    to_input,
)
from sneakers.loader import DeviceBatches, make_loader
from sneakers.metrics import choose_threshold, log_loss, threshold_at_fpr
from sneakers.model import build_model, count_parameters
from sneakers.params import (
    BACKBONES,
    AugmentSettings,
    ModelSettings,
    RuntimeSettings,
    TrainSettings,
)
from sneakers.perturb import augment_batch

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


def seed_everything(seed: int) -> None:
    """Same seed, same run: python, numpy and torch RNGs, deterministic kernels."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also NaN-fills every new tensor, a debugging aid that no result of a
    # correct op depends on: 18-30% of a CPU train step's profile, 1.06x (docs/performance.md).
    torch.utils.deterministic.fill_uninitialized_memory = False


@dataclass
class Run:
    """What the loop steps, built by `setup`: train() and the benchmarks share it."""

    model: nn.Module  # what steps: the DistributedDataParallel wrapper under torchrun
    raw_model: nn.Module  # the network itself: recalibrated, validated and saved
    optimizer: torch.optim.Optimizer
    loader: DataLoader | DeviceBatches
    device: torch.device
    ranks: Ranks
    precision: str  # of the training steps, resolved
    autocast: torch.autocast


def setup(
    train_data: SplitData,
    model_settings: ModelSettings,
    settings: TrainSettings,
    runtime: RuntimeSettings,
    seed: int,
) -> Run:
    """Seed, join the process group, then model, optimizer and batches, in the order that fixes
    the weights' initialisation and the shuffle for a seed."""
    seed_everything(seed)
    ranks, device = distributed.join(runtime.device)
    image_size = int(train_data.images.shape[-1])
    options = backbone_options(model_settings)
    raw_model = build_model(model_settings.arch, image_size, input=model_settings.input, **options)
    raw_model = raw_model.to(device, memory_format=torch.channels_last)
    model = raw_model
    if ranks.world > 1:
        raw_model = model = distributed.global_batchnorm(raw_model, device)
        model = DistributedDataParallel(model, [device.index] if device.type == "cuda" else None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS[settings.optimizer](
        trainable, lr=settings.lr, weight_decay=settings.weight_decay
    )
    loader = make_loader(train_data, settings, device, seed, ranks)
    precision = resolve_precision(settings.precision, device)
    return Run(
        model, raw_model, optimizer, loader, device, ranks, precision, autocast(device, precision)
    )


def train_one_epoch(
    run: Run,
    desc: str,
    augment: tuple[AugmentSettings, np.random.Generator] | None = None,
) -> tuple[float, float]:
    """One pass over the training data; returns mean loss and accuracy over every rank."""
    run.model.train()
    loss_fn = nn.CrossEntropyLoss()
    device = run.device
    # The sums stay on the device and are read once: reading them every step would make the CPU
    # wait for the GPU each step. float64, so CPU results are the same as summing floats.
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    bar = tqdm(
        run.loader, desc=desc, unit="batch", leave=False, disable=None if run.ranks.main else True
    )
    for images, labels in bar:
        if augment:  # on the CPU, as the augmentations are PIL and numpy code
            images = augment_batch(images.cpu(), *augment)
        x, y = to_input(images, device), labels.to(device, non_blocking=True)
        with run.autocast:
            logits = run.model(x)
            loss = loss_fn(logits.float(), y)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        total_loss += loss.detach().double() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    seen = distributed.total(seen, device)
    loss_sum, hits = (distributed.total(v.item(), device) for v in (total_loss, correct))
    return loss_sum / seen, hits / seen


def recalibrate_batchnorm(
    model: nn.Module,
    images: Images,
    device: torch.device,
    batch_size: int,
    precision: str = "fp32",
    ranks: Ranks = Ranks(),  # noqa: B008 - frozen: one shared default is safe
    workers: int = 0,
) -> None:
    """Recompute BatchNorm running statistics as exact averages over the training images.

    With a few batches per epoch the running averages lag the fast-moving weights, and the
    eval-mode model can collapse to one class while the train-mode one is right ("precise BN",
    Wu and Johnson 2021). Training itself is unchanged. The batches are normalized as training
    sees them, and run in its autocast, so the statistics are of the activations training sees.
    Under torchrun each rank takes every world-th image of each batch; the global BatchNorm
    layers reduce the statistics across ranks, so they are those of the whole batch.
    """
    mine = batches(images, batch_size, ranks.rank, ranks.world, workers)
    # torch.optim.swa_utils.update_bn, but only for the layers that train: it would also reset
    # a backbone's frozen ones, which then normalise the pass with mean 0 and variance 1.
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.weight.requires_grad]
    momenta = {m: m.momentum for m in layers}
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average: the exact mean over every batch
    was_training = model.training
    model.train()
    with torch.no_grad(), autocast(device, precision):
        for batch in mine:
            model(to_input(batch, device))
    for layer, momentum in momenta.items():
        layer.momentum = momentum
    model.train(was_training)


def validate(scorer: Scorer, data: SplitData) -> tuple[np.ndarray, float, float]:
    """P(ai) of every validation picture, with their cross-entropy and accuracy at 0.5."""
    p_ai = scorer.proba(data.images)
    return (p_ai, *score(p_ai, data.labels))


def score(p_ai: np.ndarray, labels: torch.Tensor) -> tuple[float, float]:
    """Cross-entropy and accuracy (at 0.5) of P(ai) against labels."""
    y = labels.numpy()
    return log_loss(y, p_ai), float(np.mean((p_ai >= 0.5) == y))


def log_epoch(
    log: Any, train_loss: float, train_acc: float, val_loss: float, val_acc: float
) -> None:
    """One step of the DVCLive log: the epoch's losses and accuracies."""
    for name, value in [
        ("train/loss", train_loss),
        ("train/acc", train_acc),
        ("val/loss", val_loss),
        ("val/acc", val_acc),
    ]:
        log.log_metric(name, value)
    log.next_step()


@dataclass
class Best:
    """The epoch with the lowest validation loss so far."""

    val_loss: float = float("inf")
    epoch: int = 0
    state: dict[str, torch.Tensor] | None = None
    p_val: np.ndarray | None = None  # the threshold's input: no second pass over val


def train(
    splits: dict[str, SplitData],
    model_settings: ModelSettings,
    settings: TrainSettings,
    runtime: RuntimeSettings,
    seed: int,
    log: Any,
    augment: AugmentSettings | None = None,
) -> Fitted | None:
    """Train, keep the best epoch by validation loss, fix the threshold on validation.

    `log` is a DVCLive `Live` (or anything with log_metric/next_step/summary), None on ranks
    other than 0. With `augment.enabled`, each training batch is augmented with a per-epoch
    seeded generator. Validation runs as inference does (runtime.precision and batch_size), once,
    on rank 0, which alone returns what it made. Under torchrun every rank trains its share of
    each global batch through DistributedDataParallel (distributed.py).
    """
    train_data, val_data = splits["train"], splits["val"]
    run = setup(train_data, model_settings, settings, runtime, seed)
    ranks, device, raw_model = run.ranks, run.device, run.raw_model
    batch, workers = runtime.batch_size, settings.num_workers
    eval_precision = resolve_precision(runtime.precision, device)
    scorer = Scorer(raw_model, device, batch, eval_precision, workers)
    if ranks.main:
        announce(run, model_settings, train_data, val_data)
    best, started = Best(), time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        desc = f"epoch {epoch}/{settings.epochs}"
        if isinstance(run.loader.sampler, DistributedSampler):
            run.loader.sampler.set_epoch(epoch)
        rng = np.random.default_rng([seed, epoch, ranks.rank])
        aug = (augment, rng) if augment is not None and augment.enabled else None
        train_loss, train_acc = train_one_epoch(run, desc, aug)
        if settings.precise_bn:
            images = train_data.images
            recalibrate_batchnorm(raw_model, images, device, batch, run.precision, ranks, workers)
        if not ranks.main:
            continue
        p_val, val_loss, val_acc = validate(scorer, val_data)
        log_epoch(log, train_loss, train_acc, val_loss, val_acc)
        print(
            f"{desc}: train loss {train_loss:.4f} acc {train_acc:.3f} | "
            f"val loss {val_loss:.4f} acc {val_acc:.3f}"
        )
        if val_loss < best.val_loss:
            best = Best(val_loss, epoch, copy.deepcopy(raw_model.state_dict()), p_val)
    if not ranks.main:
        return None
    threshold = pick_threshold(settings, val_data.rows, best.p_val)
    seconds = round(time.perf_counter() - started, 1)
    per_second = round(settings.epochs * len(train_data) / seconds, 2)
    log.summary.update(
        best_epoch=best.epoch,
        best_val_loss=best.val_loss,
        seconds=seconds,
        images_per_second=per_second,
    )
    trained = Trained(
        epochs=settings.epochs,
        best_epoch=best.epoch,
        best_val_loss=best.val_loss,
        seed=seed,
        device=device_label(device),
        precision=run.precision,
        eval_precision=eval_precision,
        processes=ranks.world,
        generators=generators_in(train_data),
    )
    # Global BatchNorm layers keep plain BatchNorm's keys: the file loads into build_model's.
    state_dict = {k: v.cpu() for k, v in best.state.items()}
    return Fitted(state_dict, int(train_data.images.shape[-1]), threshold, trained)


def announce(
    run: Run, model_settings: ModelSettings, train_data: SplitData, val_data: SplitData
) -> None:
    """What trains, where, in what precision and on what: rank 0's first lines."""
    if model_settings.ignored():
        print(model_settings.ignored())
    processes = f" x {run.ranks.world} processes" if run.ranks.world > 1 else ""
    print(
        f"train: {model_settings.arch} ({count_parameters(run.raw_model):,} parameters) on "
        f"{device_label(run.device)}{processes} in {run.precision}, {len(train_data)} train / "
        f"{len(val_data)} val images from {', '.join(sorted(set(train_data.rows['source'])))}"
    )


def pick_threshold(settings: TrainSettings, val: pd.DataFrame, p_val: np.ndarray) -> float:
    """train.threshold: a rule applied to the validation pictures' (rows') scores, or a number."""
    y_val = (val["label"] == CLASS_NAMES[1]).to_numpy(int)
    if settings.threshold == "val":
        return choose_threshold(y_val, p_val)
    if settings.threshold == "val_generator":
        return choose_threshold(y_val, p_val, val["generator"].fillna("").to_numpy())
    if settings.threshold == "val_fpr":
        return threshold_at_fpr(y_val, p_val, settings.target_fpr)
    return float(settings.threshold)


def backbone_options(model_settings: ModelSettings) -> dict[str, str]:
    """build_model's part and pool, for the architectures that have them."""
    if model_settings.arch not in BACKBONES:
        return {}
    return {"part": model_settings.part, "pool": model_settings.pooling}


def train_head(
    splits: dict[str, SplitData],
    model_settings: ModelSettings,
    settings: TrainSettings,
    runtime: RuntimeSettings,
    seed: int,
    log: Any,
    augment: AugmentSettings,
    features_dir: Path,
) -> Fitted:
    """model.train head: the frozen trunk's features of train (and of augment.views augmented
    copies of each train picture) and val, through the store the
    features stage filled, then scikit-learn's logistic regression as the linear head. One
    process; validated, thresholded and recorded as `train` does, as one epoch."""
    seed_everything(seed)
    train_data, val_data = splits["train"], splits["val"]
    image_size = int(train_data.images.shape[-1])
    model, store, device, precision = trunk_and_store(
        model_settings, runtime, image_size, features_dir
    )
    started = time.perf_counter()
    embedded = fill(model, store, splits, {}, augment, seed, device, precision, runtime.batch_size)
    keep = generator_masks(splits, settings.generators)
    fitted = fit_head_on(
        model,
        embedded["train"],
        embedded.get("views"),
        splits["train"].rows,
        keep["train"],
        settings.head_c,
        settings.balance,
        seed,
    )
    splits = {name: data.take(keep[name]) for name, data in splits.items()}
    embedded = {name: embedded[name][torch.from_numpy(keep[name])] for name in splits}
    train_data, val_data = splits["train"], splits["val"]
    with torch.no_grad():
        logits = {name: model.head(embedded[name].to(device)).float() for name in splits}
    p = {name: torch.softmax(z, 1)[:, 1].cpu().numpy() for name, z in logits.items()}
    (train_loss, train_acc), (val_loss, val_acc) = (
        score(p[name], splits[name].labels) for name in ("train", "val")
    )
    log_epoch(log, train_loss, train_acc, val_loss, val_acc)
    print(
        f"train: {model_settings.arch} head ({count_parameters(model):,} parameters, "
        f"{model_settings.pool} pooling) on {fitted} feature rows ({store.read} read from "
        f"{features_dir}, {store.computed} computed) in {precision}, C {settings.head_c:g}, "
        f"{settings.balance} balance | train loss {train_loss:.4f} acc {train_acc:.3f} | val "
        f"loss {val_loss:.4f} acc {val_acc:.3f}"
    )
    threshold = pick_threshold(settings, val_data.rows, p["val"])
    seconds = round(time.perf_counter() - started, 1)
    per_second = round(len(train_data) / max(seconds, 1e-3), 2)
    log.summary.update(
        best_epoch=1, best_val_loss=val_loss, seconds=seconds, images_per_second=per_second
    )
    trained = Trained(
        epochs=1,
        best_epoch=1,
        best_val_loss=val_loss,
        seed=seed,
        device=device_label(device),
        precision=precision,
        eval_precision=precision,
        generators=generators_in(train_data),
    )
    state_dict = {k: v.cpu() for k, v in model.state_dict().items()}
    return Fitted(state_dict, image_size, threshold, trained)
