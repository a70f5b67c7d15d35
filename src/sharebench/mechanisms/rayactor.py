"""Ray (family ``ray``): named actors and the object store of a local Ray cluster.

The cluster is the run's, started by :mod:`sharebench.rayservice` at the first Ray benchmark
(a helper process is Ray's driver: the run itself must stay a process that can fork). Each
store asks that driver to create a named actor; every worker attaches to the cluster
(``ray.init(address=...)``, not timed), looks the actor up by name and calls it. The parent
reads and resets the actor's state through the driver between rounds.

* ``ray-actor/atomic`` increment: ``ray.get(counter.incr.remote())`` — one round trip to the
  actor's process per increment. An actor runs one method at a time, so every increment is
  applied exactly once whatever the number of callers (``atomic``).
* ``ray-actor-batch-100/atomic`` increment: :data:`BATCH` (100) ``incr.remote()`` submitted,
  then one ``ray.get`` of the 100 refs: the calls are pipelined, the waits shared.
* ``ray-actor/atomic`` dict-increment: an actor holding a dict,
  ``ray.get(d.incr.remote(key))``, checked key by key (:mod:`sharebench.mechanisms.keyed`).
* ``ray-object-store/atomic`` transfer: the worker ``ray.put``s the S-byte array (one copy
  into the node's shared-memory object store) and hands the ref to a *sink* actor,
  ``ray.get(sink.take.remote(ref))``; Ray resolves the ref and the sink reads the array in
  place (zero-copy: a read-only numpy view of the object store). The receiver of the
  transfer contract (:mod:`sharebench.mechanisms.transfer`) is the sink: it checks the stamp
  and probe words of every array, keeps the last one for the byte-by-byte check, and the
  parent collects its count after the round. The worker waits for each ``take`` (one array
  in flight), as the shm sender waits for its slot.

Ray is imported lazily, in the workers and in Ray's own processes only; when it is not
installed every row reads ``skipped: ray is not installed (pip install ray==2.60.0)``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from itertools import cycle, islice, repeat
from typing import TYPE_CHECKING, Any, ClassVar

from sharebench.lifecycle import PREFIX
from sharebench.mechanisms.base import Mechanism, Store, StoreSpec
from sharebench.mechanisms.counters import CounterStore
from sharebench.mechanisms.keyed import KeyedStore, key_sequence
from sharebench.mechanisms.transfer import Payload, TransferStore, check_payload_size
from sharebench.rayservice import NAMESPACE, RAY_ENV, RayService, ServiceError, shared
from sharebench.verify import RoundCheck

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

#: Calls submitted per ``ray.get`` in ``ray-actor-batch-100``.
BATCH = 100


# --------------------------------------------------------------------------------------
# The actors (plain classes: the driver wraps them with ray.remote; Ray's worker processes
# import them from this module)


class CounterActor:
    """One integer."""

    def __init__(self) -> None:
        self.n = 0

    def ready(self) -> bool:
        """Answers once the actor is up (callers warm up with it)."""
        return True

    def incr(self) -> int:
        """Add 1; the new value."""
        self.n += 1
        return self.n

    def read(self) -> int:
        """The value."""
        return self.n

    def reset(self) -> None:
        """Back to 0."""
        self.n = 0


class DictActor:
    """A dict of per-key counts."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def ready(self) -> bool:
        """Answers once the actor is up."""
        return True

    def incr(self, key: int) -> int:
        """Add 1 to ``key``'s count; the new count."""
        counts = self.counts
        counts[key] = n = counts.get(key, 0) + 1
        return n

    def read(self, keys: int) -> list[int]:
        """Counts of keys ``0 .. keys - 1``."""
        get = self.counts.get
        return [get(k, 0) for k in range(keys)]


class SinkActor:
    """The receiver of a transfer: checks every array it is handed, as the parent does for the
    other transfer mechanisms (the same :class:`TransferStore` code)."""

    def __init__(self, size: int) -> None:
        # A receiver with nothing to receive but what take() gets: one sender, S bytes.
        self.receiver = TransferStore(None, StoreSpec(1, 0, payload_bytes=size))
        self.seq = 0

    def ready(self) -> bool:
        """Answers once the actor is up."""
        return True

    def take(self, array: Any) -> None:
        """Check one array (a read-only view of the object store)."""
        words = array.view("int64")
        self.receiver._check(self.seq, int(words[0]), words)
        self.seq += 1

    def collect(self, ops: int) -> RoundCheck:
        """The round's count (the last array compared byte by byte); starts the next round."""
        self.seq = 0
        return self.receiver.collect(ops, ())


# --------------------------------------------------------------------------------------
# Stores


class RayLocal:
    """A worker's view: ``ray.get``, the bound method it calls, and what it calls it with."""

    __slots__ = ("actor", "call", "extra", "get", "payload", "put", "seq", "shutdown")

    def __init__(self, ray: Any, actor: Any, method: str, extra: tuple[Any, ...]) -> None:
        self.actor = actor
        self.get = ray.get
        self.put = ray.put
        self.shutdown = ray.shutdown
        self.call = getattr(actor, method).remote
        #: The store's handles after the common three (keys, payload size).
        self.extra = extra
        self.seq: list[int] = []
        self.payload: Payload | None = None


class _RayStore(Store):
    """Parent side: a named actor in the run's cluster; workers get its address and name."""

    #: The actor class, and the method the workers' loops call.
    actor: ClassVar[type]
    method: ClassVar[str]
    #: Round trips of a few hundred µs: this bounds any worker count generously.
    max_rate: ClassVar[float] = 1e6

    def _open(self, spec: StoreSpec, what: str, *args: Any) -> None:
        self.service: RayService | None = shared(spec.run_token)  # Unavailable without Ray
        self.name = f"{PREFIX}{spec.run_token}-{what}-{secrets.token_hex(4)}"
        self.service.create(self.name, self.actor, *args)

    def _call(self, method: str, *args: Any) -> Any:
        assert self.service is not None
        return self.service.call(self.name, method, *args)

    def handles(self) -> tuple[Any, ...]:
        assert self.service is not None
        return (self.service.gcs_address, self.name, self.method)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> RayLocal:
        """Join the cluster as a driver of its own, find the actor, call it once (untimed)."""
        address, name, method = handles[:3]
        os.environ.update(RAY_ENV)  # before ray is imported: no auth token, loopback only
        import ray

        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False,
                 configure_logging=False)
        actor = ray.get_actor(name, namespace=NAMESPACE)
        ray.get(actor.ready.remote())  # the first call sets up the connection to the actor
        return RayLocal(ray, actor, method, tuple(handles[3:]))

    @staticmethod
    def detach(local: RayLocal) -> None:
        """Leave the cluster (this driver only; the cluster goes on)."""
        local.actor = local.call = None
        local.shutdown()

    def close(self) -> None:
        """Kill the actor (the cluster stays up for the next benchmark)."""
        service, self.service = self.service, None
        if service is not None and service.running:
            try:
                service.kill(self.name)
            except ServiceError:
                pass  # the driver is gone, and the actor with it


class RayCounterStore(_RayStore, CounterStore):
    """A :class:`CounterActor`, read and zeroed through the driver between rounds."""

    actor = CounterActor
    method = "incr"

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._open(spec, "counter")

    def read_counter(self) -> int:
        return int(self._call("read"))

    def reset(self) -> None:
        self._call("reset")


class RayDictStore(_RayStore, KeyedStore):
    """A :class:`DictActor` of ``spec.keys`` counts."""

    actor = DictActor
    method = "incr"

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._open(spec, "dict")
        self.start_counts()

    def handles(self) -> tuple[Any, ...]:
        return (*super().handles(), self.spec.keys)

    @staticmethod
    def for_worker(local: RayLocal, worker: int) -> RayLocal:
        local.seq = key_sequence(worker, local.extra[0])
        return local

    def read_counts(self) -> list[int]:
        return [int(n) for n in self._call("read", self.spec.keys)]


class RayTransferStore(_RayStore):
    """A :class:`SinkActor` that receives and checks the arrays; the parent only collects."""

    actor = SinkActor
    method = "take"

    def __init__(self, ctx: BaseContext, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        check_payload_size(spec.payload_bytes)
        self._open(spec, "sink", spec.payload_bytes)

    def handles(self) -> tuple[Any, ...]:
        return (*super().handles(), self.spec.payload_bytes)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> RayLocal:
        local = _RayStore.attach(handles)
        local.payload = Payload(local.extra[0])
        return local

    def collect(self, ops_per_worker: int, reports: Sequence[Any]) -> RoundCheck:
        """What the sink counted (it checked every array as it arrived)."""
        check: RoundCheck = self._call("collect", ops_per_worker * self.spec.workers)
        return check


# --------------------------------------------------------------------------------------
# Loops


def ray_actor_incr(local: RayLocal, k: int, base: int) -> None:
    """``ray.get(counter.incr.remote())``: one round trip per increment."""
    get, incr = local.get, local.call
    for _ in repeat(None, k >> 2):  # unrolled x4 like the other increment loops
        get(incr())
        get(incr())
        get(incr())
        get(incr())
    for _ in repeat(None, k & 3):
        get(incr())


def ray_actor_incr_batch(local: RayLocal, k: int, base: int) -> None:
    """:data:`BATCH` ``incr.remote()`` submitted, then one ``ray.get`` of their refs."""
    get, incr = local.get, local.call
    full, rest = divmod(k, BATCH)
    for _ in repeat(None, full):
        get([incr() for _ in repeat(None, BATCH)])
    if rest:
        get([incr() for _ in repeat(None, rest)])


def ray_actor_dict_incr(local: RayLocal, k: int, base: int) -> None:
    """``ray.get(d.incr.remote(key))`` along the worker's key sequence."""
    get, incr = local.get, local.call
    for key in islice(cycle(local.seq), k):
        get(incr(key))


def ray_put_transfer(local: RayLocal, k: int, base: int) -> None:
    """``ray.put(array)``, then ``ray.get(sink.take.remote(ref))``: the sink reads it in place."""
    get, put, take = local.get, local.put, local.call
    assert local.payload is not None
    sources, words = local.payload.sources, local.payload.words
    for i in range(k):
        words[i & 1][0] = base + i  # the stamp; put() copies, so changing it later is safe
        get(take(put(sources[i & 1])))


BATCHED = f"ray-actor-batch-{BATCH}"

MECHANISMS = (
    Mechanism("ray-actor", "atomic", "increment", "ray", RayCounterStore, ray_actor_incr,
              "Ray actor counter: ray.get(counter.incr.remote()), one round trip each"),
    Mechanism(BATCHED, "atomic", "increment", "ray", RayCounterStore, ray_actor_incr_batch,
              f"Ray actor counter: {BATCH} incr.remote() per ray.get"),
    Mechanism("ray-actor", "atomic", "dict-increment", "ray", RayDictStore,
              ray_actor_dict_incr, "Ray actor holding a dict: ray.get(d.incr.remote(key))"),
    Mechanism("ray-object-store", "atomic", "transfer", "ray", RayTransferStore,
              ray_put_transfer,
              "ray.put(array) in the worker; an actor reads it zero-copy from the object store",
              max_processes=1),
)
