"""Cross-check the harness against a plain ``timeit`` of the same statement in one process.

If the harness measured something other than the operation (its own overhead, start-up), the
single-process cost per operation would disagree with ``timeit``. Used by
``sharebench crosscheck``; the README quotes its output.
"""

from __future__ import annotations

import multiprocessing
import statistics
import timeit
from dataclasses import dataclass


@dataclass(frozen=True)
class Statement:
    """A benchmark's operation as a timeit statement, with the setup that makes its object."""

    mechanism: str
    sync: str
    setup: str
    stmt: str
    teardown: str = ""


STATEMENTS: tuple[Statement, ...] = (
    Statement("rawvalue", "none", "v = ctx.RawValue('q', 0)", "v.value += 1"),
    Statement("value", "lock", "v = ctx.Value('q', 0); lock = v.get_lock()",
              "with lock:\n    v.value += 1"),
    Statement("manager-value", "lock",
              "m = ctx.Manager(); v = m.Value('q', 0); lock = m.Lock()",
              "with lock:\n    v.value += 1", "del v, lock; m.shutdown()"),
)


def timeit_ns(statement: Statement, repeat: int = 7, target: float = 0.05) -> float:
    """Median ns per execution over ``repeat`` timeit runs of about ``target`` seconds each."""
    namespace: dict[str, object] = {"ctx": multiprocessing.get_context("fork")}
    exec(statement.setup, namespace)  # our own constant setup strings, nothing external
    try:
        timer = timeit.Timer(statement.stmt, globals=namespace)
        number = 1
        while True:  # timeit.autorange, with our target instead of 0.2 s
            t = timer.timeit(number)
            if t >= target:
                break
            number = max(number * 2, int(number * target / max(t, 1e-9) * 1.1))
        runs = timer.repeat(repeat=repeat, number=number)
        return statistics.median(runs) / number * 1e9
    finally:
        if statement.teardown:
            exec(statement.teardown, namespace)
