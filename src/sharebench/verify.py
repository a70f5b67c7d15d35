"""Verification after every round: what the workers issued vs what the shared object holds.

Appended items encode ``(worker + 1) << TAG_SHIFT | seq``, so a missing item, a duplicate and
a foreign value (a slot skipped or torn by a race) are told apart. Pure functions; the tag
encoding lives here, beside its decoding, and the mechanisms import it from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Bits of an appended item that hold the per-worker sequence number; the rest hold worker+1.
TAG_SHIFT = 40
SEQ_MASK = (1 << TAG_SHIFT) - 1


def worker_tag(worker: int) -> int:
    """The ``base`` of worker ``worker`` (0-based): its items are ``base + seq``."""
    return (worker + 1) << TAG_SHIFT


def worker_of(base: int) -> int:
    """The worker (0-based) whose tag is ``base``: the inverse of :func:`worker_tag`."""
    return (base >> TAG_SHIFT) - 1


@dataclass(frozen=True)
class RoundCheck:
    """Outcome of one round: ``lost`` counts issued operations whose effect is gone."""

    issued: int
    counted: int
    lost: int
    duplicates: int = 0
    invalid: int = 0
    #: Round-trip latency percentiles of the round (ping-pong), else None.
    latency: tuple[float, ...] | None = None
    #: Keys whose count came out wrong (dict-increment), for the description.
    keys_wrong: int = 0

    @property
    def clean(self) -> bool:
        """Nothing lost, duplicated or foreign: what a lock or atomic variant must give."""
        return self.lost == 0 and self.duplicates == 0 and self.invalid == 0

    def describe(self) -> str:
        """One phrase for an error status, e.g. ``'12 of 3000 lost, 1 duplicated'``."""
        parts = [f"{self.lost} of {self.issued} lost"]
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicated")
        if self.invalid:
            parts.append(f"{self.invalid} foreign values")
        if self.keys_wrong:
            parts.append(f"over {self.keys_wrong} keys")
        return ", ".join(parts)


def check_counter(issued: int, counted: int) -> RoundCheck:
    """A counter should have grown by exactly ``issued``; more than that is a duplicate."""
    if counted > issued:
        return RoundCheck(issued, counted, lost=0, duplicates=counted - issued)
    return RoundCheck(issued, counted, lost=issued - counted)


def check_reports(issued: int, reports: Sequence[Any]) -> RoundCheck:
    """Stores without a parent-visible counter: sum what each worker reported it counted."""
    counted = sum(int(r) for r in reports)
    return check_counter(issued, counted)


def check_items(items: Any, workers: int, ops_per_worker: int) -> RoundCheck:
    """Appended items against the ``workers × ops_per_worker`` that were issued."""
    import numpy as np

    arr = np.asarray(items, dtype=np.int64).ravel()
    tags = arr >> TAG_SHIFT
    seqs = arr & SEQ_MASK
    valid = (tags >= 1) & (tags <= workers) & (seqs < ops_per_worker)
    # Every valid item has a slot (worker, seq): count per slot in O(n) with bincount (a
    # million items take a few ms; sorting takes ~10x that, np.unique's hash path ~0.5 s).
    slots = (tags[valid] - 1) * ops_per_worker + seqs[valid]
    issued = workers * ops_per_worker
    counts = np.bincount(slots, minlength=issued)
    distinct = int(np.count_nonzero(counts))
    return RoundCheck(
        issued=issued,
        counted=distinct,
        lost=issued - distinct,
        duplicates=int(slots.size) - distinct,
        invalid=int(arr.size - slots.size),
    )


def check_counts(expected: Any, counted: Any) -> RoundCheck:
    """Per-key counts of a dict-increment against what was issued: a key short of its count
    lost updates, a key above it has duplicates (both summed over keys)."""
    import numpy as np

    exp = np.asarray(expected, dtype=np.int64)
    got = np.asarray(counted, dtype=np.int64)
    diff = exp - got
    return RoundCheck(
        issued=int(exp.sum()),
        counted=int(got.sum()),
        lost=int(diff[diff > 0].sum()),
        duplicates=int(-diff[diff < 0].sum()),
        keys_wrong=int(np.count_nonzero(diff)),
    )


def check_lookups(issued: int, wrong: Sequence[int]) -> RoundCheck:
    """Lookups: every read whose value was not its key's is a foreign value."""
    bad = sum(wrong)
    return RoundCheck(issued=issued, counted=issued - bad, lost=0, invalid=bad)


def check_echoes(issued: int, samples: Any, wrong: int) -> RoundCheck:
    """A ping-pong round: ``issued`` round trips, of which ``wrong`` came back changed, and
    the percentiles of their latencies (``samples``, nanoseconds)."""
    import numpy as np

    ns = np.asarray(samples, dtype=np.float64)
    if ns.size == 0:
        return RoundCheck(issued, issued - wrong, lost=0, invalid=wrong)
    q = [*np.quantile(ns, [0.5, 0.9, 0.99, 0.999]).tolist(), float(ns.max())]
    return RoundCheck(issued, issued - wrong, lost=0, invalid=wrong,
                      latency=tuple(float(x) / 1e9 for x in q))
