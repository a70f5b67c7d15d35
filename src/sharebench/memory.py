"""How much memory a worker process owns: its unique and proportional set sizes (USS, PSS).

After ``fork`` a child shares every page with its parent until one of them writes to it.
*USS* counts the pages only this process maps (what it would give back by exiting); *PSS*
counts every page divided by the number of processes sharing it. A worker that "only reads"
an inherited dict still writes to every object it touches (the reference count lives in the
object), so its USS grows towards a full copy: copy-on-write turns into copy-on-read.

Read from Linux's ``/proc/<pid>/smaps_rollup`` (one summary line per field, kB). Elsewhere,
or when the file cannot be read, :class:`MemoryUnavailable` says why: the memory columns of a
run are then ``skipped`` with that reason, never a crash. A leaf module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class MemoryUnavailable(OSError):
    """The memory of a process cannot be read here; the message says why."""


@dataclass(frozen=True)
class Memory:
    """USS and PSS of one process, in bytes."""

    uss: int
    pss: int

    def __sub__(self, other: Memory) -> Memory:
        return Memory(self.uss - other.uss, self.pss - other.pss)


def parse_smaps_rollup(text: str) -> Memory:
    """USS (``Private_Clean + Private_Dirty + Private_Hugetlb``) and PSS of a rollup."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if sep and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            fields[name.strip()] = int(parts[0]) * 1024
    if "Pss" not in fields or "Private_Dirty" not in fields:
        raise MemoryUnavailable("smaps_rollup has no Pss/Private_Dirty lines")
    uss = sum(fields.get(k, 0) for k in ("Private_Clean", "Private_Dirty", "Private_Hugetlb"))
    return Memory(uss=uss, pss=fields["Pss"])


def read_memory(pid: int, proc: Path = Path("/proc")) -> Memory:
    """The USS and PSS of process ``pid`` now; :class:`MemoryUnavailable` if unreadable."""
    path = proc / str(pid) / "smaps_rollup"
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        if not proc.is_dir():
            raise MemoryUnavailable("no /proc here: USS/PSS are read from Linux's "
                                    "/proc/<pid>/smaps_rollup") from None
        raise MemoryUnavailable(f"{path} does not exist (process gone, or a kernel "
                                "older than 4.14)") from None
    except OSError as exc:
        raise MemoryUnavailable(f"{path}: {exc.strerror or exc}") from None
    return parse_smaps_rollup(text)
