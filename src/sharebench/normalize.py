"""Machine normalisation: compare runs made on different machines by their own yardstick.

Every run holds a reference benchmark (one process incrementing a plain Python int, shares
nothing: :data:`REFERENCE`). With normalisation on, each run's round throughputs are divided
by the median throughput of its own reference, so a uniformly faster or slower machine cancels
out. ``auto`` turns it on when hostname, CPU model or CPU count differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sharebench.errors import ResultsError, RuleError
from sharebench.schema import BENCHMARK_KEY
from sharebench.status import Status

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    FloatArray = npt.NDArray[np.float64]

NormalizeMode = Literal["auto", "on", "off"]
NORMALIZE_MODES: tuple[str, ...] = ("auto", "on", "off")

#: The reference benchmark that normalisation divides by (see the harness).
REFERENCE = {
    "family": "harness",
    "mechanism": "reference",
    "sync": "none",
    "operation": "increment",
    "processes": 1,
}


@dataclass(frozen=True)
class RunIdentity:
    """Which run a file holds and on what machine it ran."""

    run_id: str
    hostname: str
    cpu_model: str
    cpu_count: str

    def describe(self) -> str:
        """``'20261126T... on host (CPU model, 8 CPUs)'``."""
        return f"{self.run_id} on {self.hostname} ({self.cpu_model}, {self.cpu_count} CPUs)"


def _one_value(summary: pd.DataFrame, column: str) -> str:
    values = list(dict.fromkeys(str(v) for v in summary[column]))
    return "+".join(values) if values else ""


def run_identity(summary: pd.DataFrame) -> RunIdentity:
    """Run id and machine of a summary (values joined with '+' if a file mixes runs)."""
    return RunIdentity(
        run_id=_one_value(summary, "run_id"),
        hostname=_one_value(summary, "hostname"),
        cpu_model=_one_value(summary, "cpu_model"),
        cpu_count=_one_value(summary, "cpu_count"),
    )


def machine_differences(baseline: RunIdentity, current: RunIdentity) -> list[str]:
    """What differs between the machines, e.g. ``['hostname a != b']``; empty if the same."""
    out = []
    for attr in ("hostname", "cpu_model", "cpu_count"):
        a, b = getattr(baseline, attr), getattr(current, attr)
        if a != b:
            out.append(f"{attr} {a} != {b}")
    return out


def reference_throughputs(summary: pd.DataFrame, rounds: pd.DataFrame) -> dict[str, float]:
    """Median round throughput of each ok reference benchmark, by start method (file order)."""
    import numpy as np

    mask = summary["status"] == str(Status.OK)
    for col, value in REFERENCE.items():
        mask &= summary[col] == value
    rmask = rounds["mechanism"] == REFERENCE["mechanism"]
    values = round_values(rounds.loc[rmask])
    out: dict[str, float] = {}
    for row in records(summary.loc[mask]):
        found = values.get(key_of(row))
        if found is not None and found.size:
            out.setdefault(str(row["start_method"]), float(np.median(found)))
    return out


def pick_reference(refs: Mapping[str, float], start_method: str) -> float:
    if start_method in refs:
        return refs[start_method]
    return next(iter(refs.values()))


@dataclass(frozen=True)
class Normalization:
    """Which normalisation was used and why; ``machine_ratio`` = current ref / baseline ref."""

    requested: str
    applied: bool
    reason: str
    machine_ratio: float
    baseline_refs: Mapping[str, float]
    current_refs: Mapping[str, float]

    @property
    def mode(self) -> str:
        """``'on'`` or ``'off'``: what was actually done."""
        return "on" if self.applied else "off"

    def describe(self) -> str:
        """One line for the report."""
        ratio = (
            f"machine ratio (current/baseline reference throughput) {self.machine_ratio:.3g}"
            if math.isfinite(self.machine_ratio)
            else "machine ratio unknown (no reference benchmark in both runs)"
        )
        how = "on" if self.applied else "off"
        return f"Normalisation: {how} ({self.requested}: {self.reason}); {ratio}"


def decide_normalization(
    mode: str,
    baseline: RunIdentity,
    current: RunIdentity,
    baseline_refs: Mapping[str, float],
    current_refs: Mapping[str, float],
) -> Normalization:
    """Resolve ``auto``/``on``/``off``; raise :class:`ResultsError` if on but no reference."""
    if mode not in NORMALIZE_MODES:
        raise RuleError(f"normalize {mode!r}: choose one of {', '.join(NORMALIZE_MODES)}")
    ratio = math.nan
    if baseline_refs and current_refs:
        common = [s for s in baseline_refs if s in current_refs]
        if common:
            ratio = current_refs[common[0]] / baseline_refs[common[0]]
        else:
            ratio = next(iter(current_refs.values())) / next(iter(baseline_refs.values()))
    diffs = machine_differences(baseline, current)
    if mode == "off":
        applied, reason = False, "as requested"
    elif mode == "on":
        applied, reason = True, "as requested"
    elif diffs:
        applied, reason = True, "different machines: " + "; ".join(diffs)
    else:
        applied, reason = False, "same machine"
    if applied:
        for name, refs in (("baseline", baseline_refs), ("current", current_refs)):
            if not refs:
                why = f" ({reason})" if mode == "auto" else ""
                raise ResultsError(
                    f"normalisation is on{why} but the {name} run has no ok reference "
                    "benchmark (mechanism reference, sync none, operation increment, 1 process); "
                    "rerun it or pass --normalize off"
                )
    return Normalization(mode, applied, reason, ratio, dict(baseline_refs), dict(current_refs))


Key = tuple[Any, ...]


def round_values(rounds: pd.DataFrame) -> dict[Key, FloatArray]:
    """Per-round throughputs of each benchmark, by BENCHMARK_KEY, in round order."""
    out: dict[Key, FloatArray] = {}
    ordered = rounds.sort_values([*BENCHMARK_KEY, "round"], kind="stable")
    for key, group in ordered.groupby(list(BENCHMARK_KEY), sort=False):
        out[tuple(key)] = group["throughput_ops_s"].to_numpy(dtype="float64")
    return out


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts keyed by column name (typed for mypy: our columns are strings)."""
    return [{str(k): v for k, v in r.items()} for r in df.to_dict("records")]


def key_of(row: Mapping[str, Any]) -> Key:
    return tuple(row[c] for c in BENCHMARK_KEY)


def is_reference(row: Mapping[str, Any]) -> bool:
    """Whether a summary row is the reference benchmark."""
    return all(row[c] == v for c, v in REFERENCE.items())
