"""Message-passing libraries: faster-fifo, pyzmq (ipc://) and POSIX message queues (posix_ipc).

Exact items for appends at 1, 2 and 4 processes, checked echoes and transfers, a store that
loses or corrupts one message is caught, a size the kernel refuses is skipped with the reason,
and nothing is left behind: no process, no shared memory, no run directory, no socket file,
no message queue (also after a killed run, via ``sharebench clean``'s stale-directory sweep).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharebench import lifecycle
from sharebench.harness import HarnessConfig, run_benchmark
from sharebench.mechanisms import fastfifo, posixmq, posixsem
from sharebench.mechanisms import zmq as zmq_mechs
from sharebench.mechanisms.base import Mechanism, StoreSpec
from sharebench.mechanisms.transfer import TransferLocal
from sharebench.verify import worker_tag

FAST = HarnessConfig(round_time=0.02, rounds=3, warmup_rounds=1)
BROKEN = HarnessConfig(round_time=0.02, rounds=2, warmup_rounds=0)
KIB, KIB64, MIB = 1024, 64 * 1024, 1024 * 1024

MECHS: dict[str, Mechanism] = {
    m.key: m for m in (*fastfifo.MECHANISMS, *zmq_mechs.MECHANISMS, *posixmq.MECHANISMS)
}
#: The module each mechanism needs, and the skip reason its store gives without it.
LIBRARY = {"faster-fifo": "faster_fifo", "zmq": "zmq", "posix-mq": "posix_ipc"}
MISSING = {
    "faster-fifo": "faster-fifo is not installed (pip install faster-fifo)",
    "zmq": "pyzmq is not installed (pip install pyzmq)",
    "posix-mq": posixsem.POSIX_IPC_MISSING,
}


def mech(name: str, operation: str) -> Mechanism:
    """The mechanism, or a skip when its library is not importable here."""
    pytest.importorskip(LIBRARY[name])
    return MECHS[f"{name}/atomic/{operation}"]


def our_run_dirs() -> set[str]:
    """Run directories of this test process (its pid is the run token)."""
    return {s.name for s in lifecycle.suite_dirs() if s.pid == os.getpid()}


@pytest.fixture
def nothing_left(no_leaks: None) -> Iterator[None]:
    """``no_leaks`` (shared memory, processes), and no run directory of ours either."""
    before = our_run_dirs()
    yield
    assert our_run_dirs() - before == set()


def test_every_mechanism_is_defined_once_with_its_family() -> None:
    assert sorted(MECHS) == [
        "faster-fifo/atomic/append", "faster-fifo/atomic/ping-pong",
        "faster-fifo/atomic/transfer", "posix-mq/atomic/append", "posix-mq/atomic/ping-pong",
        "zmq/atomic/append", "zmq/atomic/ping-pong", "zmq/atomic/transfer",
    ]
    assert {m.family for m in MECHS.values() if m.name == "zmq"} == {"zmq"}
    assert {m.family for m in MECHS.values() if m.name != "zmq"} == {"message"}


# --- append -----------------------------------------------------------------------------------


@pytest.mark.parametrize("processes", [1, 2, 4])
@pytest.mark.parametrize("name", ["faster-fifo", "zmq", "posix-mq"])
def test_append_delivers_every_item_exactly_once(name: str, processes: int,
                                                 nothing_left: None) -> None:
    rec = run_benchmark(mech(name, "append"), processes, "fork", FAST)
    assert rec.status.is_ok, rec.status
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert rec.round_lost == [0, 0, 0]
    assert rec.issued_ops == 3 * processes * rec.ops_per_worker > 0


@pytest.mark.parametrize("name", ["faster-fifo", "zmq", "posix-mq"])
def test_append_under_spawn(name: str, nothing_left: None) -> None:
    """The handles travel to spawned workers: the faster-fifo queue as a Process argument,
    the others by name or address."""
    rec = run_benchmark(mech(name, "append"), 2, "spawn", FAST)
    assert rec.status.is_ok, rec.status
    assert rec.lost_updates == 0


class _DropsOneFifo(fastfifo.FastFifoStore):
    def during_round(self, ops_per_worker: int) -> float | None:
        end = super().during_round(ops_per_worker)
        self.items.pop()  # received, then lost
        return end


class _FlipsOneZmq(zmq_mechs.ZmqStore):
    def during_round(self, ops_per_worker: int) -> float | None:
        end = super().during_round(ops_per_worker)
        self.messages[0] = bytes(8)  # an item nobody sent, in place of one that was
        return end


class _DropsOneMq(posixmq.MqStore):
    def during_round(self, ops_per_worker: int) -> float | None:
        end = super().during_round(ops_per_worker)
        del self.messages[len(self.messages) // 2]
        return end


@pytest.mark.parametrize(("name", "store"), [("faster-fifo", _DropsOneFifo),
                                             ("zmq", _FlipsOneZmq), ("posix-mq", _DropsOneMq)])
def test_a_lost_or_changed_item_fails_verification(name: str, store: Any,
                                                    nothing_left: None) -> None:
    rec = run_benchmark(mech(name, "append").replace(store=store), 2, "fork", BROKEN)
    assert str(rec.status).startswith("error: verification failed:"), rec.status
    assert rec.lost_updates > 0


@pytest.mark.parametrize("name", ["faster-fifo", "zmq", "posix-mq"])
def test_the_parent_times_out_instead_of_hanging(name: str, nothing_left: None) -> None:
    """One item sent, two expected: the parent gives up after the round timeout."""
    mechanism = mech(name, "append")
    spec = StoreSpec(1, capacity=16, round_timeout=0.3)
    store = mechanism.store(multiprocessing.get_context("fork"), spec)
    local = mechanism.store.attach(store.handles())
    try:
        mechanism.loop(local, 1, worker_tag(0))
        with pytest.raises(TimeoutError, match="1 of 2 items arrived"):
            store.during_round(2)
    finally:
        mechanism.store.detach(local)
        store.close()


# --- ping-pong --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, KIB64])
@pytest.mark.parametrize("name", ["faster-fifo", "zmq"])
def test_ping_pong_echoes_and_times_its_round_trips(name: str, size: int,
                                                    nothing_left: None) -> None:
    rec = run_benchmark(mech(name, "ping-pong"), 1, "fork", FAST, payload_bytes=size)
    assert rec.status.is_ok, rec.status
    assert rec.lost_updates == 0
    assert len(rec.round_latency) == 3
    p50, p90, p99, p999, top = rec.round_latency[0]
    assert 0 < p50 <= p90 <= p99 <= p999 <= top < 1.0


def test_posix_mq_ping_pong_at_64_bytes(nothing_left: None) -> None:
    rec = run_benchmark(mech("posix-mq", "ping-pong"), 1, "fork", FAST, payload_bytes=64)
    assert rec.status.is_ok, rec.status
    assert len(rec.round_latency) == 3


def test_posix_mq_messages_above_msgsize_max_are_skipped_with_the_reason(
        nothing_left: None) -> None:
    limit = posixmq.msgsize_max()
    if limit is None or limit >= KIB64:
        pytest.skip(f"msgsize_max here is {limit}: 64 KiB messages are allowed")
    rec = run_benchmark(mech("posix-mq", "ping-pong"), 1, "fork", FAST, payload_bytes=KIB64)
    assert str(rec.status) == (
        f"skipped: POSIX message queues hold at most {limit}-byte messages here "
        "(/proc/sys/fs/mqueue/msgsize_max)"
    )
    assert rec.round_seconds == []


class _FlippingFifoPing(fastfifo.FastFifoPing):
    def echo(self) -> None:
        got = bytearray(self.requests.get(True, self.spec.round_timeout))
        got[-1] ^= 0xFF
        self.replies.put(got)


class _FlippingZmqPing(zmq_mechs.ZmqPing):
    def echo(self) -> None:
        sock = self.sock if self.sock is not None else self._socket()
        got = bytearray(sock.recv())
        got[-1] ^= 0xFF
        sock.send(got)


class _FlippingMqPing(posixmq.MqPing):
    def echo(self) -> None:
        got = bytearray(self.requests.receive(self.spec.round_timeout)[0])
        got[-1] ^= 0xFF
        self.replies.send(bytes(got))


@pytest.mark.parametrize(("name", "store"), [("faster-fifo", _FlippingFifoPing),
                                             ("zmq", _FlippingZmqPing),
                                             ("posix-mq", _FlippingMqPing)])
def test_a_corrupted_echo_is_caught(name: str, store: Any, nothing_left: None) -> None:
    rec = run_benchmark(mech(name, "ping-pong").replace(store=store), 1, "fork", BROKEN,
                        payload_bytes=64)
    assert str(rec.status).startswith("error: verification failed:"), rec.status
    assert "foreign values" in str(rec.status)


# --- transfer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [KIB, MIB])
@pytest.mark.parametrize("name", ["faster-fifo", "zmq"])
def test_transfer_arrives_intact(name: str, size: int, nothing_left: None) -> None:
    rec = run_benchmark(mech(name, "transfer"), 1, "fork", FAST, payload_bytes=size)
    assert rec.status.is_ok, rec.status
    assert rec.payload_bytes == size
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert rec.issued_ops == 3 * rec.ops_per_worker > 0


def _fifo_skips_one(local: TransferLocal, k: int, base: int) -> None:
    """The stamp jumps once halfway: from there on every transfer is out of sequence."""
    put, sources = local.channel.put, local.payload.sources
    for i in range(k):
        seq = i + 1 if i >= k // 2 else i
        put((base + seq, sources[seq & 1]))


def _zmq_sends_a_stale_array(local: TransferLocal, k: int, base: int) -> None:
    """Stamped right, but always pattern 0: every odd transfer carries the wrong bytes."""
    import zmq

    _context, sock = local.channel
    for i in range(k):
        sock.send((base + i).to_bytes(8, "little"), zmq.SNDMORE)
        sock.send(local.payload.sources[0], copy=False)


def _zmq_flips_a_byte_between_probes(local: TransferLocal, k: int, base: int) -> None:
    """Only a full comparison sees this one: the last array of the round is compared."""
    import zmq

    _context, sock = local.channel
    for i in range(k):
        src = local.payload.sources[i & 1].copy()
        src[3 * len(src) // 4] ^= 0xFF
        sock.send((base + i).to_bytes(8, "little"), zmq.SNDMORE)
        sock.send(src)


@pytest.mark.parametrize(("name", "loop"), [("faster-fifo", _fifo_skips_one),
                                            ("zmq", _zmq_sends_a_stale_array),
                                            ("zmq", _zmq_flips_a_byte_between_probes)])
def test_corrupt_or_missing_transfers_fail_verification(name: str, loop: Any,
                                                        nothing_left: None) -> None:
    rec = run_benchmark(mech(name, "transfer").replace(loop=loop), 1, "fork", BROKEN,
                        payload_bytes=KIB64)
    assert str(rec.status).startswith("error: verification failed:"), rec.status
    assert "foreign values" in str(rec.status)
    assert rec.lost_updates > 0


# --- a missing library ------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["append", "ping-pong"])
@pytest.mark.parametrize("name", ["faster-fifo", "zmq", "posix-mq"])
def test_a_missing_library_is_skipped_with_how_to_install_it(
        name: str, operation: str, monkeypatch: pytest.MonkeyPatch, nothing_left: None) -> None:
    monkeypatch.setitem(sys.modules, LIBRARY[name], None)  # `import` now raises ImportError
    rec = run_benchmark(MECHS[f"{name}/atomic/{operation}"], 1, "fork", FAST,
                        payload_bytes=64 if operation == "ping-pong" else 0)
    assert str(rec.status) == f"skipped: {MISSING[name]}"


# --- nothing left behind ----------------------------------------------------------------------


def test_zmq_leaves_no_socket_file_and_no_run_directory(nothing_left: None) -> None:
    pytest.importorskip("zmq")
    store = zmq_mechs.ZmqStore(multiprocessing.get_context("fork"), StoreSpec(1, capacity=16))
    try:
        store._socket()  # bound: the socket file exists now
        path = Path(store.endpoint.removeprefix("ipc://"))
        assert path.is_socket()
        assert path.parent.name.startswith(f"sharebench-{os.getpid()}-zmq-")
    finally:
        store.close()
    assert not path.exists()
    assert not path.parent.exists()


def test_posix_mq_queues_are_unlinked_at_close(nothing_left: None) -> None:
    posix_ipc = pytest.importorskip("posix_ipc")
    ctx = multiprocessing.get_context("fork")
    append = posixmq.MqStore(ctx, StoreSpec(1, capacity=16))
    ping = posixmq.MqPing(ctx, StoreSpec(1, capacity=16, payload_bytes=64))
    names = [*append.names(), *ping.names()]
    directories = [append.directory, ping.directory]
    assert all(n.startswith(f"/sharebench-{os.getpid()}-") for n in names)
    assert append.queue.max_messages == posixmq.MAX_MESSAGES
    append.close()
    ping.close()
    for name in names:
        with pytest.raises(posix_ipc.ExistentialError):
            posix_ipc.MessageQueue(name)
    assert not any(d is not None and d.exists() for d in directories)


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_runs_queue_is_unlinked_by_the_stale_directory_sweep(tmp_path: Path) -> None:
    """A run killed before close() leaves its run directory naming the queue: the sweep of
    ``sharebench clean`` unlinks the queue and removes the directory; a live run's stays."""
    posix_ipc = pytest.importorskip("posix_ipc")
    dead = tmp_path / f"sharebench-{_dead_pid()}-mq-0badc0de"
    live = tmp_path / f"sharebench-{os.getpid()}-mq-0badc0de"
    queues = {}
    for directory in (dead, live):
        directory.mkdir()
        name = posixsem.ipc_name(directory.name.split("-")[1])
        lifecycle.note_cleanup(directory, "mqueue", name)
        queues[directory] = posix_ipc.MessageQueue(name, posix_ipc.O_CREX, max_messages=1,
                                                   max_message_size=8)
    try:
        removed = lifecycle.clean_stale_dirs(tmp_path)
        assert [s.name for s in removed] == [dead.name]
        assert not dead.exists()
        with pytest.raises(posix_ipc.ExistentialError):
            posix_ipc.MessageQueue(queues[dead].name)
        assert live.exists()
        posix_ipc.MessageQueue(queues[live].name).close()  # still there
    finally:
        for q in queues.values():
            q.close()
        lifecycle.remove_run_dir(live)
    with pytest.raises(posix_ipc.ExistentialError):
        posix_ipc.MessageQueue(queues[live].name)


# --- sizes ------------------------------------------------------------------------------------


def test_faster_fifo_buffers_hold_a_round_and_a_whole_message() -> None:
    spec = StoreSpec(4, capacity=100_000)
    assert fastfifo.append_buffer_bytes(spec) >= 100_000 * 16
    assert fastfifo.append_buffer_bytes(StoreSpec(4, capacity=10**12)) == 256 << 20
    assert fastfifo.message_buffer_bytes(MIB) > 2 * MIB


@pytest.mark.parametrize("name", ["faster-fifo", "zmq", "posix-mq", "queue", "pipe"])
def test_a_dead_worker_ends_the_parents_wait_at_once(name: str, nothing_left: None) -> None:
    """One item sent, two expected, and the pool says a worker died: the parent fails at
    its next slice of the wait, not after the (here 30 s) round timeout."""
    import time

    from sharebench.mechanisms import get
    from sharebench.pools import WorkerError

    mechanism = mech(name, "append") if name in LIBRARY else get(name, "atomic", "append")
    spec = StoreSpec(1, capacity=16, round_timeout=30.0)
    store = mechanism.store(multiprocessing.get_context("fork"), spec)
    local = mechanism.store.attach(store.handles())

    def dead() -> None:
        raise WorkerError("worker 0 died during round (exit code -9)")

    store.watch(dead)
    try:
        mechanism.loop(mechanism.store.for_worker(local, 0), 1, worker_tag(0))
        t0 = time.monotonic()
        with pytest.raises(WorkerError, match="died during round"):
            store.during_round(2)
        assert time.monotonic() - t0 < 5.0
    finally:
        store.close()  # first: an in-process Queue's worker view is the parent's queue
        mechanism.store.detach(local)
