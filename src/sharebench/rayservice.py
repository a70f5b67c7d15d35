"""A local Ray cluster for the run, driven by a helper process: the run never calls ``ray.init``.

Why a helper. The run (the pytest process) forks the workers of every benchmark, and a
process that has called ``ray.init`` must never fork: the child inherits Ray's threads and
sockets half-copied and hangs at its first Ray call. So the *driver* that starts the cluster is
a process of its own, ``python -m sharebench.rayservice``, started like our ``redis-server``
(:mod:`sharebench.servers`): lazily, at the first Ray benchmark of a run, once per run. It
runs ``ray.init`` (one node, this machine's CPUs, no dashboard, its session files in a run
directory of :func:`sharebench.lifecycle.run_dir`) and answers the run over a socket pair
(a :class:`multiprocessing.connection.Connection`): create a named actor, call a method of it
(read, reset), kill it, stop. The workers of a benchmark attach to the cluster themselves
(``ray.init(address=...)``, ~50 ms) and look the actor up by name (:data:`NAMESPACE`).

A cluster the run started must not outlive it, however the run ends:

* normal end, error, Ctrl-C, SIGTERM (turned into KeyboardInterrupt by the plugin):
  :func:`stop_shared` — registered with :mod:`atexit` when the service starts, and meant to be
  called by ``Services.close()`` at the end of the run — asks the driver to stop (it kills its
  actors and calls ``ray.shutdown()``, which stops every Ray process of the node), then kills
  whatever is still alive and removes the run directory;
* SIGKILL of the run: the driver is started with ``PR_SET_PDEATHSIG`` (it dies with the run),
  and so are the processes it starts (GCS, raylet, monitors; Ray's own fate sharing). Not all
  of Ray's processes follow: the raylet's agents outlive it (seen with 2.60: for minutes), so
  a *reaper* (``python -m sharebench.rayservice reap SID DIR``, outside the driver's session)
  waits on a pipe from the run and, when the run closes it or dies, kills every process left
  in the driver's session — which holds every Ray process of the cluster, and no stranger:
  Linux reuses no pid as a session id while the session has a member — then empties the pid
  file below (dead pids must not be killed later: they may be someone else's by then).
  :meth:`RayService.stop` uses the same reaper after a normal stop;
* and if anything survives that (the reaper killed with the run, say): the driver writes the
  pids of its process tree to ``<run dir>/pids`` and the directory's ``cleanup`` file names
  it (``pidfile``), so ``sharebench clean`` (and the start of the next run) kill them and
  remove the directory (:func:`sharebench.lifecycle.clean_stale_dirs`).

The driver runs in a session of its own, so a Ctrl-C at the terminal reaches the run (which
then stops the cluster in order) but not Ray in the middle of a benchmark.

Ray is imported only in the driver and in the workers, never here: ``import sharebench`` stays
light, and the run stays a process that may fork. The module is long for the reason
:mod:`sharebench.pools` is: one protocol (the driver, the reaper, and the run's side of both),
read side by side, since a change to one must be made to the others.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sharebench.errors import one_line
from sharebench.lifecycle import die_with_parent, note_cleanup, run_dir
from sharebench.mechanisms.base import Unavailable
from sharebench.proctree import kill_session, kill_survivors, process_tree

#: Ray version the suite was checked with.
RAY_REQUIREMENT = "ray==2.60.0"
NOT_INSTALLED = f"ray is not installed (pip install {RAY_REQUIREMENT})"
#: Named actors live in this namespace; workers look them up there.
NAMESPACE = "sharebench"
#: Environment of every Ray process of the suite (driver and workers), set before ``import
#: ray``: no token authentication (Ray >= 2.5x enables it for new local clusters and workers
#: that connect later fail with "InvalidAuthToken"), loopback addresses only (otherwise Ray
#: advertises the eth0 address), and no usage statistics sent over the network.
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}
#: Object store of the node: enough for a few of the largest transfers (64 MiB) in flight;
#: Ray's default (30 % of RAM) would claim gigabytes of /dev/shm on a shared machine.
OBJECT_STORE_BYTES = 512 << 20
#: Files of the run directory: pids of the driver's process tree (for ``sharebench clean``),
#: and the same with start times (for :meth:`RayService.stop`, which must never kill a
#: recycled pid).
PIDS = "pids"
PROCS = "procs"


def ray_installed() -> bool:
    """Whether ``import ray`` would find a package (without importing it)."""
    return importlib.util.find_spec("ray") is not None


# --------------------------------------------------------------------------------------
# The pid files of the run directory


def _record(directory: Path, tree: dict[int, int]) -> None:
    """Write the tree's pids (atomically: a cleaner may read the files at any moment)."""
    for name, text in ((PIDS, " ".join(map(str, tree))),
                       (PROCS, "".join(f"{p} {s}\n" for p, s in tree.items()))):
        tmp = directory / f".{name}.tmp"
        tmp.write_text(text, encoding="ascii")
        tmp.replace(directory / name)


def recorded(directory: Path) -> dict[int, int]:
    """The processes the driver recorded last: ``pid -> start time``."""
    try:
        lines = (directory / PROCS).read_text(encoding="ascii").splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        pid, _, start = line.partition(" ")
        if pid.isdigit() and start.isdigit():
            out[int(pid)] = int(start)
    return out


# --------------------------------------------------------------------------------------
# The driver (runs in the helper process)


def _serve(conn: Connection, directory: Path, cpus: int) -> int:
    """Start the cluster, then answer requests until told to stop or the run goes away."""
    os.environ.update(RAY_ENV)
    me = os.getpid()
    _record(directory, process_tree(me))
    try:
        import ray
    except ImportError:
        conn.send(("unavailable", NOT_INSTALLED))
        return 1
    t0 = time.perf_counter()
    try:
        info = ray.init(
            num_cpus=cpus, include_dashboard=False, namespace=NAMESPACE,
            _temp_dir=str(directory), object_store_memory=OBJECT_STORE_BYTES,
            log_to_driver=False, configure_logging=False,
        )
    except Exception as exc:
        _record(directory, process_tree(me))
        conn.send(("unavailable", f"ray could not start a local cluster: {one_line(exc)}"))
        with contextlib.suppress(Exception):
            ray.shutdown()
        return 1
    init_s = time.perf_counter() - t0
    _record(directory, process_tree(me))
    actors: dict[str, Any] = {}

    def handle(op: str, args: tuple[Any, ...]) -> Any:
        if op == "create":  # (name, "module:Class", constructor args)
            name, path, init_args = args
            module, _, qualname = path.partition(":")
            cls = getattr(importlib.import_module(module), qualname)
            # num_cpus=0: an actor reserves none of the node's CPUs, so any number fit.
            actor = ray.remote(num_cpus=0)(cls).options(name=name, namespace=NAMESPACE)
            handle_ = actor.remote(*init_args)
            ray.get(handle_.ready.remote())  # its worker process is up and answering
            actors[name] = handle_
            _record(directory, process_tree(me))  # the actor's worker process is new
            return None
        if op == "call":  # (name, method, args)
            name, method, call_args = args
            return ray.get(getattr(actors[name], method).remote(*call_args))
        if op == "kill":
            actor = actors.pop(args[0], None)
            if actor is not None:
                ray.kill(actor)
            return None
        raise ValueError(f"unknown request {op!r}")

    conn.send(("ready", {"gcs_address": info.address_info["gcs_address"], "init_s": init_s}))
    stopping = False
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break  # the run went away without saying stop: stop all the same
        if msg[0] == "stop":
            stopping = True
            break
        try:
            reply: tuple[str, Any] = ("ok", handle(msg[0], tuple(msg[1:])))
        except Exception as exc:
            reply = ("error", f"{type(exc).__name__}: {one_line(exc)}")
        conn.send(reply)
    t0 = time.perf_counter()
    for actor in actors.values():
        with contextlib.suppress(Exception):
            ray.kill(actor)
    ray.shutdown()  # the driver that started the node: stops GCS, raylet, workers, agents
    if stopping:
        with contextlib.suppress(OSError):
            conn.send(("stopped", time.perf_counter() - t0))
    return 0


def _reap(sid: int, directory: Path) -> int:
    """The reaper: wait until the run closes our stdin (it stopped the driver, or it died),
    then kill whatever is left of the driver's session, and empty the pid file: its pids are
    dead now, and a cleaner must not kill whoever gets them next."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        sys.stdin.buffer.read()
    kill_session(sid)
    if directory.is_dir():
        with contextlib.suppress(OSError):
            _record(directory, {})
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the helpers: ``python -m sharebench.rayservice FD DIRECTORY CPUS`` (the
    driver), ``python -m sharebench.rayservice reap SID DIRECTORY`` (the reaper)."""
    args = argv if argv is not None else sys.argv[1:]
    if args[0] == "reap":
        return _reap(int(args[1]), Path(args[2]))
    fd, directory, cpus = args
    conn = Connection(int(fd))
    try:
        return _serve(conn, Path(directory), int(cpus))
    finally:
        conn.close()


# --------------------------------------------------------------------------------------
# The run's side


class ServiceError(RuntimeError):
    """The driver stopped answering, or answered with an error (the message says which)."""


class RayService:
    """The driver process and its cluster, seen from the run; see the module docstring.

    ``start()`` returns once the cluster is up (or raises :class:`Unavailable` with the
    reason); ``stop()`` is idempotent and leaves no process and no directory behind.
    """

    def __init__(self, run_token: str, cpus: int | None = None, start_timeout: float = 120.0,
                 stop_timeout: float = 30.0, request_timeout: float = 120.0) -> None:
        self.run_token = run_token
        self.cpus = cpus or len(os.sched_getaffinity(0))
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.request_timeout = request_timeout
        self.owner = os.getpid()
        self.directory: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        #: Kills what is left of the driver's session once the run closes its stdin, or dies.
        self.reaper: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self.gcs_address = ""
        #: Seconds: the driver's start (process and ``ray.init``), its ``ray.init`` alone,
        #: and the last stop (request to no process left).
        self.start_s = self.init_s = self.stop_s = 0.0

    @property
    def pid(self) -> int | None:
        """The driver's pid while it runs."""
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the driver is up (and this is the process that started it)."""
        return (self.proc is not None and self.proc.poll() is None
                and os.getpid() == self.owner)

    def start(self) -> str:
        """Start the driver and wait for its cluster; returns the GCS address."""
        t0 = time.perf_counter()
        self.directory = run_dir(self.run_token, "ray")
        # Named before the driver exists: a run killed while Ray starts leaves a directory
        # whose cleanup file already points at the pids its driver records.
        note_cleanup(self.directory, "pidfile", str(self.directory / PROCS))
        ours, theirs = socket.socketpair()
        try:
            with (self.directory / "driver.log").open("wb") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "sharebench.rayservice", str(theirs.fileno()),
                     str(self.directory), str(self.cpus)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(theirs.fileno(),), env={**os.environ, **RAY_ENV},
                    start_new_session=True,  # Ctrl-C reaches the run, which then stops Ray
                    # Dies with the run even if the run is SIGKILLed (Linux PR_SET_PDEATHSIG).
                    preexec_fn=die_with_parent,  # noqa: PLW1509 (the run forks from one thread)
                )
            theirs.close()
            self.conn = Connection(ours.detach())
            # Not every Ray process dies with the driver (the raylet's agents outlive it),
            # so a reaper outside the session kills the rest when the run stops or dies.
            self.reaper = subprocess.Popen(
                [sys.executable, "-m", "sharebench.rayservice", "reap", str(self.proc.pid),
                 str(self.directory)],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            kind, value = self._receive(self.start_timeout, "start")
            if kind != "ready":
                raise Unavailable(str(value))
        except BaseException:
            theirs.close()
            ours.close()
            self.stop()
            raise
        self.gcs_address = str(value["gcs_address"])
        self.init_s = float(value["init_s"])
        self.start_s = time.perf_counter() - t0
        return self.gcs_address

    def _receive(self, timeout: float, what: str) -> tuple[str, Any]:
        conn, proc = self.conn, self.proc
        assert conn is not None
        assert proc is not None
        deadline = time.monotonic() + timeout
        while not conn.poll(0.05):
            if proc.poll() is not None:
                raise ServiceError(f"the Ray driver exited (code {proc.returncode}) during "
                                   f"{what}: {self._log_tail()}")
            if time.monotonic() > deadline:
                raise ServiceError(f"the Ray driver did not answer {what} within {timeout:g} s")
        try:
            kind, value = conn.recv()
        except (EOFError, OSError):
            raise ServiceError(f"the Ray driver went away during {what}") from None
        return str(kind), value

    def _log_tail(self) -> str:
        """The driver's last line of output (its error, usually)."""
        try:
            assert self.directory is not None
            lines = (self.directory / "driver.log").read_text(errors="replace").splitlines()
        except (OSError, AssertionError):
            return "no output"
        lines = [line for line in lines if line.strip()]
        return lines[-1].strip() if lines else "no output"

    def request(self, op: str, *args: Any) -> Any:
        """Send one request to the driver and return its answer (ServiceError if it failed)."""
        if not self.running or self.conn is None:
            raise ServiceError("the Ray driver is not running")
        try:
            self.conn.send((op, *args))
            kind, value = self._receive(self.request_timeout, op)
        except (ServiceError, OSError):
            # A driver that hangs or died is no use (and a late answer would be taken for the
            # next request's): stop it; the run's next Ray benchmark starts a new one.
            self.stop()
            raise
        if kind != "ok":
            raise ServiceError(f"Ray driver, {op}: {value}")
        return value

    def create(self, name: str, cls: type, *args: Any) -> None:
        """Create the named actor ``cls(*args)`` (a class importable by Ray's workers)."""
        self.request("create", name, f"{cls.__module__}:{cls.__qualname__}", args)

    def call(self, name: str, method: str, *args: Any) -> Any:
        """``ray.get(actor.method.remote(*args))`` in the driver."""
        return self.request("call", name, method, args)

    def kill(self, name: str) -> None:
        """Kill the named actor (its worker process ends)."""
        self.request("kill", name)

    def stop(self) -> None:
        """Stop the cluster (politely, then by force), then remove the run directory."""
        t0 = time.perf_counter()
        proc, self.proc = self.proc, None
        reaper, self.reaper = self.reaper, None
        conn, self.conn = self.conn, None
        directory, self.directory = self.directory, None
        if os.getpid() != self.owner:
            return  # a forked copy of the run: the cluster is not ours to stop
        procs = recorded(directory) if directory is not None else {}
        try:
            if proc is not None and proc.poll() is None:
                self._stop_driver(proc, conn)
            if conn is not None:
                conn.close()
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(self.stop_timeout)
            if reaper is not None:
                self._stop_reaper(reaper, proc.pid if proc is not None else 0)
            if directory is not None:
                procs.update(recorded(directory))
            kill_survivors(procs, grace=2.0)
        finally:
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        self.stop_s = time.perf_counter() - t0

    def _stop_reaper(self, reaper: subprocess.Popen[bytes], sid: int) -> None:
        """Let the reaper kill what is left of the driver's session, and wait for it."""
        if reaper.stdin is not None:
            with contextlib.suppress(OSError):
                reaper.stdin.close()
        try:
            reaper.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            reaper.kill()
            reaper.wait()
            if sid:
                kill_session(sid)

    def _stop_driver(self, proc: subprocess.Popen[bytes], conn: Connection | None) -> None:
        """Ask the driver to stop; SIGTERM, then SIGKILL (Ray's processes die with it)."""
        if conn is not None:
            try:
                conn.send(("stop",))
                deadline = time.monotonic() + self.stop_timeout
                while proc.poll() is None and time.monotonic() < deadline:
                    if conn.poll(0.05):
                        conn.recv()  # "stopped": ray.shutdown() is done
                        break
            except (OSError, EOFError):
                pass
        try:
            proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------------------
# One cluster per run


class _Run:
    """The run's cluster (module state: one per process)."""

    service: RayService | None = None
    #: Why the cluster could not be had: a run tries once.
    unavailable: str | None = None
    at_exit = False


def shared(run_token: str) -> RayService:
    """The run's cluster, started at the first call (later calls reuse it, whatever their
    token). :class:`Unavailable` when Ray is not installed or cannot start here (remembered:
    a run tries once)."""
    if not ray_installed():
        raise Unavailable(NOT_INSTALLED)
    service = _Run.service
    if service is not None and service.owner != os.getpid():
        service = _Run.service = None  # inherited by a fork: the parent's, not ours
    if service is not None:
        if service.running:
            return service
        _Run.service = None
        if service.proc is not None:  # died between benchmarks: this one reports it
            service.stop()  # what is left of it; the next Ray benchmark starts a new cluster
            raise ServiceError("the run's Ray driver has died (the next Ray benchmark starts "
                               "a new one)")
        # else: it failed a request, was stopped then, and that benchmark said so
    if _Run.unavailable is not None:
        raise Unavailable(_Run.unavailable)
    service = RayService(run_token)
    try:
        service.start()
    except Unavailable as exc:
        _Run.unavailable = str(exc)
        raise
    except ServiceError as exc:
        _Run.unavailable = f"ray could not start a local cluster: {exc}"
        raise Unavailable(_Run.unavailable) from None
    _Run.service = service
    if not _Run.at_exit:
        atexit.register(stop_shared)  # whatever else the run forgets
        _Run.at_exit = True
    return service


def current() -> RayService | None:
    """The run's cluster if one was started (for reports and tests)."""
    return _Run.service


def stop_shared() -> None:
    """Stop the run's cluster if one was started (idempotent); the next :func:`shared`
    starts a new one."""
    service, _Run.service = _Run.service, None
    _Run.unavailable = None
    if service is not None:
        service.stop()


if __name__ == "__main__":
    sys.exit(main())
