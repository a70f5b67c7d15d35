"""The two sides of ``sharebench ab``: what code each measures, and a client for its server.

A side is given as

* nothing, ``.`` or ``worktree`` — the working tree, under the interpreter running ``ab``;
* a path to a Python interpreter or a virtual environment — its own sharebench if it has
  one; if it has none, the working tree installed into a virtual environment made from that
  interpreter (cached), so ``--a python3.12 --b python3.13`` compares interpreters;
* anything else — a git ref of this repository (``main``, ``HEAD~3``, a sha): checked out
  into a worktree and installed into a virtual environment of its own, both cached.

Worktrees and environments live in the cache directory (``.sharebench-cache/`` at the top of
the repository, or ``--cache`` / ``SHAREBENCH_CACHE``), keyed by commit and interpreter
version, and are reused between calls; ``sharebench clean --cache`` removes them.

:class:`SideClient` starts ``python -m sharebench.abside`` with the side's interpreter and
speaks its line protocol, with a deadline on every reply: a side that dies or hangs is an
error of the benchmark it was running, and is started again for the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sharebench.errors import SharebenchError, UsageError

CACHE_ENV = "SHAREBENCH_CACHE"
CACHE_NAME = ".sharebench-cache"
#: Written into an environment once everything was installed: a half-built one is rebuilt.
_READY = ".sharebench-ready"


class SideError(SharebenchError):
    """A side cannot be had (a ref that does not exist, an environment that will not build)."""


@dataclass(frozen=True)
class SideSpec:
    """How to start one side: its interpreter, environment, and what it is, for people."""

    label: str
    python: str
    describe: str
    env: dict[str, str] = field(default_factory=dict)


def default_cache(repo: Path) -> Path:
    """``$SHAREBENCH_CACHE`` or ``<repo>/.sharebench-cache``."""
    return Path(os.environ.get(CACHE_ENV) or repo / CACHE_NAME)


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise SideError(f"git {' '.join(args)}: {out.stderr.strip() or 'failed'}")
    return out.stdout.strip()


def _python_of(path: Path) -> Path | None:
    """The interpreter of a path that is one, or of a virtual environment directory."""
    if path.is_dir():
        for candidate in (path / "bin" / "python", path / "bin" / "python3"):
            if candidate.exists():
                return candidate
        return None
    return path if path.is_file() and os.access(path, os.X_OK) else None


def _probe(python: str | Path, env: dict[str, str] | None = None) -> str:
    """``'ok'`` if the interpreter imports sharebench's ab side, ``'old'`` if it has a
    sharebench without one, ``'none'`` if it has no sharebench."""
    code = ("import importlib.util as u, sys; "
            "sys.exit(0 if u.find_spec('sharebench.abside') else "
            "(3 if u.find_spec('sharebench') else 4))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                         env={**os.environ, **(env or {})}, check=False, timeout=120)
    return {0: "ok", 3: "old", 4: "none"}.get(out.returncode, "none")


def _version(python: str | Path) -> str:
    code = "import sys; print('%d.%d.%d' % sys.version_info[:3])"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                         timeout=60)
    return out.stdout.strip()


def build_env(python: str | Path, source: Path, target: Path, editable: bool,
              log: Any = sys.stderr) -> Path:
    """A virtual environment at ``target`` made by ``python`` with ``source`` installed (and
    its dependencies); reused if a complete one is there. Returns its interpreter."""
    env_python = target / "bin" / "python"
    stamp = _requirements_stamp(source)
    ready = target / _READY
    if ready.exists() and env_python.exists() and ready.read_text() == stamp:
        return env_python  # an editable install follows the tree, but not new dependencies
    if target.exists():
        shutil.rmtree(target)
    print(f"sharebench ab: building {target} (once; cached) ...", file=log, flush=True)
    steps = [
        [str(python), "-m", "venv", str(target)],
        [str(env_python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         *(["-e"] if editable else []), str(source)],
    ]
    for step in steps:
        out = subprocess.run(step, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
            raise SideError(f"building {target} failed: {' / '.join(tail)}")
    ready.write_text(stamp)
    return env_python


def _requirements_stamp(source: Path) -> str:
    """What the environment was built from: a hash of the tree's build and dependency files,
    so a cached environment is rebuilt when they change."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "setup.py"):
        path = source / name
        digest.update(name.encode() + b"\0")
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest() + "\n"


def resolve(spec: str | None, label: str, repo: Path, cache: Path) -> SideSpec:
    """The side named by ``spec`` (see the module docstring); builds what it needs."""
    if spec in (None, "", ".", "worktree"):
        return SideSpec(label, sys.executable, "working tree",
                        {"PYTHONPATH": str(repo / "src")})
    assert spec is not None
    as_path = Path(spec).expanduser()
    python = _python_of(as_path) if as_path.exists() else None
    if as_path.exists() and python is None:
        raise UsageError(f"side {label}: {spec} is neither an interpreter nor a virtual "
                         "environment")
    if python is not None:
        found = _probe(python)
        if found == "ok":
            return SideSpec(label, str(python), f"{python} (its own sharebench)")
        if found == "old":
            raise SideError(f"side {label}: the sharebench installed for {python} has no "
                            "`sharebench ab` support; upgrade it, or give a git ref")
        version = _version(python)
        target = cache / "envs" / f"worktree-py{version}"
        env_python = build_env(python, repo, target, editable=True)
        return SideSpec(label, str(env_python), f"working tree under Python {version} "
                                                 f"({python})")
    try:
        sha = _git(repo, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}")
    except SideError:
        raise UsageError(f"side {label}: {spec!r} is neither an interpreter, a virtual "
                         "environment nor a git ref of this repository") from None
    short = sha[:12]
    tree = cache / "worktrees" / short
    if not (tree / "pyproject.toml").exists():
        if tree.exists():
            shutil.rmtree(tree)
        _git(repo, "worktree", "prune")
        tree.parent.mkdir(parents=True, exist_ok=True)
        _git(repo, "worktree", "add", "--detach", "--force", str(tree), sha)
    version = _version(sys.executable)
    env_python = build_env(_base_python(), tree, cache / "envs" / f"{short}-py{version}",
                           editable=False)
    if _probe(env_python) != "ok":
        raise SideError(f"side {label}: {spec} ({short}) predates `sharebench ab` "
                        "(no sharebench.abside); compare stored runs with `sharebench compare`")
    return SideSpec(label, str(env_python), f"git {spec} ({short})")


def _base_python() -> str:
    """The interpreter this one's virtual environment (if any) was made from."""
    return str(getattr(sys, "_base_executable", sys.executable) or sys.executable)


def clean_cache(repo: Path, cache: Path) -> list[Path]:
    """Remove the cache: its git worktrees (unregistered from git) and environments."""
    removed = []
    trees = cache / "worktrees"
    if trees.is_dir():
        for tree in sorted(trees.iterdir()):
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                           capture_output=True, check=False)
            if tree.exists():
                shutil.rmtree(tree, ignore_errors=True)
            removed.append(tree)
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True,
                       check=False)
    envs = cache / "envs"
    if envs.is_dir():
        for env in sorted(envs.iterdir()):
            shutil.rmtree(env, ignore_errors=True)
            removed.append(env)
    if cache.is_dir() and not any(cache.rglob("*")):
        cache.rmdir()
    return removed


# --------------------------------------------------------------------------------------
# Talking to a side


class SideDied(RuntimeError):
    """The side's server ended or stopped answering; the message says which and why."""


class SideClient:
    """One side's server process and its line protocol."""

    def __init__(self, spec: SideSpec, env: dict[str, str] | None = None) -> None:
        self.spec = spec
        self.extra_env = env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.hello: dict[str, Any] = {}
        # Its stderr goes to a file: a pipe nobody reads would fill and stall the side.
        self._stderr: Any = None

    def start(self, timeout: float = 120.0) -> dict[str, Any]:
        """Start the server and greet it; returns its hello (version, run description)."""
        env = {**os.environ, **self.spec.env, **self.extra_env}
        # Closed in stop(): it lives as long as the side does.
        self._stderr = tempfile.TemporaryFile(mode="w+", prefix="sharebench-ab-")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.spec.python, "-m", "sharebench.abside"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env, bufsize=1,
        )
        self.hello = self.call({"cmd": "hello"}, timeout)
        return self.hello

    def call(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one command and wait at most ``timeout`` seconds for its reply."""
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise SideDied(f"side {self.spec.label} is not running")
        try:
            proc.stdin.write(json.dumps(msg) + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise SideDied(f"side {self.spec.label} ended ({self._why()})") from None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout):
                raise SideDied(f"side {self.spec.label} did not answer {msg['cmd']!r} within "
                               f"{timeout:g} s")
        line = proc.stdout.readline()
        if not line:
            raise SideDied(f"side {self.spec.label} ended ({self._why()})")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _why(self) -> str:
        proc = self.proc
        if proc is None:
            return "never started"
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            return "no exit"
        tail = self.stderr_tail()
        return f"exit code {proc.returncode}" + (f": {tail}" if tail else "")

    def stderr_tail(self) -> str:
        """The last line the side wrote to its stderr (a traceback's last line, say)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = self._stderr.read().strip().splitlines()
        self._stderr.seek(0, os.SEEK_END)
        return lines[-1] if lines else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to quit (it closes what is open), then make sure it is gone."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
