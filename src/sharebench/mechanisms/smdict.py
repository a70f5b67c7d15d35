"""shared-memory-dict (``pip install shared-memory-dict``): a whole dict pickled into one block.

``SharedMemoryDict`` keeps no copy of its own: every read unpickles the *whole* dict from the
block (``pickle.loads(buf.tobytes())``, a copy of the block first) and every write unpickles
it, changes one key and pickles it all back. An operation therefore costs time proportional
to the size of the dict, not a constant.

* ``shared-memory-dict/lock`` dict-increment: ``with lock: d[key] += 1`` under a
  ``multiprocessing.Lock`` made by the parent. The library has no lock that could serve: its
  ``SHARED_MEMORY_USE_LOCK=1`` guards each single ``d[key] = v`` with a module-level lock made
  at import (shared only with forked children that inherit it), never the read before the
  write; without that variable there is no lock at all. Two unlocked writers of *different*
  keys lose updates too: each writes back the dict it read.
* ``shared-memory-dict/none`` lookup: ``d[key]`` on a dict of N entries, checked. Nothing is
  written while the workers read.

Both are limited to :data:`MAX_ENTRIES` entries. Measured here (CPython 3.11, 2 cores), one
read took 0.3 ms at 2,000 entries, 0.6 ms at 10,000, 1.8 ms at 20,000 and 14.5 ms at 100,000
(a 1.6 MB copy and 100,000 objects unpickled): the quick profile's table (100,000) would
measure the unpickler at ~70 lookups/s, the full one (1,000,000) at a few per second. Larger
stores raise :class:`Unavailable` saying so.

The library names its block ``sm_<name>``; the store gives it exactly ``sharebench-<run>-...``
instead, like every block of the suite (so ``sharebench clean`` finds a killed run's block),
and creates it exclusively in the parent (the library would silently attach to an existing
block of that name). Ownership follows :mod:`sharebench.mechanisms.shm`: the parent creates
and unlinks (``d.shm.unlink()``), workers attach and only close.
"""

from __future__ import annotations

import functools
import pickle
from multiprocessing import shared_memory
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.keyed import (
    KeyedStore,
    LookupStore,
    key_sequence,
    lookup_keys,
    lookup_order,
    mapping_increment_locked,
    mapping_lookup,
    value_of,
)
from sharebench.mechanisms.shm import attach_block, block_name

REQUIREMENT = "shared-memory-dict==0.7.2"
#: Most entries (lookup) or keys (dict-increment) a store takes: see the module docstring.
MAX_ENTRIES = 20_000
#: Room in the block beyond the largest pickle it must hold.
_SLACK = 256


@functools.cache
def named_dict_class() -> Any:
    """``SharedMemoryDict`` in a block named exactly as given (see the module docstring), or
    :class:`Unavailable` saying how to install the library."""
    try:
        from shared_memory_dict import SharedMemoryDict
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "shared_memory_dict":
            raise Unavailable(
                f"shared-memory-dict is not installed (pip install {REQUIREMENT})") from None
        raise Unavailable(f"shared-memory-dict cannot be imported ({exc})") from None

    class NamedDict(SharedMemoryDict):  # type: ignore[misc]  # untyped library
        """The library's dict in the block ``name``: created by the parent, attached by
        workers."""

        def __init__(self, name: str, size: int, create: bool) -> None:
            self._create_block = create
            super().__init__(name, size)

        def _get_or_create_memory_block(self, name: str, size: int) -> Any:
            name = name.removeprefix("sm_")  # the library's prefix; ours is in ``name``
            if self._create_block:
                return shared_memory.SharedMemory(name=name, create=True, size=size)
            return attach_block(name)

    return NamedDict


class _SmdStore:
    """Parent side: creates the block, fills it, unlinks it once in ``close()``."""

    spec: StoreSpec
    dict: Any

    @staticmethod
    def _check_size(spec: StoreSpec, what: str) -> None:
        if spec.keys > MAX_ENTRIES:
            raise Unavailable(
                f"shared-memory-dict unpickles the whole dict on every read: {spec.keys:,} "
                f"{what} would measure the unpickler (one read of 100,000 entries took "
                f"~15 ms here); at most {MAX_ENTRIES:,}")

    def _create(self, spec: StoreSpec, initial: dict[int, Any], size: int) -> None:
        self.dict = named_dict_class()(block_name(spec.run_token), size + _SLACK, True)
        try:
            self.dict.update(initial)  # one pickle of the whole dict
        except BaseException:
            self.close()
            raise

    def handles(self) -> tuple[Any, ...]:
        assert self.dict is not None
        return (self.dict.shm.name, self.spec.keys)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        name, keys = handles
        return (named_dict_class()(name, 0, False), keys)  # the size is the block's

    @staticmethod
    def detach(local: Any) -> None:
        local[0].cleanup()  # closes the block (the library's name for it)

    def close(self) -> None:
        d, self.dict = self.dict, None
        if d is not None:
            block = d.shm
            d.cleanup()
            block.unlink()


class SmdCountersStore(_SmdStore, KeyedStore):
    """K counters in a SharedMemoryDict and one ``multiprocessing.Lock``."""

    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._check_size(spec, "keys")
        # the block must hold the dict with every counter a 64-bit int (pickles longest)
        worst = len(pickle.dumps(dict.fromkeys(range(spec.keys), 2**62),
                                 pickle.HIGHEST_PROTOCOL))
        self.lock = ctx.Lock()
        self._create(spec, dict.fromkeys(range(spec.keys), 0), worst)
        self.start_counts()

    def handles(self) -> tuple[Any, ...]:
        return (*super().handles(), self.lock)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        name, keys, lock = handles
        return (*_SmdStore.attach((name, keys)), lock)

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        d, keys, lock = local
        return (d, lock, key_sequence(worker, keys))

    def read_counts(self) -> list[int]:
        assert self.dict is not None
        counts = dict(self.dict.items())  # one read of the whole dict
        return [int(counts[k]) for k in range(self.spec.keys)]


class SmdLookupStore(_SmdStore, LookupStore):
    """N entries ``key -> value_of(key)`` in a SharedMemoryDict."""

    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._check_size(spec, "entries")
        table = {key: value_of(key) for key in lookup_keys(spec.keys)}
        self._create(spec, table, len(pickle.dumps(table, pickle.HIGHEST_PROTOCOL)))

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        d, entries = local
        return (d, lookup_order(worker, entries))


MECHANISMS = (
    Mechanism("shared-memory-dict", "lock", "dict-increment", "shared-memory-dict",
              SmdCountersStore, mapping_increment_locked,
              "shared-memory-dict: with multiprocessing.Lock: d[key] += 1 (whole dict "
              "unpickled and pickled per increment)"),
    Mechanism("shared-memory-dict", "none", "lookup", "shared-memory-dict", SmdLookupStore,
              mapping_lookup,
              "shared-memory-dict of N entries: d[key] (whole dict unpickled per read), "
              "checked"),
)
