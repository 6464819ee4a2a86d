"""parallel_map: results in input order from a real process pool, errors raised, bar by count."""

from __future__ import annotations

import os
import signal
import time

import pytest

from sneakers.errors import run_main
from sneakers.parallel import parallel_map


def slow_square(x: int) -> int:
    time.sleep(0.002 * (x % 3))  # finish out of order
    return x * x


def boom(x: int) -> int:
    if x == 7:
        raise ValueError("seven")
    return x


def pid(_: int) -> int:
    return os.getpid()


@pytest.mark.parametrize("workers", [1, 3])
def test_results_come_in_input_order(workers: int) -> None:
    items = list(range(40))
    assert list(parallel_map(slow_square, items, workers, "test", 2)) == [x * x for x in items]


def test_work_runs_in_other_processes() -> None:
    assert os.getpid() not in set(parallel_map(pid, list(range(16)), 2, "test", 1))


@pytest.mark.parametrize("workers", [1, 2])
def test_an_error_in_a_worker_reaches_the_caller(workers: int) -> None:
    with pytest.raises(ValueError, match="seven"):
        list(parallel_map(boom, list(range(20)), workers, "test"))


def test_results_stream_before_the_last_item_is_done() -> None:
    """The caller gets the first result while later ones are still running."""
    results = parallel_map(slow_square, list(range(10)), 1, "test")
    assert next(results) == 0
    results.close()


def sigterm_disposition(_: int) -> object:
    return signal.getsignal(signal.SIGTERM)


def test_workers_take_sigterm_as_the_kernel_does_under_run_main() -> None:
    """run_main turns SIGTERM into an interrupt with a Python handler; a pool worker blocked on
    the task queue's lock could not run it, and Pool.terminate then waited for it forever."""
    seen: list[object] = []

    def main() -> None:
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # run_main's handler
        seen.extend(parallel_map(sigterm_disposition, range(4), workers=2, desc="t", chunksize=1))

    run_main(main)
    assert seen == [signal.SIG_DFL] * 4
