"""The servers the networked benchmarks talk to: our own ``redis-server``, or the user's.

Where the Redis server comes from, in order:

1. ``--redis-url URL`` (or ``SHAREBENCH_REDIS_URL``): the user's server, possibly on another
   host. The suite only ever touches its own keys there (``sharebench:<run token>:...``,
   deleted when each benchmark ends); it never flushes anything.
2. Otherwise the suite starts its own ``redis-server`` (found on PATH), lazily, at the first
   benchmark that needs it: bound to 127.0.0.1 on a free port, persistence off
   (``--save "" --appendonly no``), in the foreground, output in a private temporary
   directory. :meth:`RedisServer.stop` ends it (SIGTERM, then SIGKILL after a timeout).

A server the suite started must not outlive the run, however the run ends:

* normal end, error, Ctrl-C or SIGTERM (the plugin turns SIGTERM into KeyboardInterrupt):
  ``pytest_unconfigure`` -> :meth:`Services.close` -> :meth:`RedisServer.stop`, always called;
* SIGKILL of the run, or anything that skips Python's cleanup: the server is started with
  ``PR_SET_PDEATHSIG`` (Linux), so the kernel kills it when the run's process dies.

The server runs in a session of its own, so a Ctrl-C at the terminal reaches the run (which
then stops the server in order) but not the server mid-benchmark.

When no server can be had, nothing raises here: :meth:`Services.resources` hands the stores the
reason instead of a URL, and they raise :class:`~sharebench.mechanisms.base.Unavailable` with it,
so every row of those benchmarks reads ``skipped: <reason>``.

A Manager over TCP normally needs nothing from here (each benchmark starts its own server on
127.0.0.1 with a random authkey). ``--manager-address HOST:PORT`` points it at a server the
*user* runs, e.g. on another host, with ``sharebench manager HOST:PORT``; that
server's authkey reaches the suite through ``SHAREBENCH_MANAGER_AUTHKEY`` (hex), never on the
command line.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sharebench.lifecycle import die_with_parent, run_dir

if TYPE_CHECKING:
    from sharebench.harness import HarnessConfig
    from sharebench.mechanisms.base import Mechanism

REDIS_URL_ENV = "SHAREBENCH_REDIS_URL"
MANAGER_ADDRESS_ENV = "SHAREBENCH_MANAGER_ADDRESS"
MANAGER_AUTHKEY_ENV = "SHAREBENCH_MANAGER_AUTHKEY"

#: ``StoreSpec.resources`` keys.
REDIS_URL = "redis_url"
REDIS_UNAVAILABLE = "redis_unavailable"
#: Present when the URL is a server this run started: if it stops answering, that is an error
#: of the benchmark, not a missing service.
REDIS_OWNED = "redis_owned"
MANAGER_ADDRESS = "manager_address"
MANAGER_AUTHKEY = "manager_authkey"

_REDIS_SCHEMES = ("redis", "rediss", "unix")


class ServerError(RuntimeError):
    """A server could not be started; the message is the reason, in one line."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and status columns."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def check_redis_url(url: str) -> str:
    """The URL if redis-py can use it, else ValueError naming the valid schemes."""
    scheme = urlsplit(url).scheme
    if scheme not in _REDIS_SCHEMES:
        raise ValueError(
            f"--redis-url: {redact(url)!r} is not a Redis URL; it starts with "
            f"{', '.join(s + '://' for s in _REDIS_SCHEMES)}, e.g. redis://otherhost:6379/0"
        )
    return url


def parse_address(text: str) -> tuple[str, int]:
    """``'HOST:PORT'`` -> ``(host, port)``; ValueError with a one-line reason otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")  # [::1]:5000
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--manager-address: {text!r} is not HOST:PORT, e.g. 10.0.0.5:50000")
    return host, int(port)


def _ping(host: str, port: int, timeout: float) -> bool:
    """Whether a Redis server answers ``PING`` at host:port (raw RESP: no client to close)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """Our own ``redis-server`` on 127.0.0.1 and a free port; a context manager.

    ``start()`` returns once the server answers PING, or raises :class:`ServerError` with the
    reason (not on PATH, exited, did not answer in time). ``stop()`` is idempotent.
    """

    def __init__(
        self,
        executable: str | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.executable = executable
        self.host = host
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: str | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` of the running server."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self.proc.pid if self.proc is not None else None

    def start(self) -> str:
        """Start the server and wait for PING; returns its URL."""
        exe = self.executable or shutil.which("redis-server")
        if exe is None:
            raise ServerError(
                "no redis-server on PATH (install Debian's redis-server, or pass "
                f"--redis-url / {REDIS_URL_ENV})"
            )
        # A run directory (named for this process): `sharebench clean` removes it if the run
        # is killed before it can.
        self._dir = str(run_dir(str(os.getpid()), "redis"))
        try:
            for attempt in range(3):  # the free port may be taken before the server binds it
                try:
                    self._start_once(exe)
                    return self.url
                except ServerError as exc:
                    if "in use" not in str(exc) or attempt == 2:
                        raise
            raise AssertionError("unreachable")
        except BaseException:
            self.stop()
            raise

    def _start_once(self, exe: str) -> None:
        assert self._dir is not None
        self.port = free_port(self.host)
        log_path = Path(self._dir) / "redis.log"
        self._log = log_path.open("wb")
        args = [
            exe,
            "--bind", self.host, "--port", str(self.port),
            "--save", "", "--appendonly", "no",  # persistence off: nothing on disk
            "--daemonize", "no", "--dir", self._dir, "--logfile", "",
            "--loglevel", "warning",
        ]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the run, which then stops the server
            # Dies with the run even if the run is SIGKILLed (Linux PR_SET_PDEATHSIG).
            preexec_fn=die_with_parent,  # noqa: PLW1509 (the run is single-threaded here)
        )
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                self._close_proc()
                text = log_path.read_text(errors="replace").strip().splitlines()
                tail = text[-1] if text else "no output"
                raise ServerError(f"redis-server exited with code {code}: {tail}")
            if _ping(self.host, self.port, timeout=0.5):
                return
            if time.monotonic() > deadline:
                raise ServerError(
                    f"redis-server did not answer PING within {self.start_timeout:g} s"
                )
            time.sleep(0.02)

    def _close_proc(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # redis-server shuts down cleanly on SIGTERM
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, SIGKILL after ``stop_timeout``) and remove its directory."""
        try:
            self._close_proc()
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Services:
    """The services of one run, provided lazily to the stores that declare they need them.

    A store class says what it needs with ``needs = ("redis",)`` (or ``("manager",)``);
    :meth:`configure` starts what is missing the first time a benchmark needs it and returns
    the harness configuration with ``resources`` filled in. :meth:`close` stops what was
    started; it is safe to call more than once.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        manager_address: str | None = None,
        manager_authkey: str | None = None,
    ) -> None:
        self.redis_url = check_redis_url(redis_url) if redis_url else None
        self.manager_address = manager_address
        if manager_address:
            parse_address(manager_address)
        self.manager_authkey = manager_authkey
        self.redis_server: RedisServer | None = None
        self.redis_unavailable: str | None = None

    @classmethod
    def from_options(
        cls,
        redis_url: str | None,
        manager_address: str | None,
        environ: Mapping[str, str] = os.environ,
    ) -> Services:
        """Options first, then ``SHAREBENCH_REDIS_URL`` / ``SHAREBENCH_MANAGER_ADDRESS``; the
        Manager authkey only ever comes from ``SHAREBENCH_MANAGER_AUTHKEY``."""
        return cls(
            redis_url or environ.get(REDIS_URL_ENV) or None,
            manager_address or environ.get(MANAGER_ADDRESS_ENV) or None,
            environ.get(MANAGER_AUTHKEY_ENV) or None,
        )

    def resources(self, needs: Iterable[str]) -> dict[str, str]:
        """What stores needing ``needs`` get in ``StoreSpec.resources``."""
        out: dict[str, str] = {}
        needs = set(needs)
        if "redis" in needs:
            url = self._redis()
            if url is not None:
                out[REDIS_URL] = url
                if self.redis_server is not None and not self.redis_url:
                    out[REDIS_OWNED] = "1"
            else:
                out[REDIS_UNAVAILABLE] = self.redis_unavailable or "no Redis server"
        if "manager" in needs and self.manager_address:
            out[MANAGER_ADDRESS] = self.manager_address
            if self.manager_authkey:
                out[MANAGER_AUTHKEY] = self.manager_authkey
        return out

    def configure(self, mech: Mechanism, harness: HarnessConfig) -> HarnessConfig:
        """``harness`` with the resources ``mech`` needs added (the same object if none)."""
        needs = mech.store.needs
        extra = self.resources(needs) if needs else {}
        if all(harness.resources.get(k) == v for k, v in extra.items()):
            return harness
        return dataclasses.replace(harness, resources={**harness.resources, **extra})

    def _redis(self) -> str | None:
        if self.redis_url:
            return self.redis_url
        if self.redis_server is None and self.redis_unavailable is None:
            server = RedisServer()
            try:
                server.start()
            except ServerError as exc:
                self.redis_unavailable = str(exc)
            except OSError as exc:
                self.redis_unavailable = f"redis-server could not be started: {exc}"
            else:
                self.redis_server = server
        return self.redis_server.url if self.redis_server is not None else None

    def close(self) -> None:
        """Stop the servers this run started (never the user's): redis-server, and the Ray
        cluster of the ray benchmarks (started by their first store, see rayservice)."""
        server, self.redis_server = self.redis_server, None
        try:
            if server is not None:
                server.stop()
        finally:
            from sharebench import rayservice

            rayservice.stop_shared()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
