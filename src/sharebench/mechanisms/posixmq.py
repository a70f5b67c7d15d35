"""POSIX message queues (``mq_open``/``mq_send``/``mq_receive``) through ``posix_ipc``.

A queue is a kernel object with a name (``/sharebench-<run_token>-<random>``); workers open it
by name in ``attach`` (so any start method works). Each message is one ``mq_send``: the kernel
copies it in, and ``mq_receive`` copies it out.

* ``posix-mq/atomic`` append — workers ``send(item.to_bytes(8))``, one message per append;
  the parent receives them during the round (:class:`MqStore`).
* ``posix-mq/atomic`` ping-pong — a request queue and a reply queue (:class:`MqPing`).

Limits. Linux caps a queue at ``/proc/sys/fs/mqueue/msg_max`` messages (10 by default) and
``msgsize_max`` bytes per message (8192); only a process with ``CAP_SYS_RESOURCE`` may exceed
them, and raising them needs root. Queues here are created with ``max_messages=10``: a queue
holds 10 messages, and senders block until the receiver takes one — that is what users of
POSIX queues get, so it is what is measured. A ping-pong size above ``msgsize_max`` cannot be
sent at all: that row is ``skipped`` with the limit named.

Cleanup. Linux keeps queues in the ``mqueue`` file system, which may not be mounted where we
could list it (it is not, here), so a killed run's queues could not be found by listing. The
store therefore makes a run directory (:func:`sharebench.lifecycle.run_dir`) and records each
queue's name in it *before* creating the queue; ``close()`` unlinks the queues and removes the
directory (:func:`~sharebench.lifecycle.remove_run_dir`), and ``sharebench clean`` does the
same for the directory of a dead run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from sharebench import lifecycle
from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.counters import ItemStore
from sharebench.mechanisms.pingpong import PingStore, ping_loop
from sharebench.mechanisms.posixsem import ipc_name, posix_ipc_module

#: Messages a queue holds: Linux's default ``msg_max``, which only root could raise.
MAX_MESSAGES = 10
#: Bytes of one appended item (little-endian, as ``int.to_bytes(8, "little")`` writes it).
ITEM_BYTES = 8
_LIMITS = Path("/proc/sys/fs/mqueue")


def mq_module() -> Any:
    """``posix_ipc``, or :class:`Unavailable` when it is missing or the OS has no queues."""
    posix_ipc = posix_ipc_module()
    if not posix_ipc.MESSAGE_QUEUES_SUPPORTED:
        raise Unavailable("this OS has no POSIX message queues")
    return posix_ipc


def msgsize_max() -> int | None:
    """The largest message a queue may be created for here, or None if unknown."""
    try:
        return int((_LIMITS / "msgsize_max").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return None


class ReceivedMessages(ItemStore):
    """Items that arrive as 8-byte messages: kept as received during the round (the parent
    does no more than take each message), decoded to ints when the round is verified."""

    # As for queue/pipe appends: a message costs microseconds, 1e6/s bounds any worker count.
    max_rate: ClassVar[float] = 1e6

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.messages: list[bytes] = []

    def read_items(self) -> Any:
        return [int.from_bytes(m, "little") for m in self.messages]

    def reset(self) -> None:
        self.messages = []


class _Queues:
    """The parent's queues and the run directory that names them for a cleaner."""

    directory: Path | None = None
    queues: list[Any]

    def _create(self, spec: StoreSpec, count: int, max_message_size: int) -> list[Any]:
        posix_ipc = mq_module()
        self.queues = []
        self.directory = lifecycle.run_dir(spec.run_token, "mq")
        try:
            for _ in range(count):
                name = ipc_name(spec.run_token)
                # Recorded first: a run killed right after mq_open leaves nothing unnamed.
                lifecycle.note_cleanup(self.directory, "mqueue", name)
                try:
                    self.queues.append(posix_ipc.MessageQueue(
                        name, posix_ipc.O_CREX, max_messages=MAX_MESSAGES,
                        max_message_size=max_message_size))
                except ValueError as exc:
                    raise _refused(max_message_size, exc) from None
        except BaseException:
            self._remove()
            raise
        return self.queues

    def names(self) -> tuple[str, ...]:
        """The queues' names, for the workers."""
        return tuple(q.name for q in self.queues)

    def _remove(self) -> None:
        for q in self.queues:
            q.close()
        self.queues = []
        directory, self.directory = self.directory, None
        if directory is not None:
            lifecycle.remove_run_dir(directory)  # unlinks the queues it names


def _refused(size: int, exc: Exception) -> Unavailable:
    """Why the kernel refused a queue, as a skip reason."""
    limit = msgsize_max()
    if limit is not None and size > limit:
        return Unavailable(f"POSIX message queues hold at most {limit}-byte messages here "
                           f"(/proc/sys/fs/mqueue/msgsize_max)")
    return Unavailable(f"a POSIX message queue of {MAX_MESSAGES} × {size}-byte messages was "
                       f"refused ({exc}; limits in /proc/sys/fs/mqueue)")


def _open(names: tuple[str, ...]) -> list[Any]:
    posix_ipc = mq_module()
    return [posix_ipc.MessageQueue(name) for name in names]


def _close(queues: Any) -> None:
    for q in queues:
        q.close()  # this process's descriptor only: the parent unlinks


# --------------------------------------------------------------------------------------
# append


class MqStore(_Queues, ReceivedMessages):
    """One queue every worker sends to; the parent receives every item during the round."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        (self.queue,) = self._create(spec, 1, ITEM_BYTES)
        self._busy = mq_module().BusyError

    def handles(self) -> tuple[Any, ...]:
        return (self.names(),)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        (names,) = handles
        return _open(names)

    @staticmethod
    def detach(local: Any) -> None:
        _close(local)

    def during_round(self, ops_per_worker: int) -> float | None:
        """Receive every item; ``mq_receive`` waits in slices (see ``Patience``)."""
        receive = self.queue.receive
        messages = self.messages
        append = messages.append
        expected = ops_per_worker * self.spec.workers
        wait = self.patience()
        while len(messages) < expected:
            try:
                for _ in range(expected - len(messages)):
                    append(receive(wait.slice)[0])
            except self._busy:
                wait.nothing_came(len(messages),
                                  f"posix-mq: {len(messages)} of {expected} items arrived")
        return time.perf_counter()

    def close(self) -> None:
        self._remove()


def mq_append(local: Any, k: int, base: int) -> None:
    """``mq.send(item as 8 bytes)``: one message per append (blocks while the queue is full)."""
    (q,) = local
    send = q.send
    for i in range(k):
        send((base + i).to_bytes(8, "little"))


# --------------------------------------------------------------------------------------
# ping-pong


class MqPing(_Queues, PingStore):
    """Requests on one queue, replies on another; messages of exactly ``payload_bytes``."""

    def __init__(self, ctx: Any, spec: StoreSpec) -> None:
        super().__init__(ctx, spec)
        self.requests, self.replies = self._create(spec, 2, spec.payload_bytes)
        self._busy = mq_module().BusyError

    def handles(self) -> tuple[Any, ...]:
        return (self.names(), self.spec.payload_bytes, self.spec.round_timeout)

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        names, size, timeout = handles
        return (*_open(names), size, timeout)

    @staticmethod
    def detach(local: Any) -> None:
        _close(local[:2])

    def echo(self) -> None:
        try:
            msg, _priority = self.requests.receive(self.spec.round_timeout)
        except self._busy:
            raise TimeoutError(
                f"posix-mq: no message for {self.spec.round_timeout:g} s") from None
        self.replies.send(msg)

    def close(self) -> None:
        self._remove()


def mq_ping(local: Any, k: int, base: int) -> Any:
    """``send`` the message on the request queue, ``receive`` the reply (at most the round
    timeout: a parent that stopped answering fails the worker instead of hanging it)."""
    requests, replies, size, timeout = local
    receive = replies.receive

    def recv() -> bytes:
        msg: bytes = receive(timeout)[0]
        return msg

    return ping_loop(requests.send, recv, size, k)


MECHANISMS = (
    Mechanism("posix-mq", "atomic", "append", "message", MqStore, mq_append,
              "POSIX message queue (posix_ipc, 10 messages deep): workers send 8-byte items, "
              "the parent receives them"),
    Mechanism("posix-mq", "atomic", "ping-pong", "message", MqPing, mq_ping,
              "round trip over two POSIX message queues (send/receive; at most msgsize_max "
              "bytes)", max_processes=1),
)
