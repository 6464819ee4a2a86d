"""A training log kept in memory, for callers of train() without DVCLive: tests, benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MemoryLog:
    """The part of DVCLive's `Live` that train() uses (log_metric, next_step, summary), keeping
    every (step, name, value) in `records` instead of writing files."""

    records: list[tuple[int, str, float]] = field(default_factory=list)
    step: int = 0
    summary: dict[str, Any] = field(default_factory=dict)

    def log_metric(self, name: str, value: float) -> None:
        self.records.append((self.step, name, value))

    def next_step(self) -> None:
        self.step += 1

    def values(self, name: str) -> list[float]:
        """Every value logged under name, in step order."""
        return [v for _, n, v in self.records if n == name]
