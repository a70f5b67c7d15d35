"""What every mechanism provides: a store (the shared object) and an inlined loop.

A benchmark is ``mechanism × sync × operation``. Its definition is a :class:`Mechanism`:

* ``store`` — a :class:`Store` subclass. The **parent** creates it (``__init__``), hands its
  ``handles()`` to the workers as ``Process`` arguments (the only way synchronized objects and
  locks reach children), reads back what the workers did (``read_counter`` / ``read_items``),
  resets it between rounds, and closes it once. The **worker** calls the static ``attach`` on
  those handles to get its local view, and ``detach`` before it exits.
* ``loop`` — ``loop(local, k, base)`` runs ``k`` operations with the operation written inline
  (no Python call per operation: a call costs about as much as the cheapest operations here).
  Increment loops write the operation out four times per iteration (``k >> 2`` iterations,
  then ``k & 3``): the loop's own ~4 ns per iteration would otherwise be 10 % of the fastest
  operations (~40 ns); unrolled it is ~1 ns, which ``noop/none`` measures. Append loops keep
  one operation per iteration (``for i in range(k)``, the item is ``base + i``): across
  processes they cost 250 ns and more, so the loop is a few percent; the in-process
  ``thread/atomic`` append (~40 ns) carries it as a visible share.
  ``base`` is the worker's tag ``(worker id + 1) << TAG_SHIFT``; appends write ``base + i``, so
  verification can tell whose item is missing, duplicated or overwritten.

The parent coordinates, the workers measure: nothing here is timed except ``loop``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from typing import Any, ClassVar

from sharebench.errors import SharebenchError
from sharebench.verify import RoundCheck

OPERATIONS: tuple[str, ...] = ("increment", "append", "transfer", "dict-increment", "lookup",
                               "ping-pong")
SYNCS: tuple[str, ...] = ("none", "lock", "lock-fast", "striped", "atomic", "posix-sem")

#: ``loop(local, k, base)``; may return a value the parent verifies (e.g. a local count).
Loop = Callable[[Any, int, int], object]


class Unavailable(SharebenchError):
    """Raised by a store that cannot be had here (its server is missing, say): the benchmark
    is recorded as ``skipped: <reason>``, never silently dropped."""


@dataclass(frozen=True)
class StoreSpec:
    """What the parent knows when it creates a store."""

    workers: int
    #: Items an append store must hold in one round (all workers together).
    capacity: int
    #: A short unique token of the run, for names of OS objects (shared memory blocks); it
    #: starts with the pid of the run so `sharebench clean` can tell dead runs from live ones.
    run_token: str = field(default_factory=lambda: str(os.getpid()))
    #: Bytes per operation for bulk transfers and message sizes of ping-pongs; else 0.
    payload_bytes: int = 0
    #: Keys of a dict-increment, entries of a lookup; else 0.
    keys: int = 0
    #: Services the run provides (``redis_url``, ``manager_address``, ...).
    resources: Mapping[str, str] = field(default_factory=dict)
    #: How long the parent's own part of a round (``during_round``) may wait for workers.
    round_timeout: float = 30.0


#: Seconds a parent waiting for workers' items blocks before it checks that they are alive.
WAIT_SLICE = 0.25


class Patience:
    """A parent's wait for its workers' items, made of receives that time out after
    :data:`WAIT_SLICE`. After a slice in which nothing came, :meth:`nothing_came` fails the
    round at once if a worker died (``check``), or with a TimeoutError once nothing has come
    for ``timeout`` seconds; the receives themselves stay as they are."""

    __slots__ = ("check", "seen", "since", "slice", "timeout")

    def __init__(self, check: Callable[[], None], timeout: float) -> None:
        self.check = check
        self.timeout = timeout
        self.slice = min(WAIT_SLICE, timeout)
        self.since = time.monotonic()
        self.seen = 0

    def nothing_came(self, got: int, what: str) -> None:
        """``got``: items received so far (progress restarts the clock); ``what`` names the
        wait in the error (``"queue: 3 of 8 items arrived"``)."""
        self.check()
        now = time.monotonic()
        if got > self.seen:
            self.since, self.seen = now - self.slice, got
        if now - self.since >= self.timeout:
            raise TimeoutError(f"{what}, then none for {self.timeout:g} s")


class Store:
    """The shared object of one benchmark, seen from the parent (instance) and worker (static).

    Subclasses override what they need; the defaults describe a store with nothing to read.
    ``read_counter``/``read_items`` run in the parent between rounds, never while workers run.
    """

    #: Upper bound on the rate (ops/s, all workers) this store is ever used at; append stores
    #: are sized from it so calibration never overruns them.
    max_rate: ClassVar[float] = 2e7
    #: Services the run must provide before this store can be made (``"redis"``,
    #: ``"manager"``); they arrive in ``StoreSpec.resources`` (see ``sharebench.servers``).
    needs: ClassVar[tuple[str, ...]] = ()
    #: Set by :meth:`watch`; None until the workers run.
    _alive_check: Callable[[], None] | None = None

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        self.ctx = ctx
        self.spec = spec

    def watch(self, check: Callable[[], None]) -> None:
        """Parent side: ``check()`` raises if a worker has died (the pool's, set by the
        harness once the workers run)."""
        self._alive_check = check

    def check_workers(self) -> None:
        """Parent side, between slices of a wait in ``during_round``: fail now if a worker
        died. A worker killed mid-round never sends the rest of its items (one that sends
        from a thread, ``Queue`` or zmq, also loses what it had buffered), and the parent
        would otherwise wait ``round_timeout`` for them."""
        if self._alive_check is not None:
            self._alive_check()

    def patience(self) -> Patience:
        """A new wait of the parent for this round's items (see :class:`Patience`)."""
        return Patience(self.check_workers, self.spec.round_timeout)

    def handles(self) -> tuple[Any, ...]:
        """Objects passed to every worker as ``Process`` arguments (inherited, or pickled)."""
        return ()

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        """Worker side: build the local view the loop works on (not timed)."""
        return handles

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        """Worker side, after ``attach``: what worker ``worker`` (0-based) alone needs, e.g.
        its own key sequence (not timed; the local view by default)."""
        return local

    @staticmethod
    def detach(local: Any) -> None:
        """Worker side: release views of the shared object before the worker exits."""

    def read_counter(self) -> int:
        """Parent side, increment stores: the counter's current value."""
        raise NotImplementedError(f"{type(self).__name__} holds no counter")

    def read_items(self) -> Any:
        """Parent side, append stores: the appended items in order (sequence or int64 array)."""
        raise NotImplementedError(f"{type(self).__name__} holds no items")

    def reset(self) -> None:
        """Parent side: back to the empty state before the next round."""

    def during_round(self, ops_per_worker: int) -> float | None:
        """Parent side, while the workers run a round: the parent's own part of it, if any
        (e.g. receiving what workers send). Returns the ``perf_counter()`` at which that part
        ended, or None when the parent has nothing to do (the default)."""
        return None

    def collect(self, ops_per_worker: int, reports: Sequence[Any]) -> RoundCheck:
        """Parent side, after a round: verify what the workers did, then reset.

        ``reports`` holds what each worker's loop returned (``None`` for most loops).
        """
        raise NotImplementedError(f"{type(self).__name__} does not say how to verify a round")

    def close(self) -> None:
        """Parent side: release and destroy the shared object; called exactly once."""


@dataclass(frozen=True)
class Mechanism:
    """One benchmark definition, registered by ``mechanism/sync/operation``."""

    name: str
    sync: str
    operation: str
    family: str
    store: type[Store]
    loop: Loop
    doc: str
    #: Most processes this benchmark makes sense at (the harness ones are single-process).
    max_processes: int | None = None
    workers_kind: str = "process"

    @property
    def key(self) -> str:
        """``value/lock/increment``."""
        return f"{self.name}/{self.sync}/{self.operation}"

    @property
    def label(self) -> str:
        """``value/lock``, as charts label it."""
        return f"{self.name}/{self.sync}"

    def replace(self, **changes: Any) -> Mechanism:
        """A copy with some fields changed (tests wrap stores this way)."""
        return dataclasses.replace(self, **changes)
