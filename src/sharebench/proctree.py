"""Processes by their relations, read from Linux's /proc: a process tree, a session, and pids
checked against their start time (a pid is recycled once its process is reaped; a start time
tells the process that had it from the one that has it now).

Used to clean up after libraries that start processes of their own (a Ray cluster: see
:mod:`sharebench.rayservice`). Elsewhere than Linux every function finds nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from sharebench.lifecycle import pid_alive


class _Stat:
    """What /proc/<pid>/stat says of a live process (zombies have exited: not listed)."""

    __slots__ = ("ppid", "session", "start")

    def __init__(self, ppid: int, session: int, start: int) -> None:
        self.ppid = ppid
        self.session = session
        self.start = start


def _stat(pid: int) -> _Stat | None:
    """Parent, session and start time (clock ticks) of a process; None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the name may hold spaces and parentheses
    if not fields or fields[0] == "Z":  # a zombie has exited: nothing to kill
        return None
    return _Stat(int(fields[1]), int(fields[3]), int(fields[19]))


def _processes() -> dict[int, _Stat]:
    """Every live process of the machine."""
    proc = Path("/proc")
    out = {}
    if proc.is_dir():
        for entry in proc.iterdir():
            if entry.name.isdigit():
                info = _stat(int(entry.name))
                if info is not None:
                    out[int(entry.name)] = info
    return out


def process_tree(root: int) -> dict[int, int]:
    """Every live process under ``root`` (included): ``pid -> start time``."""
    every = _processes()
    children: dict[int, list[int]] = {}
    for pid, info in every.items():
        children.setdefault(info.ppid, []).append(pid)
    tree: dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in every and pid not in tree:
            tree[pid] = every[pid].start
            todo.extend(children.get(pid, ()))
    return tree


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid``. Every Ray process of a cluster lives in its driver's
    session (the driver leads it; Ray's workers change their process group, not their
    session), and Linux hands out no new pid equal to ``sid`` while the session has a member:
    killing these never hits a stranger."""
    return [pid for pid, info in _processes().items() if info.session == sid]


def kill_session(sid: int, attempts: int = 50) -> None:
    """SIGKILL every process of session ``sid`` (but the caller), until none is left (a
    raylet may start a worker while its siblings die)."""
    me = os.getpid()
    for _ in range(attempts):
        members = [p for p in session_members(sid) if p != me]
        if not members:
            return
        for pid in members:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def same_process(pid: int, start: int) -> bool:
    """Whether ``pid`` still is the process that started at ``start`` (not a recycled pid)."""
    info = _stat(pid)
    return info is not None and info.start == start


def kill_survivors(procs: dict[int, int], grace: float) -> None:
    """Wait up to ``grace`` s for the recorded processes to end, then SIGKILL the rest (only
    those whose start time still matches: a recycled pid is someone else's process)."""
    deadline = time.monotonic() + grace
    alive = [p for p, s in procs.items() if same_process(p, s)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if same_process(p, procs[p])]
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in alive:  # reaped by whoever is their parent now; wait until they are gone
        end = time.monotonic() + 2.0
        while pid_alive(pid) and same_process(pid, procs[pid]) and time.monotonic() < end:
            time.sleep(0.02)
