"""Target 1: images/s of the real training loop against the model's pure-compute ceiling (CPU).

    python benchmarks/train_throughput.py [--images 256] [--size 240] [--study-train]

Real loop: `sneakers.data.load_splits` on the standardized shared data, the first --images
images of the train split, `sneakers.train.setup` + `train_one_epoch` (seed_cnn, batch 32,
Adam, channels_last model, fp32, seeded and deterministic: what `train()` runs): decoding happened
once in load_splits, each epoch only indexes the uint8 tensor and normalizes on the fly.

Ceiling: the same model, optimizer and batch size on random tensors already in memory in the
layout the loop feeds (channels_last float): forward, loss, backward, step, nothing else.

Both run the same number of steps, after one warm-up step each (excluded), interleaved: the
real loader is wrapped so that one ceiling step runs (timed on its own, then subtracted from
the epoch's time) before each real batch is handed to `train_one_epoch`. A change in machine load
thus hits both alike. For reference it also times the study's loading style (torchvision
ImageFolder + PIL decode + Resize + ToTensor every epoch, no workers) against ours, loading
only; with --study-train it also trains the same number of steps on the study's loader.

With --size other than the standardized data's size, the raw images are standardized again at
that size into a temporary folder first (the split is reused: ids are content hashes).

The last line is real-loop images/s / ceiling images/s (bar: >= 0.9).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from _common import add_data_args, fail, load, machine, need_data, standardized_at
from torch import nn
from torch.utils.data import DataLoader, Subset

from sneakers.data import MEAN, STD, SplitData, cache, load_splits
from sneakers.inference import to_input
from sneakers.loader import make_loader
from sneakers.params import ModelSettings, RuntimeSettings, TrainSettings
from sneakers.train import setup, train_one_epoch


def head(data: SplitData, n: int) -> SplitData:
    """The first n images of a split (the loader shuffles them)."""
    return SplitData(data.images[:n], data.labels[:n], data.rows.iloc[:n].reset_index(drop=True))


class Ceiling:
    """Pure-compute training steps on tensors already in memory, each one timed."""

    def __init__(self, model, optimizer, x, y) -> None:
        self.model, self.optimizer, self.x, self.y = model, optimizer, x, y
        self.loss_fn = nn.CrossEntropyLoss()
        self.times: list[float] = []

    def step(self) -> None:
        started = time.perf_counter()
        self.model.train()
        logits = self.model(self.x)
        loss = self.loss_fn(logits.float(), self.y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        loss.item()
        self.times.append(time.perf_counter() - started)


class Interleaved:
    """The real loader, running one ceiling step before handing out each batch."""

    def __init__(self, loader: DataLoader, ceiling: Ceiling) -> None:
        self.loader, self.ceiling = loader, ceiling
        self.real_steps: list[float] = []  # from a batch handed out to the next request

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            self.ceiling.step()
            handed = time.perf_counter()
            yield batch
            self.real_steps.append(time.perf_counter() - handed)


def study_loader(raw: Path, n: int, size: int, batch_size: int, seed: int) -> DataLoader:
    """The study's data path: ImageFolder, PIL decode + Resize + ToTensor each epoch, no workers."""
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.ToTensor(),
            transforms.Normalize([MEAN] * 3, [STD] * 3),
        ]
    )
    folder = datasets.ImageFolder(str(raw), transform=tf)
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(seed))[:n]
    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        Subset(folder, order.tolist()),
        batch_size=batch_size,
        shuffle=True,
        generator=g,
        num_workers=0,
    )


def loading_only(loader, steps: int, prepare) -> float:
    """Images/s of pulling `steps` batches out of a loader and making model inputs of them."""
    seen, started = 0, time.perf_counter()
    for i, (images, _) in enumerate(loader):
        if i == steps:
            break
        prepare(images)
        seen += len(images)
    return seen / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_args(parser)
    parser.add_argument("--images", type=int, default=256, help="train images timed (0 = all)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--arch", default="seed_cnn")
    parser.add_argument("--study-train", action="store_true", help="also train on study batches")
    args = parser.parse_args()
    need_data(args)
    if args.images < 0 or args.batch_size < 2:
        fail("--images must be >= 0 and --batch-size >= 2")

    device = torch.device("cpu")
    settings = TrainSettings(batch_size=args.batch_size, num_workers=0, precision="fp32")
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        standardized = standardized_at(args.standardized, args.raw, args.size, Path(tmp))
        started = time.perf_counter()
        splits = load_splits(standardized, args.split)
        cache(splits)  # every split decoded into memory
        decode_s = time.perf_counter() - started
    full = splits["train"]
    train = head(full, args.images or len(full))
    run = setup(
        train, ModelSettings(arch=args.arch), settings, RuntimeSettings(device="cpu"), args.seed
    )
    model, optimizer, loader = run.model, run.optimizer, run.loader
    steps = len(loader)
    seen = sum(len(idx) for idx in loader.batch_sampler)  # images the epoch trains on
    if steps < 2:
        fail(f"--images {args.images} gives {steps} step(s): use at least 2 batches")
    print(machine())
    total = sum(len(s) for s in splits.values())
    print(
        f"load_splits: {total} images decoded once in {decode_s:.1f} s "
        f"({total / decode_s:.0f} images/s); {load()}"
    )
    print(
        f"{args.arch} at {args.size}px, batch {args.batch_size}, {steps} steps "
        f"({seen} of {len(full)} train images) + 1 warm-up step each"
    )

    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch_size, 3, args.size, args.size, generator=gen)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (args.batch_size,), generator=gen)

    # Warm-up, excluded: one ceiling step and one real-loop step (a one-batch epoch).
    ceiling = Ceiling(model, optimizer, x, y)
    ceiling.step()
    warm = make_loader(head(train, args.batch_size), settings, device, args.seed)
    train_one_epoch(replace(run, loader=warm), "warm-up")
    ceiling.times.clear()

    both = Interleaved(loader, ceiling)
    started = time.perf_counter()
    train_one_epoch(replace(run, loader=both), "real loop + ceiling")
    ceiling_s = sum(ceiling.times)
    real_s = time.perf_counter() - started - ceiling_s
    ceiling_ips = steps * args.batch_size / ceiling_s
    real = seen / real_s
    med = statistics.median
    print(
        f"ceiling:   {steps} steps, {ceiling_ips:.2f} images/s (step median "
        f"{med(ceiling.times):.2f} s, range {min(ceiling.times):.2f}-{max(ceiling.times):.2f})"
    )
    print(
        f"real loop: {steps} steps, {real:.2f} images/s (step median "
        f"{med(both.real_steps):.2f} s, range {min(both.real_steps):.2f}-"
        f"{max(both.real_steps):.2f}; with loading)  ({load()})"
    )

    # Reference: the study's loading style against ours, loading only (no model).
    if args.raw.exists():
        study = study_loader(args.raw, seen, args.size, args.batch_size, args.seed)
        ours = loading_only(loader, steps, lambda images: to_input(images, device))
        theirs = loading_only(
            study, steps, lambda images: images.contiguous(memory_format=torch.channels_last)
        )
        print(
            f"loading only: in-memory uint8 loader {ours:.0f} images/s, "
            f"study's ImageFolder+PIL+ToTensor {theirs:.0f} images/s"
        )
        if args.study_train:
            loss_fn = nn.CrossEntropyLoss()
            model.train()
            n, started = 0, time.perf_counter()
            for i, (images, labels) in enumerate(study):
                if i == steps:
                    break
                logits = model(images.contiguous(memory_format=torch.channels_last))
                loss = loss_fn(logits, labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss.item()
                n += len(labels)
            rate = n / (time.perf_counter() - started)
            print(f"study-style training loop, {steps} steps: {rate:.2f} images/s  ({load()})")
    else:
        print(f"(no raw images at {args.raw}: study-style reference skipped)")
    print(f"real loop / ceiling = {real / ceiling_ips:.3f} (bar >= 0.9)")


if __name__ == "__main__":
    main()
