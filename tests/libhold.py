"""A run that holds every library family at once, then waits to be signalled.

``python libhold.py OUT.json``: opens one benchmark of each family in :data:`LIBRARY` (two
fork workers each, one round run so every resource is really in use: queues, sockets,
semaphores, databases, Ray actors), writes what it holds to ``OUT.json`` and sleeps until
signalled. tests/test_lib_faults.py sends SIGINT (everything must be released on the way out)
or SIGKILL (the workers' death signal and ``sharebench clean`` must leave nothing).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from sharebench import lifecycle
from sharebench.harness import BenchmarkRun, HarnessConfig
from sharebench.mechanisms import get
from sharebench.mechanisms.base import Mechanism, Unavailable

#: One benchmark per library family, chosen for the resources it holds.
LIBRARY: tuple[Mechanism, ...] = (
    get("faster-fifo", "atomic", "append"),         # shared-memory ring buffers
    get("zmq", "atomic", "append"),                 # ipc:// socket files in a run directory
    get("posix-mq", "atomic", "append"),            # kernel message queues (/dev/mqueue)
    get("shm", "posix-sem", "increment"),           # named semaphores (/dev/shm/sem.*)
    get("ultradict", "lock", "dict-increment"),     # UltraDict's segments and its lock
    get("shared-memory-dict", "lock", "dict-increment"),
    get("diskcache", "atomic", "increment"),        # an SQLite database in a run directory
    get("lmdb", "atomic", "dict-increment"),        # an LMDB environment (lock file, readers)
    get("shm-fetchadd", "atomic", "increment"),     # our C fetch-add on a block
    get("shm-atomicshm", "atomic", "increment"),
    get("ray-actor", "atomic", "increment"),        # a local Ray cluster and an actor
)
CONFIG = HarnessConfig(round_time=0.01, rounds=1, warmup_rounds=0)


def keys_for(mech: Mechanism) -> int:
    return 50 if mech.operation == "dict-increment" else 0


def queue_names(directory: Path) -> list[str]:
    """The message queues a run directory's cleanup notes name."""
    notes = directory / lifecycle.CLEANUP
    if not notes.exists():
        return []
    return [line.split(" ", 1)[1] for line in notes.read_text().splitlines()
            if line.startswith("mqueue ")]


def main(out: Path) -> None:
    pid = os.getpid()
    held: list[str] = []
    skipped: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for mech in LIBRARY:
            try:
                run = stack.enter_context(BenchmarkRun(mech, 2, "fork", CONFIG,
                                                       keys=keys_for(mech)))
            except Unavailable as exc:  # a library this machine lacks: say so
                skipped[mech.label] = str(exc)
                continue
            run.use_k(10)
            run.measure_round()
            held.append(mech.label)
        dirs = [d.name for d in lifecycle.suite_dirs() if d.pid == pid]
        state = {
            "pid": pid,
            "held": held,
            "skipped": skipped,
            "segments": [s.name for s in lifecycle.suite_segments() if s.pid == pid],
            "dirs": dirs,
            "queues": [q for d in dirs for q in queue_names(Path(tempfile.gettempdir()) / d)],
        }
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.rename(out)  # whole, or not there yet
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
