"""Mechanisms that misbehave on purpose, importable by spawned workers (tests/ is on sys.path)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from sharebench.mechanisms import get
from sharebench.mechanisms.base import Unavailable
from sharebench.mechanisms.manager import ManagerListStore
from sharebench.mechanisms.sharedctypes import RawValueStore
from sharebench.verify import worker_tag


class SlowAttachStore(RawValueStore):
    """A RawValue whose attach takes half a second: start-up must not show in round times."""

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        time.sleep(0.5)
        return handles


def raising_loop(local: Any, k: int, base: int) -> None:
    raise ZeroDivisionError("boom in the loop")


def dying_loop(local: Any, k: int, base: int) -> None:
    os._exit(3)


def hanging_loop(local: Any, k: int, base: int) -> None:
    time.sleep(60)


RAWLOCK = get("rawvalue", "lock", "increment")
SLOW_ATTACH = RAWLOCK.replace(store=SlowAttachStore)
RAISING = RAWLOCK.replace(loop=raising_loop)
DYING = RAWLOCK.replace(loop=dying_loop)
HANGING = RAWLOCK.replace(loop=hanging_loop)
# The racy loop, labelled as if it were locked: verification must catch it.
MISLABELLED = get("rawvalue", "none", "increment").replace(sync="lock")


# --- faults for the reliability matrix ------------------------------------------------------


def sigkill_self_loop(local: Any, k: int, base: int) -> None:
    """A worker killed with SIGKILL in the middle of a round (after some real work)."""
    v, lock = local
    for _ in range(min(k, 100)):
        with lock:
            v.value += 1
    os.kill(os.getpid(), signal.SIGKILL)


class ManagerKillStore(ManagerListStore):
    """A Manager list whose workers also get the server's pid, so a loop can kill it."""

    def handles(self) -> tuple[Any, ...]:
        return (*super().handles(), self.manager._process.pid)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        return handles


def kill_manager_loop(local: Any, k: int, base: int) -> None:
    """Append a few items, then (worker 0) SIGKILL the Manager server and carry on."""
    items, server_pid = local
    for i in range(k):
        if i == 5 and base == worker_tag(0):
            os.kill(server_pid, signal.SIGKILL)
        items.append(base + i)


def ready_then_hang_loop(local: Any, k: int, base: int) -> None:
    """Say (through a file named by the environment) that the round started, then hang."""
    Path(os.environ["SHAREBENCH_TEST_READY"]).touch()
    time.sleep(60)


SIGKILLED = RAWLOCK.replace(loop=sigkill_self_loop)
MANAGER_KILLED = get("manager-list", "atomic", "append").replace(
    store=ManagerKillStore, loop=kill_manager_loop)
HANG_SHM = get("shm", "lock", "increment").replace(name="hang-shm", loop=ready_then_hang_loop)


class NoServiceStore(RawValueStore):
    """A store whose service is missing, as the Redis stores say when no server can be had."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        raise Unavailable("no frobnicator on this machine (install frobnicatord)")


class BrokenReadStore(RawValueStore):
    """The parent's read-back fails with an exception the harness has no special case for
    (as redis-py's ConnectionError or a dead Manager's EOFError would)."""

    def read_counter(self) -> int:
        raise LookupError("the counter went away")


BROKEN_READ = RAWLOCK.replace(store=BrokenReadStore)


#: What ``--sharebench-mechanisms faulty`` adds to a real benchmark run (distinct names, so
#: they sit beside the registry's own).
MECHANISMS = (
    HANG_SHM,
    RAWLOCK.replace(name="mislabelled", loop=get("rawvalue", "none", "increment").loop),
    RAWLOCK.replace(name="dying", loop=dying_loop),
    RAWLOCK.replace(name="no-service", store=NoServiceStore),
)
