"""The harness's own yardsticks, run like any benchmark (family ``harness``).

* ``noop/none`` — the loop with an empty body: what the harness itself costs per operation.
* ``reference/none`` — ``obj.n += 1`` on a plain object private to one process: shares
  nothing, so it measures only the machine and interpreter. ``sharebench compare`` divides by
  it to compare runs made on different machines.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

from sharebench.mechanisms.base import Mechanism
from sharebench.mechanisms.counters import Counter, LocalStore


class NothingShared(LocalStore):
    """No shared object: each worker counts in its own memory and reports the count."""


def noop_loop(local: Any, k: int, base: int) -> int:
    """Empty body: the per-operation cost of the loop itself."""
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        pass
        pass
        pass
        pass
    for _ in repeat(None, k & 3):
        pass
    return k


def reference_loop(local: Any, k: int, base: int) -> int:
    """A plain attribute increment on an unshared object."""
    obj = Counter()
    for _ in repeat(None, k >> 2):  # unrolled x4: the loop costs ~1 ns/op
        obj.n += 1
        obj.n += 1
        obj.n += 1
        obj.n += 1
    for _ in repeat(None, k & 3):
        obj.n += 1
    return obj.n


MECHANISMS = (
    Mechanism("noop", "none", "increment", "harness", NothingShared, noop_loop,
              "empty loop body: the harness's own cost per operation", max_processes=1),
    Mechanism("reference", "none", "increment", "harness", NothingShared, reference_loop,
              "obj.n += 1 on an unshared object: machine reference for compare",
              max_processes=1),
)
