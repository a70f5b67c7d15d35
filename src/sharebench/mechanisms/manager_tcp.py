"""Manager proxies over TCP: the core suite's Manager benchmarks, reached the way a process on
another host reaches a Manager.

The same proxies and loops as :mod:`sharebench.mechanisms.manager` (``ValueProxy`` with
``v.value += 1``, racy or under the server's Lock; ``ListProxy.append``), but:

* the server listens on TCP ``127.0.0.1:<free port>`` (not a Unix socket) with a random 32-byte
  authkey per benchmark (``secrets.token_bytes``);
* workers get only ``(address, authkey, names)``, build a fresh :class:`BenchManager`, call
  ``connect()`` and fetch the shared objects by name through registered typeids
  (``sharebench_value(name)``, ...) — no proxy is inherited or pickled to them;
* with ``--manager-address HOST:PORT`` the server is one the user runs
  (``sharebench manager HOST:PORT``, e.g. on another host) and whose authkey
  the suite gets from ``SHAREBENCH_MANAGER_AUTHKEY``. The suite then never shuts that server
  down; it creates its objects under names of its own and deletes them at the end.

The objects live in a dict of the server process, keyed by name, so every client asking for
a name gets a proxy to the same object.
"""

from __future__ import annotations

import secrets
from multiprocessing import AuthenticationError
from multiprocessing.managers import (  # type: ignore[attr-defined]  # not in typeshed
    AcquirerProxy,
    DictProxy,
    ListProxy,
    SyncManager,
    Value,
    ValueProxy,
)
from threading import Lock
from typing import TYPE_CHECKING, Any, ClassVar, cast

from sharebench.lifecycle import die_with_parent
from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.manager import (
    ProxyListStore,
    ProxyValueStore,
    manager_list_atomic,
    manager_value_lock,
    manager_value_none,
)
from sharebench.servers import MANAGER_ADDRESS, MANAGER_AUTHKEY, parse_address

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

# -- server side: objects by name ------------------------------------------------------

#: The shared objects of the server process, by name (empty in every other process).
_OBJECTS: dict[str, Any] = {}


def _named_value(name: str) -> Any:
    return _OBJECTS.setdefault(name, Value("q", 0))


def _named_lock(name: str) -> Any:
    return _OBJECTS.setdefault(name, Lock())


def _named_list(name: str) -> Any:
    return _OBJECTS.setdefault(name, [])


def _objects() -> dict[str, Any]:
    return _OBJECTS


class BenchManager(SyncManager):
    """A SyncManager whose server hands out objects by name, so a client that has only the
    address and the authkey can find them."""


BenchManager.register("sharebench_value", _named_value, ValueProxy)
BenchManager.register("sharebench_lock", _named_lock, AcquirerProxy)
BenchManager.register("sharebench_list", _named_list, ListProxy)
#: The name -> object dict itself, to delete a run's objects from a server that is not ours.
BenchManager.register("sharebench_objects", _objects, DictProxy)


def connect(address: tuple[str, int], authkey: bytes) -> BenchManager:
    """A client of the server at ``address``; raises ``AuthenticationError`` on a wrong key."""
    manager = BenchManager(address=address, authkey=authkey)
    manager.connect()
    return manager


# -- stores ---------------------------------------------------------------------------


class _TcpManagerStore:
    """Opens (or starts) the server and names this store's objects."""

    needs: ClassVar[tuple[str, ...]] = ("manager",)
    manager: BenchManager | None = None
    own_server = False
    address: tuple[str, int]
    authkey: bytes
    names: tuple[str, ...]

    def _open(self, ctx: BaseContext, spec: StoreSpec, *kinds: str) -> BenchManager:
        given = spec.resources.get(MANAGER_ADDRESS)
        if given:
            self.address = parse_address(given)
            hexkey = spec.resources.get(MANAGER_AUTHKEY)
            if not hexkey:
                raise Unavailable(
                    f"--manager-address {given} needs the server's authkey in "
                    "SHAREBENCH_MANAGER_AUTHKEY (hex, as `sharebench "
                    "manager` prints it)"
                )
            try:
                self.authkey = bytes.fromhex(hexkey)
            except ValueError:
                raise Unavailable("SHAREBENCH_MANAGER_AUTHKEY is not hex") from None
            try:
                self.manager = connect(self.address, self.authkey)
            except AuthenticationError:
                raise Unavailable(f"the manager at {given} refused our authkey") from None
            except OSError as exc:
                raise Unavailable(f"no manager at {given}: {exc}") from None
        else:
            self.authkey = secrets.token_bytes(32)
            self.manager = BenchManager(address=("127.0.0.1", 0), authkey=self.authkey,
                                        ctx=ctx)
            # The server dies with the parent even if the parent is SIGKILLed.
            self.manager.start(initializer=die_with_parent)
            self.own_server = True
            self.address = cast("tuple[str, int]", self.manager.address)  # the bound port
        token = secrets.token_hex(6)
        self.names = tuple(f"sharebench:{spec.run_token}:{token}:{k}" for k in kinds)
        return self.manager

    def handles(self) -> tuple[Any, ...]:
        """Address, authkey and names: what a process on another host would be told."""
        return (self.address, self.authkey, self.names)

    @staticmethod
    def _connect_worker(handles: tuple[Any, ...]) -> tuple[BenchManager, tuple[str, ...]]:
        address, authkey, names = handles
        return connect(address, authkey), names

    def _close(self) -> None:
        manager, self.manager = self.manager, None
        if manager is None:
            return
        try:
            if not self.own_server:
                objects = manager.sharebench_objects()  # type: ignore[attr-defined]
                for name in self.names:
                    if name in objects:
                        del objects[name]
                del objects
        finally:
            if self.own_server:
                manager.shutdown()


class TcpValueStore(_TcpManagerStore, ProxyValueStore):
    """A ``Value('q')`` and a ``Lock`` in the server, fetched by name."""

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        manager = self._open(ctx, spec, "value", "lock")
        try:
            self.value: Any = manager.sharebench_value(self.names[0])  # type: ignore[attr-defined]
            self.lock: Any = manager.sharebench_lock(self.names[1])  # type: ignore[attr-defined]
            self.reset()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        manager, (value_name, lock_name) = TcpValueStore._connect_worker(handles)
        return (manager.sharebench_value(value_name),  # type: ignore[attr-defined]
                manager.sharebench_lock(lock_name))  # type: ignore[attr-defined]

    def _release(self) -> None:
        self._close()


class TcpListStore(_TcpManagerStore, ProxyListStore):
    """A list in the server, fetched by name; appends run there one at a time."""

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        manager = self._open(ctx, spec, "list")
        try:
            self.items: Any = manager.sharebench_list(self.names[0])  # type: ignore[attr-defined]
            self.reset()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        manager, (name,) = TcpListStore._connect_worker(handles)
        return (manager.sharebench_list(name),)  # type: ignore[attr-defined]

    def _release(self) -> None:
        self._close()


MECHANISMS = (
    Mechanism("manager-tcp-value", "none", "increment", "manager-tcp", TcpValueStore,
              manager_value_none, "Manager Value proxy over TCP: v.value += 1 (racy)"),
    Mechanism("manager-tcp-value", "lock", "increment", "manager-tcp", TcpValueStore,
              manager_value_lock, "Manager Value proxy over TCP under the server's Lock"),
    Mechanism("manager-tcp-list", "atomic", "append", "manager-tcp", TcpListStore,
              manager_list_atomic, "Manager list proxy over TCP: append runs in the server"),
)
