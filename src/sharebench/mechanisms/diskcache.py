"""diskcache (``pip install diskcache``): a dict in SQLite, in a directory every process opens.

A ``diskcache.Cache`` is an SQLite database (WAL journal, ``synchronous=NORMAL``: the
library's defaults, kept — they are what its users get) plus files for large values. Every
operation is an SQLite statement through the process's own connection; writers are
serialised by SQLite's database lock.

* ``diskcache/atomic`` dict-increment: ``cache.incr(key)`` — a read and an update in one SQLite
  transaction (``BEGIN IMMEDIATE``), atomic across processes.
* ``diskcache/atomic`` increment: ``cache.incr("counter")``, the same on one key.
* ``diskcache/none`` lookup: ``cache.get(key)`` on N entries, checked. A read is one
  ``SELECT`` and writes nothing (the default eviction policy, least-recently-stored, keeps no
  access times), so no lock is taken.

The database lives in ``lifecycle.run_dir(run, "diskcache")`` (``sharebench clean`` removes it
if the run is killed); ``close()`` closes the parent's cache and removes the directory. Each
worker opens a ``Cache`` of its own in ``attach`` (an SQLite connection must not cross a
fork; diskcache would reconnect by itself when it sees a new pid, but this says so).
"""

from __future__ import annotations

from itertools import cycle, islice, repeat
from pathlib import Path
from typing import Any, ClassVar

from sharebench import lifecycle
from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.counters import CounterStore
from sharebench.mechanisms.keyed import (
    KeyedStore,
    LookupStore,
    key_sequence,
    lookup_keys,
    lookup_order,
    value_of,
)

REQUIREMENT = "diskcache>=5.6"
#: The key of the increment store's counter.
COUNTER = "counter"


def _cache(directory: str) -> Any:
    try:
        import diskcache
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "diskcache":
            raise Unavailable(f"diskcache is not installed (pip install {REQUIREMENT})") from None
        raise Unavailable(f"diskcache cannot be imported ({exc})") from None
    return diskcache.Cache(directory)


class _CacheStore:
    """Parent side: a Cache in a run directory, closed and removed in ``close()``."""

    spec: StoreSpec
    cache: Any
    directory: Path | None

    def _open(self, spec: StoreSpec) -> None:
        self.cache, self.directory = None, None
        directory = lifecycle.run_dir(spec.run_token, "diskcache")
        self.directory = directory
        try:
            self.cache = _cache(str(directory))
        except BaseException:
            self.close()
            raise

    def _fill(self, items: Any) -> None:
        cache = self.cache
        try:
            # no culling while loading (25 -> 15 us per set, measured; 1,000,000 entries
            # still take ~15 s): the benchmark's own reads and updates of existing keys never
            # cull, so only the load is affected
            cull_limit = cache.reset("cull_limit", 0)
            with cache.transact():  # one transaction for the whole load
                for key, value in items:
                    cache.set(key, value)
            cache.reset("cull_limit", cull_limit)
        except BaseException:
            self.close()
            raise

    def handles(self) -> tuple[Any, ...]:
        return (str(self.directory), self.spec.keys)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        directory, keys = handles
        cache = _cache(directory)  # the worker's own connection
        cache.get(COUNTER)  # connect now: the first timed operation must not pay for it
        return (cache, keys)

    @staticmethod
    def detach(local: Any) -> None:
        local[0].close()

    def close(self) -> None:
        cache, self.cache = self.cache, None
        directory, self.directory = self.directory, None
        try:
            if cache is not None:
                cache.close()
        finally:
            if directory is not None:
                lifecycle.remove_run_dir(directory)


class CacheCounterStore(_CacheStore, CounterStore):
    """One integer under :data:`COUNTER`, zeroed with ``set`` between rounds."""

    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._open(spec)
        self._fill([(COUNTER, 0)])

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        return _CacheStore.attach(handles)[0]

    def read_counter(self) -> int:
        return int(self.cache.get(COUNTER))

    def reset(self) -> None:
        self.cache.set(COUNTER, 0)


def diskcache_incr(local: Any, k: int, base: int) -> None:
    """``cache.incr("counter")``: one SQLite transaction, atomic."""
    incr = local.incr
    for _ in repeat(None, k >> 2):  # unrolled x4 like the other increment loops
        incr(COUNTER)
        incr(COUNTER)
        incr(COUNTER)
        incr(COUNTER)
    for _ in repeat(None, k & 3):
        incr(COUNTER)


class CacheCountersStore(_CacheStore, KeyedStore):
    """K integer keys ``0 .. K-1``, all set to 0 first (an increment then only updates)."""

    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._open(spec)
        self._fill((key, 0) for key in range(spec.keys))
        self.start_counts()

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        cache, keys = local
        return (cache, key_sequence(worker, keys))

    def read_counts(self) -> list[int]:
        get = self.cache.get
        return [int(get(k)) for k in range(self.spec.keys)]


def diskcache_dict_incr(local: Any, k: int, base: int) -> None:
    """``cache.incr(key)``: a read and an update in one SQLite transaction, atomic."""
    cache, seq = local
    incr = cache.incr
    for key in islice(cycle(seq), k):
        incr(key)


class CacheLookupStore(_CacheStore, LookupStore):
    """N entries ``key -> value_of(key)`` (8-byte values: stored in the row, not in files)."""

    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._open(spec)
        self._fill((key, value_of(key)) for key in lookup_keys(spec.keys))

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        cache, entries = local
        return (cache, lookup_order(worker, entries))


def diskcache_lookup(local: Any, k: int, base: int) -> int:
    """``cache.get(key)`` (one SELECT), checked; a missing key counts as wrong."""
    cache, order = local
    get = cache.get
    from_bytes = int.from_bytes
    wrong = 0
    for key in islice(cycle(order), k):
        value = get(key)
        if value is None or from_bytes(value, "little") != key:
            wrong += 1
    return wrong


MECHANISMS = (
    Mechanism("diskcache", "atomic", "increment", "diskcache", CacheCounterStore,
              diskcache_incr, "diskcache Cache.incr on one key: an SQLite transaction"),
    Mechanism("diskcache", "atomic", "dict-increment", "diskcache", CacheCountersStore,
              diskcache_dict_incr,
              "diskcache Cache.incr(key) on K keys: an SQLite transaction each"),
    Mechanism("diskcache", "none", "lookup", "diskcache", CacheLookupStore, diskcache_lookup,
              "diskcache Cache of N entries (SQLite): cache.get(key), checked"),
)
