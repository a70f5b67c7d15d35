"""UltraDict2 (``pip install ultradict2``): a dict that streams its changes through shared memory.

Every process that opens the dict keeps a full local copy (a plain ``dict``). A write appends
one pickled ``(key, value)`` frame to a shared *stream* segment; a read first applies the
frames it has not seen yet (nothing to do when nobody wrote), then looks the key up locally.
When the stream is full, the writer pickles the whole dict into the *full dump* segment and
the stream starts over; readers that fell behind load the dump.

* ``ultradict/lock`` dict-increment: ``with d.lock: d[key] += 1`` with ``shared_lock=True``.
  That lock is the library's own: a byte in shared memory taken with an atomic exchange
  (atomics2), retried with ``time.sleep(1e-6)`` while another process holds it. It is the only
  lock of the library that works across processes: without ``shared_lock`` ``d.lock`` is a
  ``multiprocessing.RLock`` that each process makes when it opens the dict, so a worker that
  attaches by name gets a lock of its own, and it protects nothing.
  Every process opens the dict with ``lock_timeout=None`` (wait for the lock as long as it
  takes). With the default (5 s, "then look for a dead holder"), ultradict2 0.3.1 passes its
  acquire parameters in the wrong order — ``(block, lock_timeout, 1e-6, steal)`` into
  ``acquire(block, sleep_time, timeout, steal_after_timeout)`` — so a process that finds the
  lock taken sleeps ``lock_timeout`` seconds before it tries again: measured here, 2 processes
  x 300 increments took 5.05 s with the default, 2 x 3,000 took 0.42 s with
  ``lock_timeout=None``: the benchmark would measure that sleep. ``lock_timeout=None`` keeps
  the library's own wait — an atomic exchange, then ``time.sleep(1e-6)`` (in practice ~50 us,
  the kernel's timer slack) until the holder lets go — and gives up only the recovery from a
  holder that died with the lock, which a benchmark does not need.
  An uncontended ``with d.lock: pass`` measured 35-100 us here: atomics2 reaches the byte
  through cffi, ~280 Python-level calls per acquire and release.
* ``ultradict/none`` lookup: the parent loads N entries; a read is the stream check and a local
  ``dict`` lookup (workers load the table when they attach, not timed). Nothing is written
  while the workers read, so no lock is taken.

Segments: ``sharebench-<run>-<random>`` (control), the same name with ``_memory`` (the stream)
and ``_full`` (the dump). ``full_dump_size`` is always set: the dump then has one segment of
fixed size instead of a new ``psm_*`` segment per dump, which the suite could not name (and
``sharebench clean`` could not find). The parent creates the segments and unlinks them in
``close()``; workers attach by name and only close.

Importing UltraDict2 on Python < 3.13 patches ``multiprocessing.resource_tracker`` for the
whole process, to stop it tracking shared memory (bpo-38119). Blocks of other benchmarks made
before the import and unlinked after it would then stay registered, and the tracker would
report them as leaked at exit; :func:`import_ultradict` puts the tracker's functions back.
UltraDict2's segments are then tracked like every other block of the suite: the workers share
the parent's tracker, and the parent's ``unlink()`` clears them (see
:mod:`sharebench.mechanisms.shm`).
"""

from __future__ import annotations

import pickle
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
from sharebench.mechanisms.shm import block_name

REQUIREMENT = "ultradict2==0.3.1"
#: Bytes of the stream segment of a dict-increment store. Increments only ever add frames
#: (~31 bytes each); when the stream is full, the next write dumps the K counters and starts
#: it over, so the size sets how often that happens (every ~34,000 increments), not a limit.
STREAM = 1 << 20
#: Upper bound of the stream of a lookup store: the parent's load only (nothing is written
#: afterwards); a larger table makes the library dump it a few times while it is loaded.
LOAD_STREAM = 16 << 20
#: Room in the dump segment beyond the largest pickle it must hold.
_SLACK = 4096


def import_ultradict() -> Any:
    """The ``UltraDict`` class, or :class:`Unavailable` saying how to install it.

    Puts back the functions of ``multiprocessing.resource_tracker`` that the import patches on
    Python < 3.13 (see the module docstring), so importing it changes nothing else in the run.
    """
    from multiprocessing import resource_tracker

    saved = (resource_tracker.register, resource_tracker.unregister,
             dict(resource_tracker._CLEANUP_FUNCS))  # type: ignore[attr-defined]
    try:
        from UltraDict2 import UltraDict
    except ImportError as exc:
        raise Unavailable(_not_importable(exc)) from None
    finally:
        resource_tracker.register, resource_tracker.unregister = saved[0], saved[1]
        resource_tracker._CLEANUP_FUNCS.update(saved[2])  # type: ignore[attr-defined]
    return UltraDict


def _not_importable(exc: ImportError) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name == "UltraDict2":
        return f"ultradict2 is not installed (pip install {REQUIREMENT})"
    return f"ultradict2 cannot be imported ({exc}; pip install {REQUIREMENT})"


class _UltraStore:
    """Parent side: creates the named dict, fills it, unlinks it once in ``close()``."""

    spec: StoreSpec
    dict: Any

    def _create(self, spec: StoreSpec, initial: dict[int, Any], *, buffer_size: int,
                full_dump_size: int, shared_lock: bool) -> None:
        ultradict = import_ultradict()
        self.dict = None
        try:
            # auto_unlink=False: only close() unlinks; a forked worker that drops its inherited
            # copy of this object must not take the segments with it.
            d = ultradict(name=block_name(spec.run_token), create=True, auto_unlink=False,
                          shared_lock=shared_lock, lock_timeout=None,
                          buffer_size=buffer_size, full_dump_size=full_dump_size)
        except ultradict.Exceptions.MissingDependency as exc:  # atomics2 missing
            raise Unavailable(f"ultradict2 cannot make its shared lock: {exc}") from None
        self.dict = d
        try:
            d.update(initial)  # one stream frame per entry
            d.dump()  # workers then load one pickle instead of replaying every frame
        except BaseException:
            self.close()
            raise

    def handles(self) -> tuple[Any, ...]:
        assert self.dict is not None
        return (self.dict.name, self.spec.keys)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        name, keys = handles
        ultradict = import_ultradict()
        # attach by name (works under spawn too); shared_lock and the dump size come from the
        # creator's control segment; lock_timeout=None: see the module docstring
        d = ultradict(name=name, create=False, auto_unlink=False, lock_timeout=None)
        len(d)  # load the dump now: the first timed read must not pay for it
        return (d, keys)

    @staticmethod
    def detach(local: Any) -> None:
        local[0].close()  # not the creator: closes its mappings, unlinks nothing

    def close(self) -> None:
        d, self.dict = self.dict, None
        if d is not None:
            d.unlink()  # control, stream and dump segments


def _dump_size(table: dict[int, Any]) -> int:
    """Bytes the dump segment needs for ``table`` (the library pickles with the default
    protocol)."""
    return len(pickle.dumps(table)) + _SLACK


class UltraCountersStore(_UltraStore, KeyedStore):
    """K counters ``0 .. K-1`` in an UltraDict with ``shared_lock=True``."""

    max_rate: ClassVar[float] = 2e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        # the largest dump: every counter a 64-bit int (pickles longest)
        worst = dict.fromkeys(range(spec.keys), 2**62)
        self._create(spec, dict.fromkeys(range(spec.keys), 0), buffer_size=STREAM,
                     full_dump_size=_dump_size(worst), shared_lock=True)
        self.start_counts()

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        d, keys = local
        return (d, d.lock, key_sequence(worker, keys))

    def read_counts(self) -> list[int]:
        assert self.dict is not None
        return [int(self.dict[k]) for k in range(self.spec.keys)]


class UltraLookupStore(_UltraStore, LookupStore):
    """N entries ``key -> value_of(key)`` in an UltraDict (no shared lock: nothing writes)."""

    max_rate: ClassVar[float] = 2e7

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        table = {key: value_of(key) for key in lookup_keys(spec.keys)}
        last = max(table) if table else 0
        frame = len(pickle.dumps((True, last, value_of(last)))) + 6  # 6 bytes of frame header
        self._create(spec, table, buffer_size=min(LOAD_STREAM, frame * len(table) + _SLACK),
                     full_dump_size=_dump_size(table), shared_lock=False)

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        d, entries = local
        return (d, lookup_order(worker, entries))


MECHANISMS = (
    Mechanism("ultradict", "lock", "dict-increment", "ultradict", UltraCountersStore,
              mapping_increment_locked,
              "UltraDict2 (shared_lock=True): with d.lock: d[key] += 1, changes streamed "
              "through shared memory"),
    Mechanism("ultradict", "none", "lookup", "ultradict", UltraLookupStore, mapping_lookup,
              "UltraDict2 of N entries: d[key] from each process's local copy, checked"),
)
