"""The reliability matrix for every library family: a worker SIGKILLed mid-round, SIGINT to a
run holding all of them, SIGKILL to that run followed by ``sharebench clean``. After each:
no shared memory block or named semaphore, no run directory (zmq sockets, diskcache and LMDB
databases, Ray's session), no message queue and no process of the run is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from faultmatrix import _marked, _wait_until
from leaks import children, segments_of
from libhold import LIBRARY, keys_for
from sharebench import lifecycle
from sharebench.harness import HarnessConfig, run_benchmark
from sharebench.mechanisms import get
from sharebench.mechanisms.base import Mechanism

TESTS_DIR = Path(__file__).parent
QUICK = HarnessConfig(round_time=0.01, rounds=3, warmup_rounds=0, round_timeout=30)


@dataclass(frozen=True)
class KillAfter:
    """The mechanism's own loop for a few operations, then SIGKILL to the worker itself: a
    worker dying in the middle of a round with the library's objects in use."""

    loop: Any

    def __call__(self, local: Any, k: int, base: int) -> Any:
        self.loop(local, min(k, 5), base)
        os.kill(os.getpid(), signal.SIGKILL)


def _dirs_of(pid: int) -> list[str]:
    return [d.name for d in lifecycle.suite_dirs() if d.pid == pid]


def _psm() -> set[str]:
    """UltraDict's unnamed segments."""
    return {n for n in os.listdir(lifecycle.SHM_DIR) if n.startswith("psm_")}


def _queues_left(names: list[str]) -> list[str]:
    """Those of the named POSIX message queues that still exist."""
    if not names:
        return []
    import posix_ipc

    left = []
    for name in names:
        try:
            posix_ipc.MessageQueue(name).close()
        except posix_ipc.ExistentialError:
            continue
        left.append(name)
    return left


def _library_present(mech: Mechanism) -> None:
    rec = run_benchmark(mech, 1, "fork", HarnessConfig(round_time=0.01, rounds=1,
                                                        warmup_rounds=0),
                        keys=keys_for(mech))
    if rec.status.is_skipped:
        pytest.skip(str(rec.status))


#: The library families, and the standard ``Queue``: like zmq, it sends from a thread, and
#: what that thread had not sent dies with a killed worker.
KILLED = (*LIBRARY, get("queue", "atomic", "append"))


@pytest.mark.slow
@pytest.mark.parametrize("mech", KILLED, ids=lambda m: m.family)
def test_a_worker_killed_mid_round_fails_its_row_and_leaves_nothing(mech: Mechanism) -> None:
    _library_present(mech)
    psm = _psm()
    try:
        t0 = time.monotonic()
        rec = run_benchmark(mech.replace(loop=KillAfter(mech.loop)), 2, "fork", QUICK,
                            keys=keys_for(mech))
        assert rec.status.is_error
        assert "died during round (exit code -9)" in rec.status.reason
        # Found dead at once, not after the round timeout (zmq and Queue senders lose what
        # their I/O thread had not sent, and the parent waits for it in slices).
        assert time.monotonic() - t0 < QUICK.round_timeout / 2
        after = run_benchmark(mech, 2, "fork", QUICK, keys=keys_for(mech))  # the run goes on
        assert after.status.is_ok, after.status
        assert segments_of(os.getpid()) == []
        assert _psm() - psm == set()
        if mech.family == "ray":  # the run's cluster stays up for the next Ray row: not a leak
            from sharebench import proctree, rayservice

            service = rayservice.current()
            assert service is not None
            ours = {*proctree.process_tree(service.pid), service.reaper.pid}
            assert [c for c in children() if int(c.split()[0]) not in ours] == []
    finally:
        if mech.family == "ray":
            from sharebench import rayservice

            rayservice.stop_shared()  # its run directory goes with it
    assert _dirs_of(os.getpid()) == []
    assert children() == []


@dataclass
class Held:
    proc: subprocess.Popen[str]
    state: dict[str, Any]
    marker: str


def _hold(tmp: Path) -> Held:
    """Start libhold.py in its own session (as a terminal job) and wait until it holds
    every family."""
    marker = uuid.uuid4().hex
    out = tmp / "held.json"
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR), "SHAREBENCH_FAULT_MARKER": marker}
    proc = subprocess.Popen([sys.executable, str(TESTS_DIR / "libhold.py"), str(out)],
                            cwd=tmp, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if not _wait_until(lambda: out.exists() or proc.poll() is not None, 120):
        os.killpg(proc.pid, signal.SIGKILL)
    if not out.exists():
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the run never held its libraries: {proc.communicate()[0][-2000:]}")
    state = json.loads(out.read_text())
    held = Held(proc, state, marker)
    # Everything it says it holds is there, and so are its processes.
    assert state["pid"] == proc.pid
    assert len(state["held"]) + len(state["skipped"]) == len(LIBRARY)
    assert state["segments"]  # blocks and semaphores
    assert any("-sem." in s or s.startswith("sem.") for s in state["segments"])
    assert state["dirs"]
    assert _marked(marker)
    return held


def _what_is_left(held: Held) -> dict[str, list[str]]:
    pid = held.state["pid"]
    return {
        "segments": segments_of(pid),
        "dirs": _dirs_of(pid),
        "queues": _queues_left(held.state["queues"]),
        "processes": [] if _wait_until(lambda: not _marked(held.marker), 15)
        else _marked(held.marker),
    }


@pytest.mark.slow
def test_sigint_to_a_run_holding_every_library_releases_everything(tmp_path: Path) -> None:
    psm = _psm()
    held = _hold(tmp_path)
    assert held.state["skipped"] == {}, held.state["skipped"]  # all installed by the project
    t0 = time.monotonic()
    os.killpg(held.proc.pid, signal.SIGINT)  # Ctrl-C signals the whole foreground group
    try:
        output, _ = held.proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(held.proc.pid, signal.SIGKILL)
        pytest.fail(f"did not stop within 60 s: {held.proc.communicate()[0][-2000:]}")
    elapsed = time.monotonic() - t0
    assert "KeyboardInterrupt" in output
    assert elapsed < 30
    assert _what_is_left(held) == {"segments": [], "dirs": [], "queues": [], "processes": []}
    assert _psm() - psm == set()


@pytest.mark.slow
def test_sigkill_to_a_run_holding_every_library_then_clean_leaves_nothing(
        tmp_path: Path) -> None:
    psm = _psm()
    held = _hold(tmp_path)
    os.killpg(held.proc.pid, signal.SIGKILL)  # nothing of the run can clean up now
    held.proc.communicate()
    # Its workers and Ray's processes die with it (PR_SET_PDEATHSIG)...
    assert _wait_until(lambda: not _marked(held.marker), 15), _marked(held.marker)
    # ... its files stay until `sharebench clean`, which names each one it removes.
    assert segments_of(held.state["pid"])
    cleaned = subprocess.run([sys.executable, "-m", "sharebench", "clean"],
                             capture_output=True, text=True, check=False)
    assert cleaned.returncode == 0, cleaned.stderr
    for name in held.state["segments"]:
        assert name in cleaned.stdout
    for name in held.state["dirs"]:
        assert name in cleaned.stdout
    assert _what_is_left(held) == {"segments": [], "dirs": [], "queues": [], "processes": []}
    assert _psm() - psm == set()
