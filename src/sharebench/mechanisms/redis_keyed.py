"""Redis for keyed data and round trips (same server and key rules as
:mod:`sharebench.mechanisms.redis`).

* ``redis-hash/atomic`` dict-increment: ``HINCRBY hash key 1`` — one round trip, atomic in the
  server; the whole hash is read back with one ``HGETALL``.
* ``redis/atomic`` lookup: ``GET`` of one of N keys loaded by the parent (pipelined ``MSET``),
  checked against the key.
* ``redis/atomic`` ping-pong: the worker ``LPUSH``es the message on a request list and
  ``BRPOP``s the reply list; the parent ``BRPOP``s the request and ``LPUSH``es it back —
  two round trips to the server each way.
"""

from __future__ import annotations

from itertools import cycle, islice
from typing import TYPE_CHECKING, Any, ClassVar

from sharebench.mechanisms.base import Mechanism, StoreSpec
from sharebench.mechanisms.keyed import (
    KeyedStore,
    LookupStore,
    key_sequence,
    lookup_keys,
    lookup_order,
    value_of,
)
from sharebench.mechanisms.pingpong import PingStore, ping_loop
from sharebench.mechanisms.redis import SOCKET_TIMEOUT, _RedisStore

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

#: Keys loaded per pipelined MSET when the parent fills a lookup table.
LOAD_BATCH = 10_000


class RedisHashStore(_RedisStore, KeyedStore):
    """A Redis hash of K counters."""

    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._open(spec, "hash")
        self.start_counts()

    def handles(self) -> tuple[Any, ...]:
        return (*super().handles(), self.spec.keys)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        url, key, keys = handles
        client, key = _RedisStore.attach((url, key))
        return (client, key, keys)

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        client, key, keys = local
        return (client, key, key_sequence(worker, keys))

    def read_counts(self) -> list[int]:
        assert self.client is not None
        raw: Any = self.client.hgetall(self.key)
        counts = {int(k): int(v) for k, v in raw.items()}
        return [counts.get(k, 0) for k in range(self.spec.keys)]


def redis_hincrby(local: Any, k: int, base: int) -> None:
    """``HINCRBY hash key 1``: one round trip, atomic in the server."""
    client, key, seq = local
    hincrby = client.hincrby
    for field in islice(cycle(seq), k):
        hincrby(key, field, 1)


class RedisLookupStore(_RedisStore, LookupStore):
    """N string keys ``<prefix>:<key>`` holding ``value_of(key)``."""

    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._open(spec, "table")
        assert self.client is not None
        keys = lookup_keys(spec.keys)
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(keys), LOAD_BATCH):
            pipe.mset({f"{self.key}:{k}": value_of(k) for k in keys[start:start + LOAD_BATCH]})
        pipe.execute()

    def handles(self) -> tuple[Any, ...]:
        return (*super().handles(), self.spec.keys)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        url, key, entries = handles
        client, key = _RedisStore.attach((url, key))
        return (client, key, entries)

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        client, key, entries = local
        return (client, f"{key}:", lookup_order(worker, entries))

    def close(self) -> None:
        client = self.client
        if client is not None:
            for cursor_keys in _scan(client, f"{self.key}:*"):
                client.delete(*cursor_keys)
        super().close()


def _scan(client: Any, pattern: str) -> Any:
    batch: list[Any] = []
    for name in client.scan_iter(match=pattern, count=LOAD_BATCH):
        batch.append(name)
        if len(batch) >= LOAD_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def redis_get_lookup(local: Any, k: int, base: int) -> int:
    """``GET <prefix>:<key>`` (one round trip), checked against the key."""
    client, prefix, order = local
    get = client.get
    from_bytes = int.from_bytes
    wrong = 0
    for key in islice(cycle(order), k):
        value = get(f"{prefix}{key}")
        if value is None or from_bytes(value, "little") != key:
            wrong += 1
    return wrong


class RedisPing(_RedisStore, PingStore):
    """Two Redis lists: requests and replies."""

    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._open(spec, "ping")

    def handles(self) -> tuple[Any, ...]:
        return (*super().handles(), self.spec.payload_bytes)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        url, key, size = handles
        client, key = _RedisStore.attach((url, key))
        return (client, key, size)

    def echo(self) -> None:
        assert self.client is not None
        got: Any = self.client.brpop([f"{self.key}:req"], timeout=SOCKET_TIMEOUT - 1)
        if got is None:
            raise TimeoutError("redis: no message on the request list")
        self.client.lpush(f"{self.key}:rep", got[1])

    def close(self) -> None:
        client = self.client
        if client is not None:
            client.delete(f"{self.key}:req", f"{self.key}:rep")
        super().close()


def redis_ping(local: Any, k: int, base: int) -> Any:
    """``LPUSH`` the request, ``BRPOP`` the reply."""
    client, key, size = local
    req, rep = f"{key}:req", f"{key}:rep"
    lpush, brpop = client.lpush, client.brpop

    def recv() -> Any:
        got = brpop([rep], timeout=SOCKET_TIMEOUT - 1)
        if got is None:
            raise TimeoutError("redis: no reply")
        return got[1]

    return ping_loop(lambda m: lpush(req, bytes(m)), recv, size, k)


MECHANISMS = (
    Mechanism("redis-hash", "atomic", "dict-increment", "redis", RedisHashStore,
              redis_hincrby, "Redis HINCRBY on a hash of K fields: atomic in the server"),
    Mechanism("redis", "atomic", "lookup", "redis", RedisLookupStore, redis_get_lookup,
              "Redis GET of one of N keys, checked"),
    Mechanism("redis", "atomic", "ping-pong", "redis", RedisPing, redis_ping,
              "round trip through two Redis lists (LPUSH, BRPOP)", max_processes=1),
)
