"""LMDB (``pip install lmdb``): a memory-mapped B+tree that every process maps from one file.

Readers read the mapped pages directly inside a read transaction (an MVCC snapshot: no lock,
no copy beyond the value handed to Python); writers take one environment-wide write lock (a
mutex in ``lock.mdb``), so LMDB runs one write transaction at a time, across processes.

* ``lmdb/none`` lookup: ``txn.get(key)`` on N entries, checked. Each worker reads inside *one*
  read transaction per round (begun in the timed loop, so its cost is counted, spread over the
  round's k reads). That is the fair choice here: the table never changes, so a snapshot per
  lookup would return exactly the same values, and the other lookups (a dict, a table in shared
  memory) pay nothing per read either. A transaction per lookup adds LMDB's reader-slot
  bookkeeping (``begin``/``abort``) to every read: measured here at 100,000 entries, ~370 ns
  per read in one transaction, ~670 ns with a transaction each.
* ``lmdb/atomic`` dict-increment: a write transaction per increment (``get``, ``put``,
  commit). LMDB serialises write transactions, so the read-modify-write is atomic.

The environment is opened with ``sync=False, metasync=False``: a commit then does not flush
the file to disk. Durability is not what the benchmark measures — with ``sync=True`` every
increment waits for an ``fdatasync`` (milliseconds; the disk, not the sharing, would be
measured) — and the database is deleted with the run anyway. ``map_size`` (the largest the
database may grow; a sparse reservation, not memory) is sized from ``spec.keys``.

Fork: an LMDB environment must not be used in a child it was open in before the fork, and
py-lmdb refuses to open a path a second time in one process ("already open in this
process") — which a forked child's inherited handle would be. So the parent never keeps the
environment open while workers start: it opens it to fill it and closes it, and opens it again
only briefly to read the counts between rounds. Each worker opens its own in ``attach``.
The files live in ``lifecycle.run_dir(run, "lmdb")``, removed in ``close()``.
"""

from __future__ import annotations

from itertools import cycle, islice
from pathlib import Path
from typing import Any, ClassVar

from sharebench import lifecycle
from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.keyed import (
    KeyedStore,
    LookupStore,
    key_sequence,
    lookup_keys,
    lookup_order,
    value_of,
)

REQUIREMENT = "lmdb>=3"
#: ``map_size`` per entry (8-byte keys and values take ~26 bytes of a page; a write
#: transaction copies the pages it changes), and the least map size.
_BYTES_PER_ENTRY = 256
_MIN_MAP = 64 << 20


def open_env(path: str, map_size: int) -> Any:
    """Open the environment at ``path`` (a directory) without flushing commits to disk."""
    try:
        import lmdb
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "lmdb":
            raise Unavailable(f"lmdb is not installed (pip install {REQUIREMENT})") from None
        raise Unavailable(f"lmdb cannot be imported ({exc})") from None
    return lmdb.open(path, map_size=map_size, subdir=True, max_dbs=0, lock=True,
                     sync=False, metasync=False)


def key_bytes(key: int) -> bytes:
    """A key as LMDB stores it: big-endian, so the B+tree orders keys as numbers."""
    return key.to_bytes(8, "big")


class _EnvStore:
    """Parent side: the environment's directory; the environment itself only while used."""

    spec: StoreSpec
    directory: Path | None

    def _create(self, spec: StoreSpec, items: list[tuple[bytes, bytes]]) -> None:
        self.directory = None
        self.map_size = max(_MIN_MAP, _BYTES_PER_ENTRY * spec.keys)
        self.directory = lifecycle.run_dir(spec.run_token, "lmdb")
        try:
            env = open_env(str(self.directory), self.map_size)
            try:
                with env.begin(write=True) as txn:
                    # keys come sorted: append=True writes the pages full, in order
                    txn.cursor().putmulti(items, append=True)
            finally:
                env.close()  # never open in the parent while workers fork
        except BaseException:
            self.close()
            raise

    def handles(self) -> tuple[Any, ...]:
        return (str(self.directory), self.map_size, self.spec.keys)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        path, map_size, keys = handles
        return (open_env(path, map_size), keys)  # the worker's own environment

    @staticmethod
    def detach(local: Any) -> None:
        local[0].close()

    def close(self) -> None:
        directory, self.directory = self.directory, None
        if directory is not None:
            lifecycle.remove_run_dir(directory)


class LmdbCountersStore(_EnvStore, KeyedStore):
    """K counters: key ``key_bytes(k)``, value an 8-byte little-endian count."""

    max_rate: ClassVar[float] = 2e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        zero = (0).to_bytes(8, "little")
        self._create(spec, [(key_bytes(k), zero) for k in range(spec.keys)])
        self.start_counts()

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        env, keys = local
        return (env, [key_bytes(k) for k in key_sequence(worker, keys)])

    def read_counts(self) -> list[int]:
        assert self.directory is not None
        env = open_env(str(self.directory), self.map_size)  # briefly: see the module docs
        try:
            with env.begin() as txn:
                get = txn.get
                return [int.from_bytes(get(key_bytes(k)), "little")
                        for k in range(self.spec.keys)]
        finally:
            env.close()


def lmdb_txn_incr(local: Any, k: int, base: int) -> None:
    """A write transaction per increment: ``put(key, get(key) + 1)``, committed."""
    env, seq = local
    begin = env.begin
    from_bytes = int.from_bytes
    for key in islice(cycle(seq), k):
        with begin(write=True) as txn:
            txn.put(key, (from_bytes(txn.get(key), "little") + 1).to_bytes(8, "little"))


class LmdbLookupStore(_EnvStore, LookupStore):
    """N entries ``key_bytes(key) -> value_of(key)``."""

    max_rate: ClassVar[float] = 2e7

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._create(spec, [(key_bytes(key), value_of(key)) for key in lookup_keys(spec.keys)])

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        env, entries = local
        return (env, lookup_order(worker, entries))


def lmdb_lookup(local: Any, k: int, base: int) -> int:
    """``txn.get(key)`` in one read transaction per round, checked; a missing key is wrong.

    The key's bytes are made here, per read: LMDB takes bytes keys, so that is part of using
    it with these keys (a list of them per worker would cost ~50 MB at 1,000,000 entries)."""
    env, order = local
    from_bytes = int.from_bytes
    wrong = 0
    with env.begin() as txn:  # one snapshot per round: see the module docstring
        get = txn.get
        for key in islice(cycle(order), k):
            value = get(key.to_bytes(8, "big"))
            if value is None or from_bytes(value, "little") != key:
                wrong += 1
    return wrong


MECHANISMS = (
    Mechanism("lmdb", "atomic", "dict-increment", "lmdb", LmdbCountersStore, lmdb_txn_incr,
              "LMDB: a write transaction per increment (writers serialised)"),
    Mechanism("lmdb", "none", "lookup", "lmdb", LmdbLookupStore, lmdb_lookup,
              "LMDB of N entries: txn.get(key) in one read transaction per round, checked"),
)
