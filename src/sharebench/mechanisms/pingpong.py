"""Round-trip latency: a worker sends an S-byte message, the parent returns it, and the worker
times every round trip (``ping-pong``).

The worker (the *pinger*) stamps each message with its sequence number in its first and last
8 bytes, sends it, waits for the echo, and records ``perf_counter_ns()`` around the pair; the
parent (the *ponger*, :meth:`Store.during_round`) receives each message and sends the same
bytes back. After the timed sample the pinger checks the echo's stamps (a stale, torn or
foreign echo is counted as wrong); the last echo of each round is compared byte for byte. The
round reports the samples' percentiles (:func:`sharebench.verify.check_echoes`); ops/s is round
trips per second.

Mechanisms (all ``sync = atomic``: a message arrives whole or not at all):

* ``pipe`` — one duplex ``multiprocessing.Pipe``, ``send_bytes``/``recv_bytes``;
* ``queue`` — two ``multiprocessing.Queue`` (request, reply), ``put``/``get`` (pickled);
* ``socketpair`` — a Unix stream socket pair, ``sendall`` and ``recv_into`` of exactly S bytes;
* ``tcp`` — a loopback TCP connection, the same framing, ``TCP_NODELAY`` on both ends (without
  it Nagle holds the tail of a message larger than a segment until the previous one is
  acknowledged, and delayed ACKs make that 40 ms: nobody runs request/response over TCP so);
* ``shm`` — a ``SharedMemory`` block holding the request and the reply, and two semaphores to
  hand them over.

``manager`` (a proxy call to an echo object) and ``redis`` (LPUSH/BRPOP both ways) live with
their families. Sizes come from the profile (64 B, 4 KiB, 64 KiB, 1 MiB by default).
"""

from __future__ import annotations

import queue
import socket
import time
from array import array
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import Any, ClassVar

from sharebench.mechanisms.base import Mechanism, Store, StoreSpec
from sharebench.mechanisms.shm import attach_block, block_name, destroy_block
from sharebench.verify import RoundCheck, check_echoes

#: The smallest message: room for the two 8-byte stamps.
MIN_SIZE = 16


def message(size: int) -> bytearray:
    """An S-byte message of a fixed pattern, ready to be stamped."""
    pattern = bytes(range(256))
    return bytearray((pattern * (size // 256 + 1))[:size])


def stamp(msg: bytearray, seq: int) -> None:
    """Write the sequence number into the first and last 8 bytes."""
    b = seq.to_bytes(8, "little")
    msg[:8] = b
    msg[-8:] = b


def ping_loop(send: Callable[[Any], None], recv: Callable[[], Any], size: int,
              k: int) -> tuple[array[int], int]:
    """The pinger's loop: ``k`` stamped round trips; returns the samples (ns) and how many
    echoes came back wrong (stamps checked every time, the last echo byte for byte)."""
    msg = message(size)
    samples = array("q")
    record = samples.append
    now = time.perf_counter_ns
    wrong = 0
    got: Any = b""
    for seq in range(k):
        stamp(msg, seq)
        t0 = now()
        send(msg)
        got = recv()
        record(now() - t0)
        b = seq.to_bytes(8, "little")
        if got[:8] != b or got[-8:] != b:
            wrong += 1
    if k and bytes(got) != bytes(msg):
        wrong += 1
    return samples, wrong


class PingStore(Store):
    """Common to ping-pong stores: the size, the verification, the parent's echo loop."""

    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        if spec.payload_bytes < MIN_SIZE:
            raise ValueError(f"ping-pong messages need at least {MIN_SIZE} bytes")

    def collect(self, ops_per_worker: int, reports: Any) -> RoundCheck:
        """The pinger's samples and wrong echoes."""
        samples, wrong = reports[0]
        return check_echoes(ops_per_worker, samples, int(wrong))

    def during_round(self, ops_per_worker: int) -> float | None:
        """Echo every message of the round; return when the last was sent back."""
        echo = self.echo
        for _ in range(ops_per_worker):
            echo()
        return time.perf_counter()

    def echo(self) -> None:
        """Receive one message and send it back (parent side)."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------
# Pipe and queue


class PipePing(PingStore):
    """One duplex Pipe: the worker holds one end, the parent the other."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.mine, self.theirs = ctx.Pipe(duplex=True)

    def handles(self) -> tuple[Any, ...]:
        return (self.theirs, self.spec.payload_bytes)

    def echo(self) -> None:
        if not self.mine.poll(self.spec.round_timeout):
            raise TimeoutError(f"pipe: no message for {self.spec.round_timeout:g} s")
        self.mine.send_bytes(self.mine.recv_bytes())

    def close(self) -> None:
        self.mine.close()
        self.theirs.close()


def pipe_ping(local: Any, k: int, base: int) -> tuple[array[int], int]:
    """``send_bytes`` then ``recv_bytes`` on a Pipe."""
    conn, size = local
    return ping_loop(conn.send_bytes, conn.recv_bytes, size, k)


class QueuePing(PingStore):
    """Two Queues: requests to the parent, replies back."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.requests, self.replies = ctx.Queue(), ctx.Queue()

    def handles(self) -> tuple[Any, ...]:
        return (self.requests, self.replies, self.spec.payload_bytes)

    @staticmethod
    def detach(local: Any) -> None:
        for q in local[:2]:
            q.cancel_join_thread()  # everything was read; an aborted round must not block exit
            q.close()

    def echo(self) -> None:
        try:
            self.replies.put(self.requests.get(True, self.spec.round_timeout))
        except queue.Empty:
            raise TimeoutError(f"queue: no message for {self.spec.round_timeout:g} s") from None

    def close(self) -> None:
        for q in (self.requests, self.replies):
            q.cancel_join_thread()
            q.close()


def queue_ping(local: Any, k: int, base: int) -> tuple[array[int], int]:
    """``put`` the message, ``get`` the reply (each pickled, fed by a background thread)."""
    requests, replies, size = local
    return ping_loop(requests.put, replies.get, size, k)


# --------------------------------------------------------------------------------------
# Stream sockets


def recv_exactly(sock: socket.socket, buf: bytearray, view: memoryview) -> bytearray:
    """Fill ``buf`` from a stream socket (a message may arrive in several pieces)."""
    got = 0
    size = len(buf)
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise ConnectionError("the other end closed the connection")
        got += n
    return buf


class _StreamPing(PingStore):
    """The parent's end of a stream socket, echoing S-byte messages."""

    sock: socket.socket | None = None

    def _ready(self) -> socket.socket:
        assert self.sock is not None
        return self.sock

    def echo(self) -> None:
        sock = self._ready()
        sock.sendall(recv_exactly(sock, self.buf, self.view))

    def _buffers(self) -> None:
        self.buf = bytearray(self.spec.payload_bytes)
        self.view = memoryview(self.buf)

    def close(self) -> None:
        self.view.release()
        if self.sock is not None:
            self.sock.close()


def _stream_local(sock: socket.socket, size: int) -> tuple[Any, ...]:
    buf = bytearray(size)
    return (sock, buf, memoryview(buf), size)


def stream_ping(local: Any, k: int, base: int) -> tuple[array[int], int]:
    """``sendall`` the message, then read exactly as many bytes back."""
    sock, buf, view, size = local
    return ping_loop(sock.sendall, lambda: recv_exactly(sock, buf, view), size, k)


def _detach_stream(local: Any) -> None:
    sock, _buf, view, _size = local
    view.release()
    sock.close()


class SocketpairPing(_StreamPing):
    """A Unix stream socket pair made before the worker starts (inherited by fork; passed by
    fd with spawn/forkserver)."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.sock, self.theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(spec.round_timeout)
        self._buffers()

    def handles(self) -> tuple[Any, ...]:
        return (self.theirs, self.spec.payload_bytes)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        sock, size = handles
        return _stream_local(sock, size)

    @staticmethod
    def detach(local: Any) -> None:
        _detach_stream(local)

    def close(self) -> None:
        super().close()
        self.theirs.close()


class TcpPing(_StreamPing):
    """A TCP connection over loopback: the parent listens, the worker connects in ``attach``
    and the parent accepts it at the first round."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(spec.round_timeout)
        self._buffers()

    def handles(self) -> tuple[Any, ...]:
        return (self.listener.getsockname(), self.spec.payload_bytes)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        address, size = handles
        sock = socket.create_connection(address, timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _stream_local(sock, size)

    @staticmethod
    def detach(local: Any) -> None:
        _detach_stream(local)

    def _ready(self) -> socket.socket:
        if self.sock is None:
            self.sock, _ = self.listener.accept()
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(self.spec.round_timeout)
        return self.sock

    def close(self) -> None:
        super().close()
        self.listener.close()


# --------------------------------------------------------------------------------------
# Shared memory and two semaphores


class ShmPing(PingStore):
    """One block: the request in the first S bytes, the reply in the next S. The worker
    writes the request and releases ``sent``; the parent copies it into the reply and
    releases ``back``."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        size = spec.payload_bytes
        self.block: shared_memory.SharedMemory | None = shared_memory.SharedMemory(
            name=block_name(spec.run_token), create=True, size=2 * size)
        self.sent, self.back = ctx.Semaphore(0), ctx.Semaphore(0)
        buf = self.block.buf
        assert buf is not None
        self.request, self.reply = buf[:size], buf[size:]

    def handles(self) -> tuple[Any, ...]:
        assert self.block is not None
        return (self.block.name, self.sent, self.back, self.spec.payload_bytes)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        name, sent, back, size = handles
        block = attach_block(name)
        buf = block.buf
        assert buf is not None
        return [block, buf[:size], buf[size:], sent, back, size]

    @staticmethod
    def detach(local: Any) -> None:
        block = local[0]
        local[1].release()
        local[2].release()
        local.clear()
        block.close()

    def echo(self) -> None:
        if not self.sent.acquire(True, self.spec.round_timeout):
            raise TimeoutError(f"shm: no message for {self.spec.round_timeout:g} s")
        self.reply[:] = self.request
        self.back.release()

    def close(self) -> None:
        self.request.release()
        self.reply.release()
        block, self.block = self.block, None
        destroy_block(block)


def shm_ping(local: Any, k: int, base: int) -> tuple[array[int], int]:
    """Copy the message into the block, release ``sent``, wait on ``back``, copy the reply."""
    _block, request, reply, sent, back, size = local

    def send(msg: bytearray) -> None:
        request[:] = msg
        sent.release()

    def recv() -> bytes:
        back.acquire()
        return bytes(reply)  # the worker takes its copy, as a pipe's recv_bytes gives one

    return ping_loop(send, recv, size, k)


def _ping(name: str, store: type[Store], loop: Any, doc: str) -> Mechanism:
    return Mechanism(name, "atomic", "ping-pong", "message", store, loop, doc, max_processes=1)


MECHANISMS = (
    _ping("pipe", PipePing, pipe_ping, "round trip over a duplex Pipe (send_bytes/recv_bytes)"),
    _ping("queue", QueuePing, queue_ping, "round trip over two Queues (put/get, pickled)"),
    _ping("socketpair", SocketpairPing, stream_ping, "round trip over a Unix stream socket"),
    _ping("tcp", TcpPing, stream_ping, "round trip over loopback TCP (TCP_NODELAY)"),
    _ping("shm", ShmPing, shm_ping,
          "round trip through a SharedMemory block and two semaphores"),
)
