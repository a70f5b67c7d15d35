"""ZeroMQ (pyzmq) over ``ipc://``: Unix domain sockets driven by libzmq's I/O threads.

The socket files live in a run directory (:func:`sharebench.lifecycle.run_dir`, removed with
everything in it at ``close()``, or by ``sharebench clean`` after a killed run). Every process
makes its own ``zmq.Context``: a context does not survive ``fork`` (its I/O threads stay in
the parent). Workers make theirs in ``attach``; the parent makes its own at its first
``during_round``, after the workers were started, so that no worker is forked from a process
running libzmq's threads (forking a multi-threaded process is what Python 3.12+ warns about).
Workers therefore connect before the parent binds; libzmq retries the connection (every
10 ms here) and queues what they send meanwhile.

* ``zmq/atomic`` append — workers' ``PUSH`` sockets send one 8-byte message per item; the
  parent's ``PULL`` receives them during the round (fair-queued across workers).
* ``zmq/atomic`` ping-pong — a ``PAIR`` socket each: the worker pings, the parent echoes the
  frame it received (forwarded as is, no copy in the parent).
* ``zmq/atomic`` transfer — ``PUSH``/``PULL``: a stamp frame, then the array with
  ``send(array, copy=False)``; the receiver reads it with ``np.frombuffer`` over the frame.
  pyzmq copies anyway below 64 KiB (its ``copy_threshold``); above, libzmq reads the
  sender's array in place, which is why the sender never changes the arrays it has sent
  (the stamp travels in its own frame). High-water marks of 4 messages bound what is queued.

Sockets close with ``linger = 0``: at close every message of every round has been received,
and after a failure whatever is left must not keep a process waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sharebench import lifecycle
from sharebench.mechanisms.base import (
    WAIT_SLICE,
    Mechanism,
    Patience,
    StoreSpec,
    Unavailable,
)
from sharebench.mechanisms.pingpong import PingStore, ping_loop
from sharebench.mechanisms.posixmq import ReceivedMessages
from sharebench.mechanisms.transfer import (
    Payload,
    Received,
    TransferLocal,
    TransferStore,
)

#: Milliseconds between a worker's attempts to connect before the parent has bound.
RECONNECT_MS = 10
#: Messages a transfer's sockets queue (each a whole array).
TRANSFER_HWM = 4


def zmq_module() -> Any:
    """``zmq``, or :class:`Unavailable` when pyzmq is missing."""
    try:
        import zmq
    except ImportError:
        raise Unavailable("pyzmq is not installed (pip install pyzmq)") from None
    return zmq


class _Endpoint:
    """The parent's end: an ``ipc://`` path in a run directory, and the socket bound to it
    (made at first use, see the module docstring)."""

    #: The parent's socket type (``PULL``, ``PAIR``) and receive high-water mark (0: default).
    kind = ""
    hwm = 0
    spec: StoreSpec
    patience: Callable[[], Patience]  # the Store's (this is a mixin)
    directory: Path | None = None

    def _prepare(self, spec: StoreSpec, what: str) -> None:
        zmq = zmq_module()
        self._again: type[Exception] = zmq.Again
        self.context: Any = None
        self.sock: Any = None
        self.directory = lifecycle.run_dir(spec.run_token, "zmq")
        path = str(self.directory / what)
        if len(path.encode()) > zmq.IPC_PATH_MAX_LEN:
            self._close_endpoint()
            raise Unavailable(f"the ipc:// path {path} is longer than the {zmq.IPC_PATH_MAX_LEN}"
                              " bytes a Unix socket allows (set TMPDIR to a shorter directory)")
        self.endpoint = f"ipc://{path}"

    def _socket(self) -> Any:
        if self.sock is None:
            zmq = zmq_module()
            self.context = zmq.Context()
            sock = self.context.socket(getattr(zmq, self.kind))
            sock.setsockopt(zmq.LINGER, 0)
            # Receives wait in slices: between two, the parent checks its workers are alive.
            sock.setsockopt(zmq.RCVTIMEO, _ms(min(WAIT_SLICE, self.spec.round_timeout)))
            if self.hwm:
                sock.setsockopt(zmq.RCVHWM, self.hwm)
            sock.bind(self.endpoint)
            self.sock = sock
        return self.sock

    def _close_endpoint(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close(linger=0)
        context, self.context = self.context, None
        if context is not None:
            context.term()
        directory, self.directory = self.directory, None
        if directory is not None:
            lifecycle.remove_run_dir(directory)  # the socket file with it

    def _recv(self, recv: Callable[[], Any], what: str) -> Any:
        """``recv()`` again after a slice of the wait ran out, until something comes."""
        wait = self.patience()
        while True:
            try:
                return recv()
            except self._again:
                wait.nothing_came(0, f"zmq: {what}")


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def connect(endpoint: str, kind: str, timeout: float, hwm: int = 0) -> tuple[Any, Any]:
    """Worker side: a new context (never the parent's) and a socket connected to
    ``endpoint``; sends and receives wait at most ``timeout`` (then ``zmq.Again``)."""
    zmq = zmq_module()
    context = zmq.Context()
    sock = context.socket(getattr(zmq, kind))
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MS)
    sock.setsockopt(zmq.SNDTIMEO, _ms(timeout))
    sock.setsockopt(zmq.RCVTIMEO, _ms(timeout))
    if hwm:
        sock.setsockopt(zmq.SNDHWM, hwm)
    sock.connect(endpoint)
    return context, sock


def disconnect(context: Any, sock: Any) -> None:
    """Worker side: close the socket and end the context (``linger = 0``: no wait)."""
    sock.close(linger=0)
    context.term()


# --------------------------------------------------------------------------------------
# append


class ZmqStore(_Endpoint, ReceivedMessages):
    """Workers ``PUSH`` 8-byte items; the parent ``PULL``\\ s every one during the round."""

    kind = "PULL"

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._prepare(spec, "append")

    def handles(self) -> tuple[Any, ...]:
        return (self.endpoint, self.spec.round_timeout)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        endpoint, timeout = handles
        return connect(endpoint, "PUSH", timeout)

    @staticmethod
    def detach(local: Any) -> None:
        disconnect(*local)

    def during_round(self, ops_per_worker: int) -> float | None:
        """Receive every item of the round; the last arrival ends it."""
        recv = self._socket().recv
        messages = self.messages
        append = messages.append
        expected = ops_per_worker * self.spec.workers
        wait = self.patience()
        while len(messages) < expected:
            try:
                for _ in range(expected - len(messages)):
                    append(recv())
            except self._again:
                wait.nothing_came(len(messages),
                                  f"zmq: {len(messages)} of {expected} items arrived")
        return time.perf_counter()

    def close(self) -> None:
        self._close_endpoint()


def zmq_append(local: Any, k: int, base: int) -> None:
    """``sock.send(item as 8 bytes)`` on a ``PUSH`` socket: one message per append."""
    _context, sock = local
    send = sock.send
    for i in range(k):
        send((base + i).to_bytes(8, "little"))


# --------------------------------------------------------------------------------------
# ping-pong


class ZmqPing(_Endpoint, PingStore):
    """A ``PAIR`` socket at each end; the parent sends back the frame it received."""

    kind = "PAIR"

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._prepare(spec, "ping")

    def handles(self) -> tuple[Any, ...]:
        return (self.endpoint, self.spec.payload_bytes, self.spec.round_timeout)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        endpoint, size, timeout = handles
        return (*connect(endpoint, "PAIR", timeout), size)

    @staticmethod
    def detach(local: Any) -> None:
        disconnect(*local[:2])

    def echo(self) -> None:
        sock = self.sock if self.sock is not None else self._socket()
        # A received frame is forwarded without a copy (no pyzmq zero-copy send of a
        # Python buffer, so no garbage-collector thread in the parent either).
        recv = sock.recv
        try:
            frame = recv(copy=False)
        except self._again:
            frame = self._recv(lambda: recv(copy=False), "no message")
        sock.send(frame, copy=False)

    def close(self) -> None:
        self._close_endpoint()


def zmq_ping(local: Any, k: int, base: int) -> Any:
    """``send`` the message (copied: the pinger restamps it), ``recv`` the echo as bytes."""
    _context, sock, size = local
    return ping_loop(sock.send, sock.recv, size, k)


# --------------------------------------------------------------------------------------
# transfer


class ZmqTransferStore(_Endpoint, TransferStore):
    """The parent ``PULL``\\ s (stamp, array) as two frames and reads the array in place."""

    kind = "PULL"
    hwm = TRANSFER_HWM

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self._prepare(spec, "transfer")

    def handles(self) -> tuple[Any, ...]:
        return (self.endpoint, self.spec.payload_bytes, self.spec.round_timeout)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> TransferLocal:
        endpoint, size, timeout = handles
        return TransferLocal(Payload(size), channel=connect(endpoint, "PUSH", timeout,
                                                            TRANSFER_HWM))

    @staticmethod
    def detach(local: TransferLocal) -> None:
        disconnect(*local.channel)

    def during_round(self, ops_per_worker: int) -> float | None:
        """Receive the two frames, ``np.frombuffer`` the array's frame, check it."""
        import numpy as np

        recv_multipart = self._socket().recv_multipart
        frombuffer, int64 = np.frombuffer, np.int64
        size = self.spec.payload_bytes
        check = self._check
        for seq in range(ops_per_worker * self.spec.workers):
            try:
                frames = recv_multipart(copy=False)
            except self._again:
                frames = self._recv(lambda: recv_multipart(copy=False), "no array arrived")
            if len(frames) == 2 and len(frames[1]) == size:
                stamp = int.from_bytes(frames[0].bytes, "little")
                check(seq, stamp, frombuffer(frames[1].buffer, int64))
            else:
                self.received.bad += 1
        return time.perf_counter()

    def close(self) -> None:
        self.received = Received()  # drops the last array, a view of a frame
        self._close_endpoint()


def zmq_transfer(local: TransferLocal, k: int, base: int) -> None:
    """The stamp (``SNDMORE``), then ``send(array, copy=False)``: zero-copy above 64 KiB."""
    import zmq

    more = zmq.SNDMORE
    _context, sock = local.channel
    send, sources = sock.send, local.payload.sources
    for i in range(k):
        send((base + i).to_bytes(8, "little"), more)
        send(sources[i & 1], copy=False)


MECHANISMS = (
    Mechanism("zmq", "atomic", "append", "zmq", ZmqStore, zmq_append,
              "ZeroMQ PUSH/PULL over ipc://: workers send 8-byte items, the parent receives"),
    Mechanism("zmq", "atomic", "ping-pong", "zmq", ZmqPing, zmq_ping,
              "round trip over ZeroMQ PAIR sockets (ipc://)", max_processes=1),
    Mechanism("zmq", "atomic", "transfer", "zmq", ZmqTransferStore, zmq_transfer,
              "ZeroMQ PUSH/PULL over ipc://: send(array, copy=False), np.frombuffer on arrival",
              max_processes=1),
)
