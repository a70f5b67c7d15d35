"""Redis (a real ``redis-server``, through redis-py): the counter and the list live in a server
every host can reach. Every operation is a network round trip unless it is pipelined.

* ``redis/atomic`` increment: ``INCR`` — executed by the single-threaded server, atomic.
* ``redis/none`` increment: ``GET`` then ``SET`` — the read-modify-write users write first;
  two round trips with a window between them, so concurrent updates get lost.
* ``redis/atomic`` append: ``RPUSH``, atomic like INCR.
* ``redis-pipeline-100/atomic``: the same INCR / RPUSH sent :data:`BATCH` (100) commands per
  round trip (``pipeline(transaction=False)``: batching, not MULTI/EXEC). The batch size is part
  of the mechanism's name so it is in every CSV row. Each command is still applied atomically;
  only the round trips are shared.

Where the server comes from is :mod:`sharebench.servers`' business: the store finds its URL in
``spec.resources["redis_url"]`` or raises :class:`Unavailable` with the reason it was given.
Keys are ``sharebench:<run token>:<random>:<what>``, created and deleted by the store; the
suite never flushes a database (it may be the user's).
"""

from __future__ import annotations

import secrets
from itertools import repeat
from typing import TYPE_CHECKING, Any, ClassVar

from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.counters import CounterStore, ItemStore
from sharebench.servers import REDIS_OWNED, REDIS_UNAVAILABLE, REDIS_URL, redact

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    import redis

#: Commands per pipelined round trip in ``redis-pipeline-100``.
BATCH = 100

#: Seconds a client waits on the server before the operation fails (a dead server must turn
#: into an error, not a hung worker).
SOCKET_TIMEOUT = 10.0


def key_prefix(run_token: str) -> str:
    """Every key of a run starts with this (tests scan for leftovers with it)."""
    return f"sharebench:{run_token}:"


def _client(url: str) -> redis.Redis:
    import redis

    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT,
                                socket_connect_timeout=SOCKET_TIMEOUT)


class _RedisStore:
    """Parent side: one client, one key; workers get the URL and key, never a connection."""

    #: What :class:`sharebench.servers.Services` must provide.
    needs: ClassVar[tuple[str, ...]] = ("redis",)
    spec: StoreSpec
    client: redis.Redis | None
    url: str
    key: str

    def _open(self, spec: StoreSpec, what: str) -> None:
        import redis

        url = spec.resources.get(REDIS_URL)
        if not url:
            raise Unavailable(spec.resources.get(REDIS_UNAVAILABLE)
                              or "no Redis server given (--redis-url or SHAREBENCH_REDIS_URL)")
        client = _client(url)
        try:
            client.ping()
        except redis.RedisError as exc:
            client.close()
            if spec.resources.get(REDIS_OWNED):  # it answered when we started it: it broke
                raise RuntimeError(
                    f"the redis-server this run started ({redact(url)}) stopped answering: {exc}"
                ) from None
            raise Unavailable(f"Redis at {redact(url)} does not answer: {exc}") from None
        self.client, self.url = client, url
        self.key = f"{key_prefix(spec.run_token)}{secrets.token_hex(6)}:{what}"

    def handles(self) -> tuple[Any, ...]:
        return (self.url, self.key)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        """A client of the worker's own (a connection is never shared across processes)."""
        url, key = handles
        client = _client(url)
        client.ping()  # connect now: the first timed operation must not pay for it
        return client, key

    @staticmethod
    def detach(local: Any) -> None:
        local[0].close()

    def close(self) -> None:
        """Delete this store's key, then close the client (the server itself is not ours)."""
        client, self.client = self.client, None
        if client is not None:
            try:
                client.delete(self.key)
            finally:
                client.close()


class RedisCounterStore(_RedisStore, CounterStore):
    """A Redis string holding an integer, zeroed with SET between rounds."""

    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._open(spec, "counter")
        self.reset()

    def read_counter(self) -> int:
        assert self.client is not None
        raw: Any = self.client.get(self.key)
        return int(raw or 0)

    def reset(self) -> None:
        assert self.client is not None
        self.client.set(self.key, 0)


class RedisListStore(_RedisStore, ItemStore):
    """A Redis list, read back with one LRANGE and deleted between rounds."""

    #: Pipelined RPUSH reaches a few 1e5/s; sizing the round's capacity from this is generous.
    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._open(spec, "items")

    def read_items(self) -> Any:
        assert self.client is not None
        raw: Any = self.client.lrange(self.key, 0, -1)
        return [int(x) for x in raw]

    def reset(self) -> None:
        assert self.client is not None
        self.client.delete(self.key)


def redis_incr(local: Any, k: int, base: int) -> None:
    """``INCR key``: one round trip, atomic in the server."""
    client, key = local
    incr = client.incr
    for _ in repeat(None, k >> 2):  # unrolled x4 like the other increment loops
        incr(key)
        incr(key)
        incr(key)
        incr(key)
    for _ in repeat(None, k & 3):
        incr(key)


def redis_get_set(local: Any, k: int, base: int) -> None:
    """``SET key (GET key) + 1``: two round trips; another client may write in between."""
    client, key = local
    get, set_ = client.get, client.set
    for _ in repeat(None, k >> 2):  # unrolled x4 like the other increment loops
        set_(key, int(get(key)) + 1)
        set_(key, int(get(key)) + 1)
        set_(key, int(get(key)) + 1)
        set_(key, int(get(key)) + 1)
    for _ in repeat(None, k & 3):
        set_(key, int(get(key)) + 1)


def redis_rpush(local: Any, k: int, base: int) -> None:
    """``RPUSH key item``: one round trip, atomic in the server."""
    client, key = local
    rpush = client.rpush
    for i in range(k):
        rpush(key, base + i)


def redis_pipeline_incr(local: Any, k: int, base: int) -> None:
    """``INCR`` queued in a pipeline, sent BATCH at a time (the last batch may be shorter)."""
    client, key = local
    pipe = client.pipeline(transaction=False)
    incr, execute = pipe.incr, pipe.execute
    full, rest = divmod(k, BATCH)
    for _ in repeat(None, full):
        for _ in repeat(None, BATCH // 4):  # unrolled x4 (BATCH is a multiple of 4)
            incr(key)
            incr(key)
            incr(key)
            incr(key)
        execute()
    for _ in repeat(None, rest):
        incr(key)
    if rest:
        execute()
    pipe.reset()


def redis_pipeline_rpush(local: Any, k: int, base: int) -> None:
    """``RPUSH`` queued in a pipeline, sent BATCH at a time."""
    client, key = local
    pipe = client.pipeline(transaction=False)
    rpush, execute = pipe.rpush, pipe.execute
    end = base + k
    for start in range(base, end, BATCH):
        for item in range(start, min(start + BATCH, end)):
            rpush(key, item)
        execute()
    pipe.reset()


PIPELINE = f"redis-pipeline-{BATCH}"

MECHANISMS = (
    Mechanism("redis", "atomic", "increment", "redis", RedisCounterStore, redis_incr,
              "Redis INCR: one round trip per increment, atomic in the server"),
    Mechanism("redis", "none", "increment", "redis", RedisCounterStore, redis_get_set,
              "Redis GET then SET: two round trips, racy"),
    Mechanism(PIPELINE, "atomic", "increment", "redis", RedisCounterStore,
              redis_pipeline_incr, f"Redis INCR pipelined, {BATCH} per round trip"),
    Mechanism("redis", "atomic", "append", "redis", RedisListStore, redis_rpush,
              "Redis RPUSH: one round trip per item, atomic in the server"),
    Mechanism(PIPELINE, "atomic", "append", "redis", RedisListStore, redis_pipeline_rpush,
              f"Redis RPUSH pipelined, {BATCH} per round trip"),
)
