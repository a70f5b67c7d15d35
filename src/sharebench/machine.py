"""Who, where and when of a run: machine description and run ids (stored in every row)."""

from __future__ import annotations

import os
import platform
import secrets
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sharebench.schema import RunInfo


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or platform.processor() elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_count() -> int:
    """CPUs this process may run on (affinity-aware), which is what contention depends on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def git_commit(cwd: Path | None = None) -> str:
    """Short commit of the working tree, with ``+dirty`` when it has changes; '' outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=cwd, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return head + ("+dirty" if dirty else "")


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: ``20261126T153000Z-1a2b3c``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_info(profile: str, run_id: str | None = None) -> RunInfo:
    """Describe this machine and interpreter for a new run."""
    now = datetime.now(UTC)
    return RunInfo(
        run_id=run_id or new_run_id(now),
        timestamp_utc=now.isoformat(timespec="seconds"),
        profile=profile,
        hostname=socket.gethostname(),
        cpu_model=cpu_model(),
        cpu_count=cpu_count(),
        python=f"{platform.python_implementation()} {platform.python_version()}",
        platform=f"{platform.system()}-{platform.release()}-{platform.machine()}",
        git_commit=git_commit(),
    )

