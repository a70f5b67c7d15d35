"""What the keyed operations share: reproducible key sequences and their verification.

``dict-increment``: each operation adds 1 to the value of a key drawn from ``spec.keys`` keys.
Worker ``w`` draws from its own seeded generator (:func:`key_sequence`), cycled, so the parent
knows exactly how often each key was incremented (:func:`expected_counts`) and checks every
key's count after each round: lost updates are counted per key and in total
(:func:`sharebench.verify.check_counts`). Stores read their counts, never reset them: a round's
increments are the difference from the counts before it (:class:`KeyedStore`).

``lookup``: the parent builds ``spec.keys`` entries ``key -> value(key)`` (:func:`lookup_keys`,
:func:`value_of`); each worker reads the keys in its own random order (a permutation, cycled,
so every entry is read once before any is read twice) and checks every value against the key
it was read for. The loop returns how many were wrong (:class:`LookupStore` counts them as
foreign values: a lookup that returns another key's value is broken).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from itertools import cycle, islice
from typing import Any, ClassVar

from sharebench.mechanisms.base import Store
from sharebench.verify import RoundCheck, check_counts, check_lookups

#: Length of a worker's dict-increment key sequence before it repeats.
SEQUENCE = 65536
_SEED = 20261129


def key_sequence(worker: int, keys: int, length: int = SEQUENCE) -> list[int]:
    """Worker ``worker``'s keys, in order (reproducible: the parent draws the same)."""
    import numpy as np

    rng = np.random.default_rng([_SEED, worker])
    return [int(k) for k in rng.integers(0, keys, size=length)]


def expected_counts(workers: int, keys: int, ops_per_worker: int,
                    length: int = SEQUENCE) -> Any:
    """How often each key is incremented when every worker runs ``ops_per_worker`` operations
    along its cycled sequence (an int64 array of ``keys`` counts)."""
    import numpy as np

    total = np.zeros(keys, dtype=np.int64)
    full, rest = divmod(ops_per_worker, length)
    for w in range(workers):
        seq = np.asarray(key_sequence(w, keys, length), dtype=np.int64)
        total += full * np.bincount(seq, minlength=keys)
        total += np.bincount(seq[:rest], minlength=keys)
    return total


class KeyedStore(Store):
    """A dict-increment store: subclasses read every key's current count; the round's
    increments are the difference from the counts before it."""

    #: A dict increment from Python costs at least ~100 ns; this bounds every worker count.
    max_rate: ClassVar[float] = 1e7

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self._before: Any = None
        self._expected: dict[int, Any] = {}

    def read_counts(self) -> Sequence[int]:
        """Parent side: the count of every key, 0 .. keys - 1."""
        raise NotImplementedError

    def start_counts(self) -> None:
        """Remember the counts before the first round (call at the end of ``__init__``)."""
        import numpy as np

        self._before = np.asarray(self.read_counts(), dtype=np.int64)

    def collect(self, ops_per_worker: int, reports: Sequence[Any]) -> RoundCheck:
        """Every key's increments this round against what the workers' sequences issued."""
        import numpy as np

        now = np.asarray(self.read_counts(), dtype=np.int64)
        done, self._before = now - self._before, now
        expected = self._expected.get(ops_per_worker)
        if expected is None:
            expected = expected_counts(self.spec.workers, self.spec.keys, ops_per_worker)
            self._expected = {ops_per_worker: expected}  # k is the same in every round
        return check_counts(expected, done)


# --------------------------------------------------------------------------------------
# Lookups


def lookup_keys(entries: int) -> list[int]:
    """The keys of a lookup table: sparse (not 0..N-1, so a lookup must search), sorted."""
    return [3 + 7 * i for i in range(entries)]


def value_of(key: int) -> bytes:
    """The value stored for ``key``: 8 bytes that say which key they belong to."""
    return key.to_bytes(8, "little")


def lookup_order(worker: int, entries: int) -> array[int]:
    """Worker ``worker``'s keys in its own random order: every entry once, then again."""
    import numpy as np

    rng = np.random.default_rng([_SEED, 7, worker])
    return array("q", (3 + 7 * rng.permutation(entries)).tolist())


class LookupStore(Store):
    """A lookup store: the loop returns how many values were wrong; nothing to read back."""

    max_rate: ClassVar[float] = 5e7

    def collect(self, ops_per_worker: int, reports: Sequence[Any]) -> RoundCheck:
        """Every worker read ``ops_per_worker`` values; count the wrong ones."""
        return check_lookups(ops_per_worker * self.spec.workers, [int(r) for r in reports])


# --------------------------------------------------------------------------------------
# The loops of anything that looks like a dict (the mapping is the mechanism; the loop is the
# same ``d[key] += 1`` or ``d[key]`` whichever library stands behind the subscription).


def mapping_increment(local: Any, k: int, base: int) -> None:
    """``d[key] += 1`` along the worker's key sequence, no lock: a read and a write."""
    d, _lock, seq = local
    for key in islice(cycle(seq), k):
        d[key] += 1


def mapping_increment_locked(local: Any, k: int, base: int) -> None:
    """The same under the store's lock (whatever lock the mechanism provides)."""
    d, lock, seq = local
    for key in islice(cycle(seq), k):
        with lock:
            d[key] += 1


def mapping_lookup(local: Any, k: int, base: int) -> int:
    """``d[key]`` along the worker's order, checked against the key; returns the wrong ones."""
    d, order = local[0], local[1]
    from_bytes = int.from_bytes
    wrong = 0
    for key in islice(cycle(order), k):
        if from_bytes(d[key], "little") != key:
            wrong += 1
    return wrong
