"""Manager proxies for keyed data and round trips: ``Manager().dict()``, ``Namespace``, echo.

* ``manager-dict/none`` dict-increment: ``d[key] += 1`` on a ``DictProxy`` — the usual answer
  to "how do I share a dict between processes", and a read-modify-write race: a get and a set
  round trip with a window between them.
* ``manager-dict/lock``: the same under ``manager.Lock()``.
* ``manager-namespace/none`` and ``/lock``: the counters as attributes of a ``Namespace``
  (``setattr(ns, name, getattr(ns, name) + 1)``), the other proxy the tutorials list.
* ``manager-dict/atomic`` lookup: ``d[key]`` on a dict of N entries living in the server; one
  round trip per read (a ``__getitem__`` runs in the server, atomic).
* ``manager/atomic`` ping-pong: a proxy call ``echo(message)`` to an object in the server,
  which returns the message: the Manager server is the other process.
"""

from __future__ import annotations

from itertools import cycle, islice
from multiprocessing.managers import SyncManager
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism, StoreSpec
from sharebench.mechanisms.keyed import (
    KeyedStore,
    LookupStore,
    key_sequence,
    lookup_keys,
    lookup_order,
    mapping_increment,
    mapping_increment_locked,
    mapping_lookup,
    value_of,
)
from sharebench.mechanisms.manager import _ManagerMixin
from sharebench.mechanisms.pingpong import PingStore, ping_loop


class ManagerDictStore(_ManagerMixin, KeyedStore):
    """``manager.dict()`` of K counters and ``manager.Lock()``, in the server."""

    max_rate: ClassVar[float] = 2e5

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        manager = self._start_manager(ctx)
        self.dict: Any = manager.dict(dict.fromkeys(range(spec.keys), 0))
        self.lock: Any = manager.Lock()
        self.start_counts()

    def handles(self) -> tuple[Any, ...]:
        return (self.dict, self.lock, self.spec.keys)

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        d, lock, keys = local
        return (d, lock, key_sequence(worker, keys))

    def read_counts(self) -> list[int]:
        counts = self.dict.copy()  # one round trip for all keys
        return [int(counts[k]) for k in range(self.spec.keys)]

    def close(self) -> None:
        self.dict = self.lock = None  # proxies first: their finalizers need the server
        self._shutdown()


class ManagerNamespaceStore(_ManagerMixin, KeyedStore):
    """A ``Namespace`` with K integer attributes ``k0`` .. and ``manager.Lock()``."""

    max_rate: ClassVar[float] = 2e5

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        manager = self._start_manager(ctx)
        self.ns: Any = manager.Namespace()
        for i in range(spec.keys):
            setattr(self.ns, f"k{i}", 0)
        self.lock: Any = manager.Lock()
        self.start_counts()

    def handles(self) -> tuple[Any, ...]:
        return (self.ns, self.lock, self.spec.keys)

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        ns, lock, keys = local
        return (ns, lock, [f"k{key}" for key in key_sequence(worker, keys)])

    def read_counts(self) -> list[int]:
        copy = self.ns._getvalue()  # one round trip: a copy of the whole Namespace
        return [int(getattr(copy, f"k{i}")) for i in range(self.spec.keys)]

    def close(self) -> None:
        self.ns = self.lock = None
        self._shutdown()


def manager_namespace_none(local: Any, k: int, base: int) -> None:
    """``setattr(ns, name, getattr(ns, name) + 1)``: two round trips, racy."""
    ns, _lock, names = local
    for name in islice(cycle(names), k):
        setattr(ns, name, getattr(ns, name) + 1)


def manager_namespace_lock(local: Any, k: int, base: int) -> None:
    """The same under ``manager.Lock()``."""
    ns, lock, names = local
    for name in islice(cycle(names), k):
        with lock:
            setattr(ns, name, getattr(ns, name) + 1)


class ManagerLookupStore(_ManagerMixin, LookupStore):
    """A ``manager.dict()`` of N entries ``key -> value_of(key)``."""

    max_rate: ClassVar[float] = 2e5

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        table = {key: value_of(key) for key in lookup_keys(spec.keys)}
        self.dict: Any = self._start_manager(ctx).dict(table)

    def handles(self) -> tuple[Any, ...]:
        return (self.dict, self.spec.keys)

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        d, entries = local
        return (d, lookup_order(worker, entries))

    def close(self) -> None:
        self.dict = None
        self._shutdown()


class _Echo:
    """Lives in the Manager server; returns what it is given."""

    def echo(self, message: Any) -> Any:
        return message


class EchoManager(SyncManager):
    """A SyncManager that can make an :class:`_Echo`."""


EchoManager.register("Echo", _Echo)


class ManagerPing(_ManagerMixin, PingStore):
    """An echo object in a Manager server: each round trip is one proxy call."""

    max_rate: ClassVar[float] = 2e5
    manager_class = EchoManager

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.proxy: Any = self._start_manager(ctx).Echo()

    def handles(self) -> tuple[Any, ...]:
        return (self.proxy, self.spec.payload_bytes)

    def during_round(self, ops_per_worker: int) -> float | None:
        return None  # the server answers; the parent has nothing to do

    def close(self) -> None:
        self.proxy = None
        self._shutdown()


def manager_ping(local: Any, k: int, base: int) -> Any:
    """``proxy.echo(message)``: the message is pickled to the server and back."""
    proxy, size = local
    reply: list[Any] = []
    return ping_loop(lambda m: reply.append(proxy.echo(m)), reply.pop, size, k)


MECHANISMS = (
    Mechanism("manager-dict", "none", "dict-increment", "manager", ManagerDictStore,
              mapping_increment, "Manager dict proxy: d[key] += 1 (racy)"),
    Mechanism("manager-dict", "lock", "dict-increment", "manager", ManagerDictStore,
              mapping_increment_locked, "Manager dict proxy: d[key] += 1 under manager.Lock()"),
    Mechanism("manager-namespace", "none", "dict-increment", "manager",
              ManagerNamespaceStore, manager_namespace_none,
              "Manager Namespace: setattr(ns, k, getattr(ns, k) + 1) (racy)"),
    Mechanism("manager-namespace", "lock", "dict-increment", "manager",
              ManagerNamespaceStore, manager_namespace_lock,
              "Manager Namespace attribute increment under manager.Lock()"),
    Mechanism("manager-dict", "atomic", "lookup", "manager", ManagerLookupStore,
              mapping_lookup, "Manager dict proxy of N entries: d[key], checked"),
    Mechanism("manager", "atomic", "ping-pong", "manager", ManagerPing, manager_ping,
              "round trip as a proxy call echo(message) to the Manager server",
              max_processes=1),
)
