"""``multiprocessing.Manager`` proxies: every access is a round trip to a server process.

``ValueProxy`` ``v.value += 1`` is a get round trip then a set round trip, racy like the
synchronized Value. ``ListProxy.append`` runs inside the server, one call at a time, so it is
atomic without a lock.
"""

from __future__ import annotations

import secrets
from itertools import repeat
from multiprocessing.managers import SyncManager
from typing import Any, ClassVar

from sharebench.lifecycle import die_with_parent
from sharebench.mechanisms.base import Mechanism
from sharebench.mechanisms.counters import CounterStore, ItemStore


class _ManagerMixin:
    """Starts a Manager server in the benchmark's start method; shuts it down on close."""

    manager: Any
    #: The manager class to start (a subclass with its own registered types, if needed).
    manager_class: Any = SyncManager

    def _start_manager(self, ctx: Any) -> Any:
        # A Unix socket (SyncManager's default address on Linux) and a fresh random authkey:
        # only this run's processes can talk to the server. The server dies with the parent
        # even if the parent is SIGKILLed (it would otherwise wait for clients forever).
        self.manager = self.manager_class(ctx=ctx, authkey=secrets.token_bytes(32))
        self.manager.start(initializer=die_with_parent)
        return self.manager

    def _shutdown(self) -> None:
        manager = getattr(self, "manager", None)
        if manager is not None:
            manager.shutdown()
            self.manager = None


class ProxyValueStore(CounterStore):
    """A ``Value`` proxy and a ``Lock`` proxy living in a Manager server. Subclasses make or
    reach the server; ``_release`` ends this store's use of it."""

    max_rate: ClassVar[float] = 2e5
    value: Any
    lock: Any

    def handles(self) -> tuple[Any, ...]:
        return (self.value, self.lock)

    def read_counter(self) -> int:
        return int(self.value.value)

    def reset(self) -> None:
        self.value.value = 0

    def close(self) -> None:
        # Proxies first: their finalizers talk to the server, which must still be up.
        self.value = self.lock = None
        self._release()

    def _release(self) -> None:
        raise NotImplementedError


class ProxyListStore(ItemStore):
    """A ``list`` proxy living in a Manager server (see :class:`ProxyValueStore`)."""

    max_rate: ClassVar[float] = 2e5
    items: Any

    def handles(self) -> tuple[Any, ...]:
        return (self.items,)

    def read_items(self) -> Any:
        return self.items[:]  # one round trip for the whole list

    def reset(self) -> None:
        del self.items[:]

    def close(self) -> None:
        self.items = None
        self._release()

    def _release(self) -> None:
        raise NotImplementedError


class ManagerValueStore(_ManagerMixin, ProxyValueStore):
    """``manager.Value('q')`` and ``manager.Lock()``, both living in the server."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        manager = self._start_manager(ctx)
        self.value = manager.Value("q", 0)
        self.lock = manager.Lock()

    def _release(self) -> None:
        self._shutdown()


class ManagerListStore(_ManagerMixin, ProxyListStore):
    """``manager.list()``: appends are executed by the server one at a time."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        super().__init__(ctx, spec)
        self.items = self._start_manager(ctx).list()

    def _release(self) -> None:
        self._shutdown()


def manager_value_none(local: Any, k: int, base: int) -> None:
    """``v.value += 1`` on a ValueProxy: a get and a set round trip, racy."""
    v, _lock = local
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        v.value += 1
        v.value += 1
        v.value += 1
        v.value += 1
    for _ in repeat(None, k & 3):
        v.value += 1


def manager_value_lock(local: Any, k: int, base: int) -> None:
    """The same under ``manager.Lock()`` (two more round trips: acquire, release)."""
    v, lock = local
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        with lock:
            v.value += 1
        with lock:
            v.value += 1
        with lock:
            v.value += 1
        with lock:
            v.value += 1
    for _ in repeat(None, k & 3):
        with lock:
            v.value += 1


def manager_list_atomic(local: Any, k: int, base: int) -> None:
    """``lst.append(x)``: one round trip, executed atomically by the server."""
    (items,) = local
    for i in range(k):
        items.append(base + i)


MECHANISMS = (
    Mechanism("manager-value", "none", "increment", "manager", ManagerValueStore,
              manager_value_none, "Manager Value proxy: v.value += 1 (racy)"),
    Mechanism("manager-value", "lock", "increment", "manager", ManagerValueStore,
              manager_value_lock, "Manager Value proxy under manager.Lock()"),
    Mechanism("manager-list", "atomic", "append", "manager", ManagerListStore,
              manager_list_atomic, "Manager list proxy: append runs in the server"),
)
