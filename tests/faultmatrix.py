"""The seven faults of the reliability matrix, each as a scenario that injects the fault and
reports what was left behind. tests/test_faults.py runs them one by one and all together."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

import faulty
from leaks import children, segments_of
from sharebench import lifecycle
from sharebench.harness import HarnessConfig, run_benchmark
from sharebench.results import read_summary

TESTS_DIR = Path(__file__).parent
QUICK = HarnessConfig(round_time=0.01, rounds=3, warmup_rounds=0, round_timeout=30)

# The run measures rawvalue/lock, then faulty.MECHANISMS' hang-shm, which hangs mid-round.
BENCH_FILE = '''
import pytest

@pytest.mark.sharebench("increment")
def test_increment(sharebench):
    sharebench.run()
'''


@dataclass
class Outcome:
    """What a fault left: the verdict of the run, and any mess."""

    fault: str
    handled: bool
    detail: str
    leaked_segments: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.handled and not self.leaked_segments and not self.orphans


def _marked(marker: str) -> list[str]:
    """Processes whose environment carries ``marker``: everything a subprocess run started."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get("SHAREBENCH_FAULT_MARKER") == marker:
                found.append(f"{proc.pid} {' '.join(proc.cmdline())[:80]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _wait_until(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


# --- in-process faults: the benchmark fails with its reason, the run goes on ---------------


def _in_process(fault: str, mech, processes: int, expect: str, config=QUICK) -> Outcome:
    rec = run_benchmark(mech, processes, "fork", config)
    after = run_benchmark(faulty.RAWLOCK, 1, "fork", QUICK)  # the run goes on
    handled = rec.status.is_error and expect in rec.status.reason and after.status.is_ok
    return Outcome(fault, handled, str(rec.status), segments_of(os.getpid()), children())


def worker_sigkill() -> Outcome:
    return _in_process("worker SIGKILL mid-round", faulty.SIGKILLED, 2,
                       "died during round (exit code -9)")


def worker_raises() -> Outcome:
    return _in_process("worker raises", faulty.RAISING, 2,
                       "raised ZeroDivisionError: boom in the loop")


def worker_hangs() -> Outcome:
    t0 = time.monotonic()
    out = _in_process("worker hangs", faulty.HANGING, 2, "round timed out after 1 s",
                      HarnessConfig(round_time=0.01, rounds=3, warmup_rounds=0,
                                    round_timeout=1.0))
    elapsed = time.monotonic() - t0
    out.detail += f" ({elapsed:.1f} s)"
    out.handled = out.handled and elapsed < 10
    return out


def manager_killed() -> Outcome:
    return _in_process("Manager server killed", faulty.MANAGER_KILLED, 2, "worker")


# --- whole-run faults, in a subprocess --------------------------------------------------


@dataclass
class Run:
    proc: subprocess.Popen[str]
    csv: Path
    ready: Path
    marker: str


def start_run(tmp: Path) -> Run:
    """A `pytest` benchmark run whose second benchmark hangs mid-round (shared memory held)."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "bench_faults.py").write_text(BENCH_FILE)
    marker = uuid.uuid4().hex
    ready = tmp / "READY"
    csv = tmp / "out.csv"
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR), "SHAREBENCH_FAULT_MARKER": marker,
           "SHAREBENCH_TEST_READY": str(ready)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "bench_faults.py", "-p", "no:cacheprovider", "-q",
         "--sharebench-mechanisms=faulty", "-k", "rawvalue-lock-increment or hang-shm",
         "--sharebench-processes=2", "--sharebench-rounds=3", "--sharebench-warmup=0",
         "--sharebench-round-time=0.01", f"--sharebench-csv={csv}"],
        cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, as a terminal job would have
    )
    if not _wait_until(ready.exists, 60):
        proc.kill()
        raise RuntimeError(f"the run never reached the hanging round: {proc.communicate()[0]}")
    return Run(proc, csv, ready, marker)


def _interrupted(fault: str, tmp: Path, send) -> Outcome:
    run = start_run(tmp)
    t0 = time.monotonic()
    send(run.proc)
    try:
        output, _ = run.proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(run.proc.pid, signal.SIGKILL)
        output, _ = run.proc.communicate()
        return Outcome(fault, False, "did not stop within 30 s", orphans=_marked(run.marker))
    elapsed = time.monotonic() - t0
    gone = _wait_until(lambda: not _marked(run.marker), 10)
    detail = f"exit {run.proc.returncode} after {elapsed:.1f} s"
    handled = run.proc.returncode == 2 and elapsed < 10
    if run.csv.exists():
        df = read_summary(run.csv).set_index("mechanism")
        handled = handled and (df["run_status"] == "interrupted").all()
        handled = handled and df.loc["rawvalue", "status"] == "ok"
        handled = handled and df.loc["hang-shm", "status"] == "error: interrupted"
        detail += f", CSV kept {len(df)} rows marked interrupted"
    else:
        handled = False
        detail += f", no CSV: {output[-500:]}"
    return Outcome(fault, handled, detail, segments_of(run.proc.pid),
                   [] if gone else _marked(run.marker))


def run_sigint(tmp: Path) -> Outcome:
    # Ctrl-C in a terminal signals the whole foreground process group.
    return _interrupted("SIGINT (Ctrl-C)", tmp, lambda p: os.killpg(p.pid, signal.SIGINT))


def run_sigterm(tmp: Path) -> Outcome:
    return _interrupted("SIGTERM", tmp, lambda p: p.send_signal(signal.SIGTERM))


def main_sigkill(tmp: Path) -> Outcome:
    """SIGKILL to the whole run (tracker included): nothing can clean up then. Its children
    must still die with it, and `sharebench clean` must find and remove its blocks while
    leaving a live run's block alone."""
    run = start_run(tmp)
    pid = run.proc.pid
    held = segments_of(pid)
    os.killpg(pid, signal.SIGKILL)
    run.proc.communicate()
    gone = _wait_until(lambda: not _marked(run.marker), 10)
    # A block of a live run (ours), which clean must not touch.
    live = lifecycle.SHM_DIR / f"{lifecycle.PREFIX}{os.getpid()}-livecheck"
    live.write_bytes(b"\0" * 8)
    try:
        cleaned = subprocess.run([sys.executable, "-m", "sharebench", "clean"],
                                 capture_output=True, text=True, check=False)
        kept = live.exists()
    finally:
        live.unlink(missing_ok=True)
    left = segments_of(pid)
    handled = (cleaned.returncode == 0 and kept and not left
               and all(f"removed /dev/shm/{name}" in cleaned.stdout for name in held))
    detail = (f"{len(held)} block(s) held at the kill; clean said: "
              + cleaned.stdout.strip().splitlines()[-1])
    return Outcome("main SIGKILL", handled, detail, left, [] if gone else _marked(run.marker))


IN_PROCESS = (worker_sigkill, worker_raises, worker_hangs, manager_killed)
WHOLE_RUN = (run_sigint, run_sigterm, main_sigkill)
