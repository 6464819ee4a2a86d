"""Ordered parallel map with a progress bar, shared by merge and standardize."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from multiprocessing import get_context
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def worker_count(requested: int) -> int:
    """0 means one worker per core."""
    return requested if requested > 0 else os.cpu_count() or 1


def parallel_map(
    fn: Callable[[T], R], items: Sequence[T], workers: int, desc: str, chunksize: int = 8
) -> list[R]:
    """Apply fn to every item in order; results come back in input order, so outputs are stable."""
    workers = min(worker_count(workers), max(len(items), 1))
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=None)
    try:
        if workers == 1:
            return [_tick(bar, fn(item)) for item in items]
        with get_context("spawn").Pool(workers) as pool:
            return [_tick(bar, r) for r in pool.imap(fn, items, chunksize=chunksize)]
    finally:
        bar.close()


def _tick(bar: tqdm, result: R) -> R:
    bar.update()
    return result
