"""The one place tests build results from: a run's identity and benchmark records.

Every test that needs a ``RunInfo`` or a ``BenchmarkRecord`` takes it from here, with only
the fields it cares about given, so a new field in the schema is one change here, not one per
test file.
"""

from __future__ import annotations

from typing import Any

from sharebench.schema import BenchmarkRecord, RunInfo
from sharebench.status import Status


def run_info(**overrides: Any) -> RunInfo:
    """A run on a made-up 2-CPU host; any field can be overridden."""
    fields: dict[str, Any] = {
        "run_id": "20261126T000000Z-abcdef",
        "timestamp_utc": "2026-11-26T00:00:00+00:00",
        "profile": "quick",
        "hostname": "host",
        "cpu_model": "AMD EPYC",
        "cpu_count": 2,
        "python": "CPython 3.11.7",
        "platform": "Linux-x86_64",
        "git_commit": "abc123",
    }
    fields.update(overrides)
    return RunInfo(**fields)


def status(text: str | Status) -> Status:
    """``"ok"``, ``"error: ..."``, ``"skipped: ..."`` (or a Status) as a Status."""
    return text if isinstance(text, Status) else Status.parse(text)


def record(**overrides: Any) -> BenchmarkRecord:
    """A locked shm increment at 2 processes with four clean rounds; override any field
    (``status`` may be given as text)."""
    fields: dict[str, Any] = {
        "family": "shm", "mechanism": "shm", "sync": "lock", "operation": "increment",
        "processes": 2, "start_method": "fork", "ops_per_worker": 1000,
        "warmup_rounds": 1, "round_target_s": 0.05, "setup_s": 0.01,
        "round_seconds": [0.05, 0.04, 0.06, 0.05], "round_lost": [0, 0, 0, 0],
        "issued_ops": 8000,
    }
    fields.update(overrides)
    fields["status"] = status(fields.get("status", Status.OK))
    return BenchmarkRecord(**fields)
