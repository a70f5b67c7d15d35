"""Store bases shared by the families: a counter store and an append (items) store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from sharebench.mechanisms.base import Store
from sharebench.verify import RoundCheck, check_counter, check_items, check_reports


class Counter:
    """A plain Python object with one int attribute ``n``: what ``obj.n += 1`` increments."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class CounterStore(Store):
    """Increment benchmarks: one shared counter the parent reads and zeroes between rounds."""

    def collect(self, ops_per_worker: int, reports: Sequence[Any]) -> RoundCheck:
        """Compare the counter with what was issued, then zero it."""
        issued = ops_per_worker * self.spec.workers
        check = check_counter(issued, self.read_counter())
        self.reset()
        return check


class ItemStore(Store):
    """Append benchmarks: a shared list-like the parent reads back and empties between rounds."""

    #: Appends are slower than increments; sizing uses this bound.
    max_rate: ClassVar[float] = 1e7

    def collect(self, ops_per_worker: int, reports: Sequence[Any]) -> RoundCheck:
        """Check every appended item (worker, sequence), then empty the store."""
        check = check_items(self.read_items(), self.spec.workers, ops_per_worker)
        self.reset()
        return check


class LocalStore(Store):
    """Nothing shared: each worker counts locally and reports its count after the round."""

    def collect(self, ops_per_worker: int, reports: Sequence[Any]) -> RoundCheck:
        """Sum of the counts the workers reported."""
        return check_reports(ops_per_worker * self.spec.workers, reports)
