"""One side of an interleaved A/B run: a server that keeps a benchmark open and measures on
command (``python -m sharebench.abside``, started by ``sharebench ab``).

Each side of ``sharebench ab`` runs *its own* code: this module is started with the side's
interpreter and imports the side's sharebench, so A's harness and mechanisms come from A's
tree. The coordinator (:mod:`sharebench.ab`) talks to it through a pipe, one JSON object per
line each way (protocol :data:`PROTOCOL`):

``hello``
    → the side's version, interpreter and run description.
``open`` {mechanism, sync, operation, processes, start_method, payload_bytes, config, slowdown}
    → sets the benchmark up (store made, workers started and attached; not timed) and keeps
    it open. ``{"status": "skipped: ..."}`` or ``"error: ..."`` when it cannot be had;
    ``{"missing": reason}`` when this side has no such benchmark.
``calibrate`` → ``{"k": k}``; ``use_k`` {k, warmup} → ``{}``
``rounds`` {n} → n measured rounds: ``{"seconds": [...], "lost": [...], "ops": ops per round}``,
    or ``{"status": "error: ..."}`` (a dead worker, data lost under a lock).
``close`` → ``{}``: workers stopped, store destroyed. ``quit`` → ends the server.

Workers stay alive between ``rounds`` commands, so an A/B block costs a round, not a process
start. Everything a worker pool needs (timeouts, services such as redis-server) is set up here
exactly as a ``nox -s bench`` run sets it up; the side dies with the coordinator
(``PR_SET_PDEATHSIG``) and ignores Ctrl-C, which the coordinator handles.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import asdict
from typing import IO, Any

from sharebench import __version__
from sharebench.errors import one_line
from sharebench.harness import BenchmarkRun, HarnessConfig, status_of
from sharebench.lifecycle import die_with_parent
from sharebench.mechanisms import UnknownMechanism, get
from sharebench.servers import Services

#: Bumped when a message changes meaning; both sides must speak the same one.
PROTOCOL = 1


class Side:
    """The state of one side: at most one open benchmark, and the run's services."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.run: BenchmarkRun | None = None

    # -- commands ----------------------------------------------------------------------

    def hello(self, msg: dict[str, Any]) -> dict[str, Any]:
        from sharebench.machine import run_info

        info = run_info("ab")
        return {"protocol": PROTOCOL, "version": __version__, "run": asdict(info),
                "executable": sys.executable}

    def open(self, msg: dict[str, Any]) -> dict[str, Any]:
        self.close({})
        try:
            mech = get(msg["mechanism"], msg["sync"], msg["operation"])
        except UnknownMechanism as exc:
            return {"missing": one_line(exc)}
        cfg = HarnessConfig(**msg.get("config", {}))
        cfg = self.services.configure(mech, cfg)
        try:
            run = BenchmarkRun(mech, int(msg["processes"]), str(msg["start_method"]), cfg,
                               payload_bytes=int(msg.get("payload_bytes", 0)),
                               keys=int(msg.get("keys", 0)))
            run.slow_down(float(msg.get("slowdown", 1.0)))
        except Exception as exc:  # ConfigError: not a benchmark this side can run
            return {"missing": one_line(exc)}
        try:
            run.__enter__()
        except Exception as exc:
            return {"status": str(status_of(exc))}
        self.run = run
        return {"setup_s": run.record.setup_s, "max_k": run.max_k, "family": mech.family,
                "workers_kind": mech.workers_kind}

    def calibrate(self, msg: dict[str, Any]) -> dict[str, Any]:
        run = self._open()
        return {"k": run.calibrate()}

    def use_k(self, msg: dict[str, Any]) -> dict[str, Any]:
        run = self._open()
        run.use_k(int(msg["k"]))
        run.warmup(int(msg.get("warmup", 1)))
        return {}

    def rounds(self, msg: dict[str, Any]) -> dict[str, Any]:
        run = self._open()
        rec = run.record
        first = len(rec.round_seconds)
        for _ in range(int(msg["n"])):
            run.measure_round()
        error = run.verification_error()
        if error:
            return {"status": f"error: {error}"}
        return {"seconds": rec.round_seconds[first:], "lost": rec.round_lost[first:],
                "ops": rec.ops_per_round}

    def close(self, msg: dict[str, Any]) -> dict[str, Any]:
        run, self.run = self.run, None
        if run is not None:
            run.close()
        return {}

    def _open(self) -> BenchmarkRun:
        if self.run is None:
            raise RuntimeError("no benchmark is open")
        return self.run

    # -- the loop ----------------------------------------------------------------------

    def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        """One command → its reply; a failure of the open benchmark closes it and says why."""
        commands = {"hello": self.hello, "open": self.open, "calibrate": self.calibrate,
                    "use_k": self.use_k, "rounds": self.rounds, "close": self.close}
        command = commands.get(str(msg.get("cmd")))
        if command is None:
            return {"status": f"error: unknown command {msg.get('cmd')!r}"}
        try:
            reply = command(msg)
        except Exception as exc:  # the benchmark failed; the side goes on
            self.close({})
            return {"status": str(status_of(exc))}
        return reply


def serve(inp: IO[str], out: IO[str], side: Side) -> None:
    """Read commands from ``inp`` until ``quit`` or end of input, answering on ``out``."""
    for line in inp:
        msg = json.loads(line)
        if msg.get("cmd") == "quit":
            break
        out.write(json.dumps(side.handle(msg)) + "\n")
        out.flush()


def main() -> int:
    """Serve on stdin/stdout; anything else the process prints goes to stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides, then says quit
    die_with_parent()
    # The protocol owns the original stdout; stray prints (a library's warning) go to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    services = Services.from_options(os.environ.get("SHAREBENCH_AB_REDIS_URL") or None,
                                     os.environ.get("SHAREBENCH_AB_MANAGER_ADDRESS") or None)
    side = Side(services)
    try:
        serve(sys.stdin, out, side)
    finally:
        side.close({})
        services.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
