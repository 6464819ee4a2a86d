"""The training loop: read it top to bottom.

Seeded and deterministic for a seed, a device and a precision. `train.precision: auto` trains in
bf16 autocast where the hardware computes bf16 (CUDA, or a CPU with AMX-BF16 or AVX512-BF16) and
in fp32 elsewhere; channels_last everywhere. Train and val are decoded once into uint8 tensors
where they fit train.memory_gb (on CUDA the train split then lives on the GPU and batches are cut
there, so no step waits for a host copy); above it DataLoader workers decode each batch from the
shards, the same batches in the same order, so the model is the same. The epoch with the lowest
validation loss is kept, and the decision threshold is fixed on validation data, never on test.
"""

from __future__ import annotations

import copy
import gc
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.utils.deterministic
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler, StackDataset
from tqdm import tqdm

from sneakers import distributed
from sneakers.artifact import Fitted, Trained
from sneakers.data import (
    CLASS_NAMES,
    Images,
    SplitData,
    batches,
    cache,
    generator_masks,
    generators_in,
)
from sneakers.distributed import Ranks
from sneakers.errors import SneakersError
from sneakers.features import FeatureStore, fill, fit_head_on, frozen_backbone, trunk_id
from sneakers.inference import (
    autocast,
    device_label,
    predict_proba,
    resolve_device,
    resolve_precision,
    to_input,
)
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


class DeviceBatches:
    """Batches cut from a uint8 copy of the split kept on the GPU: no DataLoader, no
    host-to-device copy per step (173 KB per 240 px image: 2,000 images take 350 MB). Only for
    a split in memory (a tensor)."""

    def __init__(self, data: SplitData, sampler: Sampler, batch_size: int, device: torch.device,
                 drop_last: bool) -> None:  # fmt: skip
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        order = torch.tensor(list(self.sampler), device=self.images.device)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.images[index], self.labels[index]


def keep_in_memory(splits: dict[str, SplitData], settings: TrainSettings) -> bool:
    """Decode the splits into memory if they fit train.memory_gb (every process on this node
    holds a copy), else leave them to stream; say which, once."""
    processes = settings.nproc_per_node
    gib = sum(s.images.nbytes for s in splits.values()) * processes / 2**30
    main = distributed.is_main()
    kept = cache(splits, settings.memory_gb * 2**30 / processes, show=main)
    counts = " + ".join(f"{len(s)} {name}" for name, s in splits.items())
    where = f"{gib:.2f} GiB for {processes} process(es), train.memory_gb {settings.memory_gb:g}"
    if main and kept:
        print(f"train: {counts} images decoded into memory ({where})")
    elif main:
        hint = "" if settings.num_workers else ": set train.num_workers to decode while it trains"
        print(f"train: {counts} images stream from the shards ({where}), decoded by "
              f"{settings.num_workers} DataLoader worker(s){hint}")  # fmt: skip
    return kept


def make_loader(
    data: SplitData,
    settings: TrainSettings,
    device: torch.device,
    seed: int,
    ranks: Ranks = Ranks(),  # noqa: B008 - frozen: one shared default is safe
) -> DataLoader | DeviceBatches:
    """This rank's share of each shuffled global batch of train.batch_size images. Under
    torchrun (even one process) a DistributedSampler seeded by seed + epoch (`.sampler.set_epoch`
    reshuffles) gives rank r every world-th image of each batch, so N processes train on the
    batches one torchrun process trains on; a plain process keeps the seeded shuffle of every
    earlier model. A split in memory is cut on the GPU under CUDA, and on the CPU by a DataLoader
    whose workers share the tensor, not copies; a streamed one is read by the DataLoader's
    workers, each rank only its own images."""
    if settings.batch_size % ranks.world:
        raise SneakersError(
            f"train.batch_size: {settings.batch_size} is not divisible by "
            f"train.nproc_per_node {ranks.world} (it is the global batch, split across ranks)"
        )
    dataset = StackDataset(data.images, data.labels)
    local = settings.batch_size // ranks.world
    drop_last = len(data) % settings.batch_size == 1  # BatchNorm cannot train on 1 image
    generator = torch.Generator().manual_seed(seed)  # CPU: the same order on any GPU
    if distributed.launched():
        sampler = DistributedSampler(dataset, ranks.world, ranks.rank, shuffle=True, seed=seed)
    else:
        sampler = RandomSampler(dataset, generator=generator)
    if device.type == "cuda" and isinstance(data.images, torch.Tensor):
        return DeviceBatches(data, sampler, local, device, drop_last)
    if settings.num_workers:
        # Workers fork each epoch; a garbage collection in one writes to every object it scans,
        # copying each page that holds one (~110 MiB a worker here). Frozen objects are not
        # scanned, as Python's gc docs advise before fork() (docs/performance.md, section 6).
        gc.freeze()
    # The loader also draws its workers' seeds from the generator, as every earlier run had it,
    # once per epoch: persistent workers would draw once per run, and then the shuffle of every
    # later epoch (drawn from the same generator) would depend on train.num_workers.
    return DataLoader(dataset, batch_size=local, sampler=sampler, generator=generator,
                      num_workers=settings.num_workers, pin_memory=device.type == "cuda",
                      drop_last=drop_last)  # fmt: skip


def train_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    precision: str,
    desc: str,
    augment: tuple[AugmentSettings, np.random.Generator] | None = None,
    show: bool = True,
) -> tuple[float, float]:
    """One pass over the training data; returns mean loss and accuracy over every rank."""
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    # The sums stay on the device and are read once: reading them every step would make the CPU
    # wait for the GPU each step. float64, so CPU results are the same as summing floats.
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    bar = tqdm(loader, desc=desc, unit="batch", leave=False, disable=None if show else True)
    for images, labels in bar:
        if augment:  # on the CPU, as the augmentations are PIL and numpy code
            images = augment_batch(images.cpu(), *augment)
        x, y = to_input(images, device), labels.to(device, non_blocking=True)
        with autocast(device, precision):
            logits = model(x)
            loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
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


def score(p_ai: np.ndarray, labels: torch.Tensor) -> tuple[float, float]:
    """Cross-entropy and accuracy (at 0.5) of P(ai) against labels."""
    y = labels.numpy()
    return log_loss(y, p_ai), float(np.mean((p_ai >= 0.5) == y))


def log_epoch(log: Any, train_loss: float, train_acc: float, val_loss: float,
              val_acc: float) -> None:  # fmt: skip
    """One step of the DVCLive log: the epoch's losses and accuracies."""
    for name, value in [("train/loss", train_loss), ("train/acc", train_acc),
                        ("val/loss", val_loss), ("val/acc", val_acc)]:  # fmt: skip
        log.log_metric(name, value)
    log.next_step()


def train(
    splits: dict[str, SplitData],
    net: ModelSettings,
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
    seed_everything(seed)
    ranks, device = distributed.join(runtime.device)
    train_data, val_data = splits["train"], splits["val"]
    image_size = int(train_data.images.shape[-1])
    model = build_model(net.arch, image_size, input=net.input, **backbone_options(net))
    model = model.to(device, memory_format=torch.channels_last)
    say = print if ranks.main else (lambda *_: None)  # rank 0 alone prints
    if ranks.world > 1:
        model = distributed.global_batchnorm(model, device)
    net_module = model  # validated, recalibrated and saved; `model` is what steps train
    if ranks.world > 1:
        model = DistributedDataParallel(model, [device.index] if device.type == "cuda" else None)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS[settings.optimizer](
        trainable, lr=settings.lr, weight_decay=settings.weight_decay
    )
    loader = make_loader(train_data, settings, device, seed, ranks)
    precision = resolve_precision(settings.precision, device)
    eval_precision = resolve_precision(runtime.precision, device)
    eval_batch = runtime.batch_size
    on = device_label(device) + (f" x {ranks.world} processes" if ranks.world > 1 else "")
    if net.ignored():
        say(net.ignored())
    say(f"train: {net.arch} ({count_parameters(net_module):,} parameters) on {on} "
        f"in {precision}, {len(train_data)} train / {len(val_data)} val images "
        f"from {', '.join(sorted(set(train_data.rows['source'])))}")  # fmt: skip
    best: dict[str, Any] = {"val_loss": float("inf")}
    started = time.perf_counter()
    for epoch in range(1, settings.epochs + 1):
        desc = f"epoch {epoch}/{settings.epochs}"
        rng = np.random.default_rng([seed, epoch, ranks.rank])
        aug = (augment, rng) if augment is not None and augment.enabled else None
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        train_loss, train_acc = train_epoch(model, loader, optimizer, device, precision, desc, aug,
                                            ranks.main)  # fmt: skip
        if settings.precise_bn:
            recalibrate_batchnorm(net_module, train_data.images, device, eval_batch, precision,
                                  ranks, settings.num_workers)  # fmt: skip
        if not ranks.main:
            continue
        p_val = predict_proba(net_module, val_data.images, device, eval_batch, eval_precision,
                              settings.num_workers)  # fmt: skip
        val_loss, val_acc = score(p_val, val_data.labels)
        log_epoch(log, train_loss, train_acc, val_loss, val_acc)
        say(f"{desc}: train loss {train_loss:.4f} acc {train_acc:.3f} | "
            f"val loss {val_loss:.4f} acc {val_acc:.3f}")  # fmt: skip
        if val_loss < best["val_loss"]:
            best = {
                "val_loss": val_loss,
                "epoch": epoch,
                "state": copy.deepcopy(net_module.state_dict()),
                "p_val": p_val,  # the threshold's input: no second pass over val
            }
    if not ranks.main:
        return None
    threshold = pick_threshold(settings, val_data.rows, best["p_val"])
    seconds = round(time.perf_counter() - started, 1)
    log.summary.update(
        best_epoch=best["epoch"],
        best_val_loss=best["val_loss"],
        seconds=seconds,
        images_per_second=round(settings.epochs * len(train_data) / seconds, 2),
    )
    trained = Trained(epochs=settings.epochs, best_epoch=best["epoch"],
                      best_val_loss=best["val_loss"], seed=seed, device=device_label(device),
                      precision=precision, eval_precision=eval_precision,
                      processes=ranks.world, generators=generators_in(train_data))  # fmt: skip
    # Global BatchNorm layers keep plain BatchNorm's keys: the file loads into build_model's.
    state_dict = {k: v.cpu() for k, v in best["state"].items()}
    return Fitted(state_dict, image_size, float(threshold), trained)


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


def backbone_options(net: ModelSettings) -> dict[str, str]:
    """build_model's part and pool, for the architectures that have them."""
    return {"part": net.part, "pool": net.pooling} if net.arch in BACKBONES else {}


def train_head(
    splits: dict[str, SplitData],
    net: ModelSettings,
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
    device = resolve_device(runtime.device)
    precision = resolve_precision(runtime.precision, device)
    train_data, val_data = splits["train"], splits["val"]
    image_size = int(train_data.images.shape[-1])
    model = frozen_backbone(net, image_size, device)
    store = FeatureStore(features_dir, trunk_id(model, net.arch, device, precision))
    started = time.perf_counter()
    embedded = fill(model, store, splits, {}, augment, seed, device, precision,
                    runtime.batch_size)  # fmt: skip
    keep = generator_masks(splits, settings.generators)
    fitted = fit_head_on(model, embedded["train"], embedded.get("views"), splits["train"].rows,
                         keep["train"], settings.head_c, settings.balance, seed)  # fmt: skip
    splits = {name: data.take(keep[name]) for name, data in splits.items()}
    embedded = {name: embedded[name][torch.from_numpy(keep[name])] for name in splits}
    train_data, val_data = splits["train"], splits["val"]
    with torch.no_grad():
        p = {name: torch.softmax(model.head(embedded[name].to(device)).float(), 1)[:, 1]
             .cpu().numpy() for name in splits}  # fmt: skip
    (train_loss, train_acc), (val_loss, val_acc) = (
        score(p[name], splits[name].labels) for name in ("train", "val")
    )
    log_epoch(log, train_loss, train_acc, val_loss, val_acc)
    print(f"train: {net.arch} head ({count_parameters(model):,} parameters, {net.pool} pooling) "
          f"on {fitted} feature rows ({store.read} read from {features_dir}, "
          f"{store.computed} computed) in {precision}, C {settings.head_c:g}, "
          f"{settings.balance} balance | train loss {train_loss:.4f} acc {train_acc:.3f} | val "
          f"loss {val_loss:.4f} acc {val_acc:.3f}")  # fmt: skip
    threshold = pick_threshold(settings, val_data.rows, p["val"])
    seconds = round(time.perf_counter() - started, 1)
    per_second = round(len(train_data) / max(seconds, 1e-3), 2)
    log.summary.update(best_epoch=1, best_val_loss=val_loss, seconds=seconds,
                       images_per_second=per_second)  # fmt: skip
    trained = Trained(epochs=1, best_epoch=1, best_val_loss=val_loss, seed=seed,
                      device=device_label(device), precision=precision,
                      eval_precision=precision, generators=generators_in(train_data))  # fmt: skip
    state_dict = {k: v.cpu() for k, v in model.state_dict().items()}
    return Fitted(state_dict, image_size, threshold, trained)
