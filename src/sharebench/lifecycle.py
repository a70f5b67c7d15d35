"""What keeps the suite from leaving a mess: children that die with their parent, and the
cleaning of shared memory blocks that a killed run could not unlink.

Every block the suite creates is named ``sharebench-<pid>-<random>`` (see
``mechanisms.shm.block_name``), where ``<pid>`` is the process that ran the benchmarks. A
block whose pid is no longer alive belongs to a dead run and is safe to remove; a block of a
live pid is never touched (it may be a run in progress, on this machine, right now).

The same naming covers the other things a killed run can leave: named POSIX semaphores
(``/dev/shm/sem.sharebench-<pid>-...``), and private directories of libraries (a database,
socket files, a cluster's session) made with :func:`run_dir` under the temporary directory.
A directory may hold a ``cleanup`` file: one line per object that lives elsewhere and must be
removed by name (``mqueue /name``: a POSIX message queue, which Linux keeps in a file system
that may not be mounted where we could list it; ``pidfile <path>``: processes to kill, one
``pid start-time`` line each, killed only if that pid still started then).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SHM_DIR = Path("/dev/shm")
PREFIX = "sharebench-"
_NAME = re.compile(rf"^(?:sem\.)?{re.escape(PREFIX)}(\d+)-[0-9a-zA-Z_.-]+$")
#: The file in a run directory naming objects to remove with it (see the module docstring).
CLEANUP = "cleanup"


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
    """Something of the suite's, named for its run: a block or semaphore in /dev/shm, or a run
    directory (size 0)."""

    name: str
    pid: int
    size: int
    path: Path

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
        found.append(Segment(entry.name, int(m.group(1)), size, entry))
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


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/<pid>/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may hold spaces
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


def run_dir(run_token: str, what: str) -> Path:
    """A new private directory ``<tmp>/sharebench-<run_token>-<what>-<random>`` (mode 0700)
    for a library's files; :func:`clean_stale_dirs` removes it once its run is dead."""
    path = Path(tempfile.gettempdir()) / f"{PREFIX}{run_token}-{what}-{secrets.token_hex(4)}"
    path.mkdir(mode=0o700)
    return path


def note_cleanup(directory: Path, kind: str, name: str) -> None:
    """Remember, in ``directory``, an object outside it to remove with it (``mqueue``)."""
    with (directory / CLEANUP).open("a", encoding="utf-8") as fh:
        fh.write(f"{kind} {name}\n")


def remove_run_dir(directory: Path) -> None:
    """Remove a run directory and the objects its cleanup file names (best effort)."""
    notes = directory / CLEANUP
    if notes.exists():
        for line in notes.read_text(encoding="utf-8").splitlines():
            kind, _, name = line.partition(" ")
            if kind == "mqueue":
                with contextlib.suppress(Exception):
                    import posix_ipc  # type: ignore[import-not-found,unused-ignore]

                    posix_ipc.unlink_message_queue(name)
            elif kind == "pidfile":  # lines "pid start-time": a recycled pid is not ours
                with contextlib.suppress(OSError, ValueError):
                    for entry in Path(name).read_text(encoding="ascii").splitlines():
                        pid, _, start = entry.partition(" ")
                        if start and start_time(int(pid)) == int(start):
                            os.kill(int(pid), signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)


def suite_dirs(tmp: Path | None = None) -> list[Segment]:
    """Run directories of the suite under the temporary directory (size 0: not counted)."""
    base = tmp or Path(tempfile.gettempdir())
    if not base.is_dir():
        return []
    found = []
    for entry in sorted(base.iterdir()):
        m = _NAME.match(entry.name)
        if m is not None and entry.is_dir():
            found.append(Segment(entry.name, int(m.group(1)), 0, entry))
    return found


def clean_stale_dirs(tmp: Path | None = None, dry_run: bool = False) -> list[Segment]:
    """Remove the run directories of dead runs (and what they name); live runs' are kept."""
    base = tmp or Path(tempfile.gettempdir())
    removed = []
    for seg in suite_dirs(base):
        if seg.stale:
            if not dry_run:
                remove_run_dir(base / seg.name)
            removed.append(seg)
    return removed
