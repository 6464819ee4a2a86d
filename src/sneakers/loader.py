"""Batches for the training loop. A split in memory is cut on the GPU under CUDA and on the CPU
by a DataLoader whose workers share the tensor, not copies; a streamed one is decoded from the
shards by the DataLoader's workers, each rank only its own images."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler, StackDataset

from sneakers import distributed
from sneakers.data import SplitData, cache
from sneakers.distributed import Ranks
from sneakers.errors import SneakersError
from sneakers.params import TrainSettings


class DeviceBatches:
    """Batches cut from a uint8 copy of the split kept on the GPU: no DataLoader, no
    host-to-device copy per step (173 KB per 240 px image: 2,000 images take 350 MB). Only for
    a split in memory (a tensor)."""

    def __init__(
        self,
        data: SplitData,
        sampler: Sampler,
        batch_size: int,
        device: torch.device,
        drop_last: bool,
    ) -> None:
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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
        print(
            f"train: {counts} images stream from the shards ({where}), decoded by "
            f"{settings.num_workers} DataLoader worker(s){hint}"
        )
    return kept


def make_loader(
    data: SplitData,
    settings: TrainSettings,
    device: torch.device,
    seed: int,
    ranks: Ranks = Ranks(),  # noqa: B008 - frozen: one shared default is safe
) -> DataLoader | DeviceBatches:
    """This rank's share of each shuffled global batch of train.batch_size images.

    Under torchrun (even one process) a DistributedSampler seeded by seed + epoch gives rank r
    every world-th image of each batch, so N processes train on the batches one process trains
    on; call `.sampler.set_epoch` to reshuffle."""
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
    return DataLoader(
        dataset,
        batch_size=local,
        sampler=sampler,
        generator=generator,
        num_workers=settings.num_workers,
        pin_memory=device.type == "cuda",
        drop_last=drop_last,
    )
