"""Running an interleaved A/B run: both sides open, pairs of blocks, adaptive effort.

:class:`Runner` measures every benchmark of a plan on both sides (see :mod:`sharebench.ab` for
what is judged and why): it opens the benchmark on both side servers, calibrates k on A, and
measures pairs of blocks in a fresh random order per pair, stopping as :func:`~sharebench.ab.
decided` and :func:`~sharebench.ab.futile` say; a candidate regression is measured again in
confirmation sessions with fresh side processes. :class:`Progress` keeps one line on stderr;
:func:`side_records` turns each side's rounds into ordinary benchmark records.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from sharebench.ab import (
    AbRule,
    AbSettings,
    Bench,
    candidate,
    clearly_no_regression,
    decided,
    futile,
    judge,
    sessions_needed,
)
from sharebench.schema import BENCHMARK_KEY, BenchmarkRecord, RunInfo
from sharebench.sides import SideClient, SideDied
from sharebench.stats import min_pairs
from sharebench.status import Status


def allowance_for(settings: AbSettings, elapsed: float, remaining: int,
                  pilots: list[float]) -> float:
    """Seconds the next benchmark may take before it stops adding pairs (its pilot is never
    cut): its own pilot, plus ``share`` times its fair part of what the budget leaves after
    the pilots of the ``remaining`` benchmarks (this one included), estimated from
    ``pilots``, the pilot times so far."""
    pilot = statistics.median(pilots) if pilots else 0.0
    extra = max(0.0, settings.budget - elapsed - remaining * pilot)
    return pilot + settings.share * extra / remaining


class Progress:
    """One line on stderr while the run goes: judged so far, pairs, time left in the budget.

    Rewritten in place on a terminal; elsewhere (CI logs) printed every ``every`` seconds.
    """

    def __init__(self, total: int, budget: float, stream: TextIO = sys.stderr,
                 every: float = 10.0) -> None:
        self.total = total
        self.budget = budget
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every if not self.tty else 0.25
        self.t0 = time.monotonic()
        self._last = -math.inf

    def update(self, judged: int, pairs: int, current: str, force: bool = False) -> None:
        """Show the state if enough time passed since the last line (or ``force``)."""
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        left = max(0.0, self.budget - (now - self.t0))
        line = (f"sharebench ab: {judged}/{self.total} judged · {pairs} pairs · "
                f"{left:.0f} s left of the {self.budget:.0f} s budget · {current}")
        if self.tty:
            self.stream.write("\r\x1b[2K" + line[:200])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        """End the progress line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


Sides = dict[str, SideClient]


class Runner:
    """Measures every benchmark of a plan on both sides, pair by pair (see the module docs)."""

    def __init__(self, sides: Sides, plan: dict[str, Any], rule: AbRule,
                 settings: AbSettings, slowdown: Callable[[str, str], float],
                 progress: Progress | None = None) -> None:
        self.sides = sides
        self.plan = plan
        self.rule = rule
        self.settings = settings
        self.slowdown = slowdown
        self.progress = progress
        self.rng = random.Random(settings.seed)
        cfg = plan["config"]
        self.round_timeout = float(cfg.get("round_timeout", 30.0))
        self.config = {"round_time": float(cfg["round_time"]),
                       "round_timeout": self.round_timeout,
                       "warmup_rounds": int(cfg.get("warmup_rounds", 1))}
        self.tests = max(1, len(plan["cases"]))
        self.min_pairs = settings.min_pairs or max(6, min_pairs(rule.alpha, self.tests))
        self.pairs_total = 0
        self.judged = 0

    def _call(self, side: str, msg: dict[str, Any], rounds: int = 0) -> dict[str, Any]:
        # A round may take up to the round timeout; setting up may start a server.
        timeout = self.round_timeout * max(1, rounds) + 120.0
        return self.sides[side].call(msg, timeout)

    def run(self) -> list[Bench]:
        """Every case of the plan, in order. Each gets its pilot pairs whatever the budget
        says; what comes after the pilot is limited to ``share`` times the benchmark's fair
        part of the budget that is left once the pilots still to come are set aside (their
        cost estimated by the median pilot so far), so the run ends close to its budget and
        a benchmark judged late still gets its pilot."""
        t0 = time.monotonic()
        cases = self.plan["cases"]
        out: list[Bench] = []
        for i, case in enumerate(cases):
            bench = Bench(case, slowdown_a=self.slowdown("A", case["id"]),
                          slowdown_b=self.slowdown("B", case["id"]))
            self._measure(bench, allowance_for(
                self.settings, time.monotonic() - t0, len(cases) - i,
                [b.pilot_seconds for b in out if b.pilot_seconds > 0]))
            out.append(bench)
            self.judged += 1
            if self.progress is not None:
                self.progress.update(self.judged, self.pairs_total, bench.id, force=True)
        if self.progress is not None:
            self.progress.done()
        return out

    def _measure(self, bench: Bench, allowance: float) -> None:
        t0 = time.monotonic()
        try:
            if not self._open(bench, calibrate=True):
                return
            self._pairs(bench, 0, deadline=t0 + allowance, opened=t0)
            session = 1
            while session < sessions_needed(bench, self.settings):
                if not candidate(bench, self.rule, self.tests):
                    break
                # Fresh processes on both sides — new side servers, so new workers, memory
                # layout and hash seed: a slow mode of one process or pool must not pass for a
                # regression. The same k, no calibration.
                for side in ("A", "B"):
                    self._close(side)
                    self._restart(side)
                if not self._open(bench, calibrate=False):
                    return
                self._confirm(bench, session)
                session += 1
        finally:
            for side in ("A", "B"):
                self._close(side)
            bench.seconds = time.monotonic() - t0

    def _open(self, bench: Bench, calibrate: bool) -> bool:
        """Open on both sides (random order), agree on k; False if either cannot run it."""
        base = {"cmd": "open", **{k: bench.case.get(k, 0) for k in BENCHMARK_KEY},
                "config": self.config}
        max_k = 10**12
        for side in self.rng.sample(["A", "B"], 2):
            reply = self._safe(bench, side, {**base, "slowdown": (
                bench.slowdown_a if side == "A" else bench.slowdown_b)})
            if reply is None:
                return False
            if "missing" in reply:
                bench.note = f"not on side {side}: {reply['missing']}"
                return False
            if "status" in reply:
                self._fail(bench, side, str(reply["status"]))
                return False
            max_k = min(max_k, int(reply["max_k"]))
            bench.family = str(reply.get("family", bench.family))
            bench.workers_kind = str(reply.get("workers_kind", bench.workers_kind))
        if calibrate:
            reply = self._safe(bench, "A", {"cmd": "calibrate"}, rounds=30)
            if reply is None or not self._ok(bench, "A", reply):
                return False
            bench.k = min(int(reply["k"]), max_k)
        for side in ("A", "B"):
            reply = self._safe(bench, side, {"cmd": "use_k", "k": bench.k, "warmup": 1},
                               rounds=1)
            if reply is None or not self._ok(bench, side, reply):
                return False
        return True

    def _pair(self, bench: Bench, session: int, block: int) -> float | None:
        """One pair: a block of each side, in random order; its log ratio, or None if a side
        failed (the failure is recorded on the benchmark)."""
        order = "AB" if self.rng.random() < 0.5 else "BA"
        tp: dict[str, float] = {}
        for side in order:
            reply = self._safe(bench, side, {"cmd": "rounds", "n": block}, rounds=block)
            if reply is None or not self._ok(bench, side, reply):
                return None
            seconds = [float(x) for x in reply["seconds"]]
            bench.ops = int(reply["ops"])
            (bench.a_seconds if side == "A" else bench.b_seconds).extend(seconds)
            (bench.a_lost if side == "A" else bench.b_lost).extend(int(x) for x in reply["lost"])
            tp[side] = bench.ops / sorted(seconds)[len(seconds) // 2]  # the block's median
        bench.pairs.append((tp["A"], tp["B"]))
        bench.orders.append(order)
        bench.sessions.append(session)
        bench.blocks.append(block)
        self.pairs_total += 1
        if self.progress is not None:
            self.progress.update(self.judged, self.pairs_total, bench.id)
        return math.log(tp["B"] / tp["A"])

    def _pairs(self, bench: Bench, session: int, deadline: float, opened: float) -> None:
        """The first session: pairs until they decide the benchmark.

        After a pilot of ``pilot`` pairs a benchmark that is clearly not a regression stops
        (:func:`decided`). A noisy one (robust spread of its pairs above ``noisy``) starts
        again with blocks of several rounds, whose medians shrug off the rounds a stall hit;
        only pairs of its final block size are judged. One whose pilot already shows that
        even ``max_pairs`` could not judge it (:func:`futile`: too noisy, no sign of a
        slowdown) stops there. Otherwise pairs are added until the test can reach its level
        (``min_pairs``) and the interval no longer straddles the threshold, or ``max_pairs``,
        or the benchmark's share of the budget is used (one whose interval lies wholly beyond
        the threshold goes on until it is decided or has ``max_pairs``).
        """
        settings = self.settings
        block = settings.block_rounds
        stage: list[float] = []
        while len(stage) < settings.max_pairs:
            d = self._pair(bench, session, block)
            if d is None:
                return
            stage.append(d)
            if len(stage) < settings.pilot:
                continue
            if not bench.pilot_seconds:
                bench.pilot_seconds = time.monotonic() - opened
            j = judge(stage, self.rule, self.tests)
            if clearly_no_regression(j, self.rule):
                break
            if (block == settings.block_rounds and settings.noisy_blocks > block
                    and j.sigma > settings.noisy):
                block, stage = settings.noisy_blocks, []  # start again with longer blocks
                continue
            if futile(j, self.rule, settings):  # judged by its pilot's spread already
                break
            if len(stage) >= self.min_pairs and decided(j, self.rule, self.tests):
                break
            # Out of its share of the budget: stop, unless its interval already lies wholly
            # beyond the threshold — a regression in the making gets the pairs it needs to
            # be significant after Holm (up to max_pairs), or the budget would hide it as
            # "too noisy". An unchanged benchmark almost never gets here, so an A/A run
            # keeps to its budget.
            if time.monotonic() > deadline and not 1.0 / j.ci_high - 1.0 > self.rule.threshold:
                break
        bench.block = block

    def _confirm(self, bench: Bench, session: int) -> None:
        """A confirmation session: pairs at the benchmark's block size until this session's
        own interval lies clearly above or below the threshold (at least ``pilot`` pairs, at
        most ``min_pairs``)."""
        mine: list[float] = []
        while len(mine) < self.min_pairs:
            d = self._pair(bench, session, bench.block)
            if d is None:
                return
            mine.append(d)
            if len(mine) >= self.settings.pilot:
                j = judge(mine, self.rule, self.tests)
                best = 1.0 / j.ci_high - 1.0
                if best > self.rule.threshold or j.worst_slowdown < self.rule.threshold:
                    return

    def _ok(self, bench: Bench, side: str, reply: dict[str, Any]) -> bool:
        if "status" in reply:
            self._fail(bench, side, str(reply["status"]))
            return False
        return True

    def _fail(self, bench: Bench, side: str, status: str) -> None:
        parsed = Status.parse(status)
        if side == "A":
            bench.status_a = parsed
        else:
            bench.status_b = parsed

    def _safe(self, bench: Bench, side: str, msg: dict[str, Any], rounds: int = 0
              ) -> dict[str, Any] | None:
        """A command whose side may die: that is this benchmark's error on that side, and
        the side is started again for the next one."""
        try:
            return self._call(side, msg, rounds)
        except SideDied as exc:
            self._fail(bench, side, f"error: {exc}")
            self._restart(side)
            return None

    def _close(self, side: str) -> None:
        try:
            self._call(side, {"cmd": "close"})
        except SideDied:
            self._restart(side)

    def _restart(self, side: str) -> None:
        """A new server process for ``side`` (the old one is told to quit, or killed)."""
        client = self.sides[side]
        client.stop()
        client.start()


def side_records(benches: Sequence[Bench], side: str, round_time: float
                 ) -> list[BenchmarkRecord]:
    """Each side's measurements as ordinary benchmark records (for a run CSV of that side)."""
    out = []
    for bench in benches:
        seconds = bench.a_seconds if side == "A" else bench.b_seconds
        lost = bench.a_lost if side == "A" else bench.b_lost
        status = bench.status_a if side == "A" else bench.status_b
        if status.is_ok and not seconds:
            status = Status.skipped(bench.note or "not measured")
        c = bench.case
        out.append(BenchmarkRecord(
            family=bench.family or "unknown", mechanism=str(c["mechanism"]),
            sync=str(c["sync"]), operation=str(c["operation"]),
            processes=int(c["processes"]), start_method=str(c["start_method"]),
            workers_kind=bench.workers_kind, payload_bytes=int(c["payload_bytes"]),
            keys=int(c.get("keys", 0)),
            ops_per_worker=bench.k, warmup_rounds=1, round_target_s=round_time,
            round_seconds=list(seconds), round_lost=list(lost), round_pass=[0] * len(seconds),
            issued_ops=bench.ops * len(seconds), lost_updates=sum(lost), status=status,
            slowdown=bench.slowdown_a if side == "A" else bench.slowdown_b,
        ))
    return out


def side_run_info(hello: dict[str, Any], run_id: str) -> RunInfo:
    """A side's run description, from its hello, under this run's id."""
    info = dict(hello.get("run", {}))
    info.update(run_id=run_id, profile="ab", run_status="complete")
    return RunInfo(**info)
