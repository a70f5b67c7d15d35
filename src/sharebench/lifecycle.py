"""What keeps the suite from leaving a mess: children that die with their parent, and the
cleaning of shared memory blocks that a killed run could not unlink.

Every block the suite creates is named ``sharebench-<pid>-<random>`` (see
``mechanisms.shm.block_name``), where ``<pid>`` is the process that ran the benchmarks. A
block whose pid is no longer alive belongs to a dead run and is safe to remove; a block of a
live pid is never touched (it may be a run in progress, on this machine, right now).
"""

from __future__ import annotations

import os
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

SHM_DIR = Path("/dev/shm")
PREFIX = "sharebench-"
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-[0-9a-zA-Z_-]+$")


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``).

    Workers and Manager servers of a parent killed with SIGKILL would otherwise linger (a
    Manager server waits for clients forever). Elsewhere this does nothing; a worker still
    ends once its parent is gone, at its next message.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (any owner)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True


@dataclass(frozen=True)
class Segment:
    """A shared memory block of the suite found in /dev/shm."""

    name: str
    pid: int
    size: int

    @property
    def stale(self) -> bool:
        """Its run is dead: nobody will unlink it but us."""
        return not pid_alive(self.pid)


def suite_segments(shm_dir: Path = SHM_DIR) -> list[Segment]:
    """Blocks in ``shm_dir`` that carry the suite's prefix and a pid, sorted by name."""
    if not shm_dir.is_dir():
        return []
    found = []
    for entry in sorted(shm_dir.iterdir()):
        m = _NAME.match(entry.name)
        if m is None:
            continue
        try:
            size = entry.stat().st_size
        except FileNotFoundError:
            continue  # unlinked while we looked
        found.append(Segment(entry.name, int(m.group(1)), size))
    return found


def clean_stale(shm_dir: Path = SHM_DIR, dry_run: bool = False) -> list[Segment]:
    """Remove the blocks of dead runs; return what was (or, with ``dry_run``, would be)
    removed. Blocks of live runs are left alone."""
    removed = []
    for seg in suite_segments(shm_dir):
        if not seg.stale:
            continue
        if not dry_run:
            try:
                (shm_dir / seg.name).unlink()
            except FileNotFoundError:
                continue  # someone else cleaned it meanwhile
        removed.append(seg)
    return removed
