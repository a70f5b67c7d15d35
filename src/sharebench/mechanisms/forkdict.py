"""Read-mostly data that ``fork`` "shares": a plain dict built by the parent, inherited.

* ``fork-dict/none`` lookup: the parent builds a dict of N entries before the workers fork;
  each worker reads it directly — no copy, no server, no lock (nothing is written).
* ``fork-dict-frozen/none``: the same after ``gc.freeze()`` (the recipe of the ``gc``
  documentation: freeze right before ``fork`` so the children's collections never touch the
  parent's objects; unfrozen when the benchmark ends).

What the numbers show is memory, not speed: the pages stay shared only until something writes
to them, and *reading* an object writes to it — its reference count lives in its header. Every
entry a worker reads copies the page it sits on, so each worker's unique memory grows towards a
full copy of the dict: copy-on-write becomes copy-on-read (the long-standing problem of
PyTorch's data loaders). ``gc.freeze()`` only keeps the garbage collector's writes away; ints
and bytes are not even tracked by the collector, so it cannot help here. The memory columns of
the CSV measure it (see :mod:`sharebench.memory`).

Fork only: under spawn or forkserver a worker would get a pickled copy, which is a different
benchmark; those rows are ``skipped``.
"""

from __future__ import annotations

import gc
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.keyed import (
    LookupStore,
    lookup_keys,
    lookup_order,
    mapping_lookup,
    value_of,
)


class ForkDictStore(LookupStore):
    """A dict of N entries in the parent, inherited by forked workers."""

    freeze: ClassVar[bool] = False

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        if ctx.get_start_method() != "fork":
            raise Unavailable(
                f"fork-dict needs the fork start method (a {ctx.get_start_method()} worker "
                "would get a pickled copy, not the parent's pages)")
        self.table: dict[int, bytes] | None = {
            key: value_of(key) for key in lookup_keys(spec.keys)}
        self.frozen = False
        if self.freeze:
            gc.freeze()  # right before the workers fork (the pool starts next)
            self.frozen = True

    def handles(self) -> tuple[Any, ...]:
        return (self.table, self.spec.keys)

    @staticmethod
    def for_worker(local: Any, worker: int) -> Any:
        table, entries = local
        return (table, lookup_order(worker, entries))

    def close(self) -> None:
        if self.frozen:
            gc.unfreeze()
            self.frozen = False
        self.table = None


class FrozenForkDictStore(ForkDictStore):
    """The same dict, with ``gc.freeze()`` before the fork."""

    freeze: ClassVar[bool] = True


MECHANISMS = (
    Mechanism("fork-dict", "none", "lookup", "fork", ForkDictStore, mapping_lookup,
              "a plain dict built by the parent, inherited through fork, read directly"),
    Mechanism("fork-dict-frozen", "none", "lookup", "fork", FrozenForkDictStore,
              mapping_lookup, "the same dict after gc.freeze() before the fork"),
)
