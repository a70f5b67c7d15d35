"""How a benchmark ended: ``ok``, ``error`` or ``skipped``, with the reason. A leaf module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    import pandas as pd

StatusKind = Literal["ok", "error", "skipped"]
STATUS_KINDS: tuple[StatusKind, ...] = ("ok", "error", "skipped")


@dataclass(frozen=True)
class Status:
    """How a benchmark ended: ``ok``, ``error`` (it failed: a bug, a dead worker, data lost
    under a lock) or ``skipped`` (it could not run here: a missing service), with the reason.

    Written to the CSV as ``ok``, ``error: <reason>`` or ``skipped: <reason>``. A skipped
    benchmark is not a failure: ``report --check`` passes it, and the page and captions count
    it apart from the failed ones.
    """

    kind: StatusKind
    reason: str = ""

    OK: ClassVar[Status]

    def __post_init__(self) -> None:
        if self.kind not in STATUS_KINDS:
            raise ValueError(f"status kind {self.kind!r} is not one of {', '.join(STATUS_KINDS)}")
        if (self.kind == "ok") != (not self.reason):
            raise ValueError("an ok status has no reason; error and skipped ones must have one")

    @classmethod
    def error(cls, reason: str) -> Status:
        """A failed benchmark, e.g. ``Status.error("worker 0 died during round")``."""
        return cls("error", " ".join(reason.split()) or "unknown error")

    @classmethod
    def skipped(cls, reason: str) -> Status:
        """A benchmark that could not run here, e.g. ``Status.skipped("no redis-server")``."""
        return cls("skipped", " ".join(reason.split()) or "unavailable")

    @classmethod
    def parse(cls, text: str) -> Status:
        """The status of a CSV cell; ValueError if it is none of the three forms."""
        if text == "ok":
            return cls.OK
        kind, sep, reason = text.partition(": ")
        if sep and kind in ("error", "skipped") and reason.strip():
            return cls(kind, reason)  # type: ignore[arg-type]  # checked just above
        raise ValueError(f"status {text!r} is not ok, 'error: ...' or 'skipped: ...'")

    @property
    def is_ok(self) -> bool:
        """Measured, and correct where correctness was promised."""
        return self.kind == "ok"

    @property
    def is_error(self) -> bool:
        """Failed: counts against the run (``report --check`` exits 1)."""
        return self.kind == "error"

    @property
    def is_skipped(self) -> bool:
        """Could not run here; says why, and is not a failure."""
        return self.kind == "skipped"

    def __str__(self) -> str:
        return "ok" if self.kind == "ok" else f"{self.kind}: {self.reason}"


Status.OK = Status("ok")


def status_kinds(statuses: pd.Series[Any]) -> pd.Series[str]:
    """The kind (``ok``/``error``/``skipped``) of each status cell of a frame's column."""
    return statuses.astype(str).str.partition(":")[0]
