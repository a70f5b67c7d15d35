"""What a run measures: profiles, the bench options' parsers, and the cases they expand to.

A *profile* is a named set of defaults (``quick``: what ``nox -s bench`` runs; ``full``:
every start method and 8 processes). :class:`BenchOptions` is the parsed command line of a
run: the profile with any option a user gave laid over it. :func:`cases` turns it into one
:class:`Case` per ``mechanism × sync × processes × start method`` (× payload size for
transfers) × pass.

Option values are checked where argparse reads them (pytest-benchmark's habit: ``type=``
validators), so a bad value is a one-line usage error naming the valid choices. No pytest
import here: :mod:`sharebench.pytest_plugin` wires these into pytest.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
from collections.abc import Iterable
from dataclasses import dataclass

from sharebench.errors import ConfigError
from sharebench.harness import available_start_methods, validate
from sharebench.mechanisms import Mechanism
from sharebench.schema import benchmark_id


@dataclass(frozen=True)
class Profile:
    """A named set of defaults for the bench options."""

    processes: tuple[int, ...]
    start_methods: tuple[str, ...]
    rounds: int
    warmup_rounds: int
    round_time: float
    #: Payload sizes (bytes) of the ``transfer`` benchmarks.
    transfer_sizes: tuple[int, ...] = ()
    #: The rounds of each benchmark are split over this many passes through the whole
    #: suite, each with fresh workers (see :mod:`sharebench.pytest_plugin`).
    passes: int = 3
    #: Keys of ``dict-increment``, entries of ``lookup``, message sizes of ``ping-pong``.
    dict_keys: int = 1000
    lookup_entries: int = 100_000
    pingpong_sizes: tuple[int, ...] = (64, 4096, 65536, 1 << 20)


#: 1 KiB to 64 MiB in powers of 4.
_TRANSFER_SIZES_FULL = tuple(1024 * 4**i for i in range(9))
#: The ends, and two points between them: 1 KiB, 64 KiB, 4 MiB, 64 MiB.
_TRANSFER_SIZES_QUICK = tuple(1024 * 4**i for i in (0, 3, 6, 8))

PROFILES: dict[str, Profile] = {
    # What `nox -s bench` runs: every mechanism at 1, 2 and 4 processes (4 > cores on
    # purpose: contention), fork only, transfers at 4 sizes, 12 rounds of 30 ms in 2 passes
    # of 6. One warm-up round: calibration's last 3 rounds already ran at about the final k.
    # ~290 benchmarks in under 5 minutes on 2 cores (3 passes of 50 ms rounds took 7.5).
    "quick": Profile((1, 2, 4), ("fork",), rounds=12, warmup_rounds=1, round_time=0.03,
                     transfer_sizes=_TRANSFER_SIZES_QUICK, passes=2),
    # Every start method and 8 processes; more rounds for tighter medians.
    "full": Profile(
        (1, 2, 4, 8), ("fork", "spawn", "forkserver"), rounds=20, warmup_rounds=3,
        round_time=0.05, transfer_sizes=_TRANSFER_SIZES_FULL, lookup_entries=1_000_000,
    ),
}


# --------------------------------------------------------------------------------------
# Option parsers: argparse ``type=`` callables (ArgumentTypeError -> one-line usage error)


def _items(raw: str) -> list[str]:
    items = [x.strip() for x in raw.split(",") if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give a comma-separated list, e.g. 1,2,4")
    return items


def process_counts(raw: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``; every count an integer >= 1 (duplicates dropped)."""
    out = []
    for item in _items(raw):
        if not item.isdigit() or int(item) < 1:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not valid; processes are integers >= 1, e.g. 1,2,4")
        out.append(int(item))
    return tuple(dict.fromkeys(out))


def start_method_list(raw: str) -> tuple[str, ...]:
    """``"fork,spawn"``; each one available on this platform."""
    valid = available_start_methods()
    chosen = _items(raw)
    for m in chosen:
        if m not in valid:
            raise argparse.ArgumentTypeError(
                f"{m!r} is not available here; valid: {', '.join(valid)}")
    return tuple(dict.fromkeys(chosen))


def positive_seconds(raw: str) -> float:
    """A finite number of seconds > 0."""
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{raw!r} must be a positive number of seconds")
    return value


def _integer(raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{raw!r} must be >= {minimum}")
    return value


def count_at_least_1(raw: str) -> int:
    """An integer >= 1 (rounds, passes)."""
    return _integer(raw, 1)


def count_at_least_0(raw: str) -> int:
    """An integer >= 0 (warm-up rounds)."""
    return _integer(raw, 0)


def _bounded(raw: str, what: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"{raw!r}: {what} must lie between {low:,} and {high:,}")
    return value


#: Limits of the keyed and ping-pong parameters (beyond them a run is pointless or huge).
DICT_KEYS = (1, 1_000_000)
LOOKUP_ENTRIES = (1, 10_000_000)
PINGPONG_SIZES = (16, 64 << 20)


def dict_keys(raw: str) -> int:
    """Keys of a dict-increment: 1 to 1,000,000."""
    return _bounded(raw, "dict keys", *DICT_KEYS)


def lookup_entries(raw: str) -> int:
    """Entries of a lookup table: 1 to 10,000,000."""
    return _bounded(raw, "lookup entries", *LOOKUP_ENTRIES)


def pingpong_sizes(raw: str) -> tuple[int, ...]:
    """Message sizes of a ping-pong, ``"64,4096"``: 16 bytes (room for the stamps) to 64 MiB."""
    return tuple(dict.fromkeys(_bounded(x, "message sizes (bytes)", *PINGPONG_SIZES)
                               for x in _items(raw)))


def csv_path(raw: str) -> str:
    """A path ending in ``.csv`` (the rounds file and history go beside it)."""
    if not raw.endswith(".csv"):
        raise argparse.ArgumentTypeError(f"{raw!r} must end in .csv")
    return raw


@dataclass(frozen=True)
class Slowdown:
    """``PATTERN=FACTOR``: benchmarks whose id matches the shell pattern run FACTOR× slower
    (for validating regression detection; see :mod:`sharebench.pools`)."""

    pattern: str
    factor: float

    def matches(self, benchmark: str) -> bool:
        """Whether ``benchmark`` (an id such as ``value-lock-increment-p2-fork``) matches."""
        return fnmatch.fnmatchcase(benchmark, self.pattern)

    def __str__(self) -> str:
        return f"{self.pattern}={self.factor:g}"


def slowdown(raw: str) -> Slowdown:
    """``"value-lock-*=1.25"`` -> :class:`Slowdown`; the factor lies in [1, 100]."""
    pattern, sep, factor = raw.rpartition("=")
    if not sep or not pattern:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not PATTERN=FACTOR, e.g. 'value-lock-increment-*=1.25'")
    try:
        value = float(factor.removesuffix("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r}: {factor!r} is not a number") from None
    if not (math.isfinite(value) and 1.0 <= value <= 100.0):
        raise argparse.ArgumentTypeError(f"{raw!r}: the factor must lie between 1 and 100")
    return Slowdown(pattern, value)


def slowdown_for(benchmark: str, rules: Iterable[Slowdown]) -> float:
    """The factor of the last rule matching ``benchmark`` (1 when none does)."""
    factor = 1.0
    for rule in rules:
        if rule.matches(benchmark):
            factor = rule.factor
    return factor


# --------------------------------------------------------------------------------------
# Cases


@dataclass(frozen=True)
class Case:
    """One parametrised benchmark, in one pass of the run."""

    mech: Mechanism
    processes: int
    start_method: str
    #: Bytes per operation (``transfer``), message size (``ping-pong``); 0 otherwise.
    payload_bytes: int = 0
    pass_index: int = 0
    passes: int = 1
    #: Keys of a ``dict-increment``, entries of a ``lookup``; 0 otherwise.
    keys: int = 0

    @property
    def id(self) -> str:
        """The benchmark's id, as in the CSV: the same in every pass."""
        return benchmark_id(
            self.mech.name, self.mech.sync, self.mech.operation, self.processes,
            self.start_method, self.payload_bytes,
        )

    @property
    def test_id(self) -> str:
        """The pytest id: the benchmark id, plus ``-passN`` when the run has passes."""
        return self.id if self.passes == 1 else f"{self.id}-pass{self.pass_index + 1}"

    def rounds_in_pass(self, total: int) -> int:
        """This pass's share of ``total`` rounds (earlier passes take the remainder)."""
        return total // self.passes + (1 if self.pass_index < total % self.passes else 0)


def cases(
    mechanisms: Iterable[Mechanism],
    processes: tuple[int, ...],
    methods: tuple[str, ...],
    transfer_sizes: tuple[int, ...] = (),
    passes: int = 1,
    params: Profile | None = None,
) -> list[Case]:
    """Every valid combination of ``mechanisms`` (one operation's, in registry order);
    ``transfer`` and ``ping-pong`` benchmarks once per size; everything once per pass.
    ``params`` gives the keys, entries and message sizes (the quick profile's by default)."""
    params = params or PROFILES["quick"]
    out: list[Case] = []
    for mech in mechanisms:
        sizes = {"transfer": transfer_sizes,
                 "ping-pong": params.pingpong_sizes}.get(mech.operation, (0,))
        keys = {"dict-increment": params.dict_keys,
                "lookup": params.lookup_entries}.get(mech.operation, 0)
        # Threads share one process: the start method changes nothing, so measure them once.
        for method in methods if mech.workers_kind == "process" else methods[:1]:
            for p in processes:
                try:
                    validate(mech, p, method)
                except ConfigError:
                    continue  # e.g. the single-process harness yardsticks at p > 1
                out.extend(
                    Case(mech, p, method, size, i, passes, keys)
                    for i in range(passes)
                    for size in sizes
                )
    return out
