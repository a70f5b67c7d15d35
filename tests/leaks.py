"""What a test may leave behind, looked up one way for every test: the shared memory blocks
of a run (by the pid in their names, via ``sharebench.lifecycle``) and our live children."""

from __future__ import annotations

from sharebench import lifecycle

# multiprocessing's own helpers live until the interpreter exits; they are not ours to stop.
_STDLIB_HELPERS = ("resource_tracker", "forkserver")


def segments_of(pid: int) -> list[str]:
    """Names of the blocks in /dev/shm made by the run with this pid."""
    return [s.name for s in lifecycle.suite_segments() if s.pid == pid]


def children() -> list[str]:
    """Live child processes of this process, other than multiprocessing's helpers."""
    import psutil

    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.NoSuchProcess:
            continue
        if any(h in cmdline for h in _STDLIB_HELPERS):
            continue
        out.append(f"{child.pid} {cmdline[:120]}")
    return out
