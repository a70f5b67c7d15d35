"""Fast lock-free counters (sharebench._fastatomic, atomicshm) and the posix_ipc named
semaphore as a lock: exact state at 1, 2 and 4 processes, the extension's checks, skipped
reasons when a piece is missing, and the cleaning of a dead run's named semaphore."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from sharebench import lifecycle
from sharebench.harness import HarnessConfig, run_benchmark
from sharebench.mechanisms import fastatomic, posixsem
from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.verify import worker_tag

FAST = HarnessConfig(round_time=0.02, rounds=3, warmup_rounds=1)


def _ext() -> Any:
    """The built extension, or skip: an install without a C compiler has none."""
    try:
        from sharebench import _fastatomic
    except ImportError:
        pytest.skip(fastatomic.NOT_BUILT)
    return _fastatomic


def _needs(mech: Mechanism) -> None:
    if mech.name == "shm-atomicshm":
        pytest.importorskip("atomicshm", reason=fastatomic.ATOMICSHM_MISSING)
    elif mech.sync == "posix-sem":
        pytest.importorskip("posix_ipc", reason=posixsem.POSIX_IPC_MISSING)
    else:
        _ext()


def _cases() -> list[Any]:
    cases = []
    for mech in (*fastatomic.MECHANISMS, *posixsem.MECHANISMS):
        for processes in (1, 2, 4):
            if mech.max_processes is None or processes <= mech.max_processes:
                cases.append(pytest.param(mech, processes, id=f"{mech.key}-{processes}p"))
    return cases


# --- every variant through the harness: nothing lost, nothing duplicated -------------------


@pytest.mark.parametrize(("mech", "processes"), _cases())
def test_exact_state_at_one_two_and_four_processes(mech: Mechanism, processes: int,
                                                   no_leaks: None) -> None:
    _needs(mech)
    keys = 50 if mech.operation == "dict-increment" else 0
    rec = run_benchmark(mech, processes, "fork", FAST, keys=keys)
    assert rec.status.is_ok, rec.status
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert rec.round_lost == [0, 0, 0]
    assert rec.issued_ops == 3 * processes * rec.ops_per_worker > 0


def test_posix_semaphore_is_opened_by_name_under_spawn(no_leaks: None) -> None:
    pytest.importorskip("posix_ipc", reason=posixsem.POSIX_IPC_MISSING)
    mech = posixsem.MECHANISMS[0]
    rec = run_benchmark(mech, 2, "spawn", FAST)
    assert rec.status.is_ok, rec.status
    assert (rec.lost_updates, rec.duplicates) == (0, 0)


@pytest.mark.parametrize("store_cls", [fastatomic.FetchAddItemStore, posixsem.SemItemStore],
                         ids=lambda c: c.__name__)
def test_appended_items_are_exactly_what_each_worker_wrote(store_cls: Any,
                                                           no_leaks: None) -> None:
    """Two workers' loops, interleaved in chunks: every item once, in claim order; a worker
    that writes its items twice is caught as duplicates."""
    if store_cls is posixsem.SemItemStore:
        pytest.importorskip("posix_ipc", reason=posixsem.POSIX_IPC_MISSING)
        loop = posixsem.MECHANISMS[1].loop
    else:
        _ext()
        loop = fastatomic.MECHANISMS[1].loop
    store = store_cls(multiprocessing.get_context("fork"), StoreSpec(2, capacity=64))
    locals_ = [store_cls.attach(store.handles()) for _ in range(2)]
    try:
        loop(locals_[0], 10, worker_tag(0))
        loop(locals_[1], 15, worker_tag(1))
        loop(locals_[0], 5, worker_tag(0) + 10)
        items = [int(i) for i in store.read_items()]
        assert items == ([worker_tag(0) + i for i in range(10)]
                         + [worker_tag(1) + i for i in range(15)]
                         + [worker_tag(0) + 10 + i for i in range(5)])
        check = store.collect(15, [None, None])
        assert (check.clean, check.counted) == (True, 30)
        assert len(store.read_items()) == 0  # collect resets
        loop(locals_[0], 3, worker_tag(0))
        loop(locals_[0], 3, worker_tag(0))  # a broken worker: the same items twice
        loop(locals_[1], 3, worker_tag(1))
        check = store.collect(3, [None, None])
        assert (check.lost, check.duplicates) == (0, 3)
    finally:
        for local in locals_:
            store_cls.detach(local)
        store.close()


# --- the extension itself ------------------------------------------------------------------


def test_fetch_add_returns_the_old_value_and_adds() -> None:
    ext = _ext()
    a = np.zeros(4, dtype=np.int64)
    assert ext.fetch_add(a, 8, 5) == 0
    assert ext.fetch_add(a, 8, -2) == 5
    assert ext.fetch_add(a, 8, 0) == 3
    assert a.tolist() == [0, 3, 0, 0]
    a[3] = 2**63 - 1
    assert ext.fetch_add(a, 24, 1) == 2**63 - 1  # wraps, as C11 atomics on int64 do
    assert int(a[3]) == -(2**63)
    assert ext.add_n(a, 0, 1000) == 1000
    assert ext.add_n(a, 0, 0) == 1000  # n == 0: the current value
    assert int(a[0]) == 1000


@pytest.mark.parametrize(("offset", "error", "message"), [
    (4, ValueError, "offset 4 is misaligned"),
    (3, ValueError, "offset 3 is misaligned"),
    (32, IndexError, "offset 32 is out of range: .* buffer of 32 bytes"),
    (28, IndexError, "offset 28 is out of range"),
    (-8, IndexError, "offset -8 is out of range"),
])
def test_fetch_add_refuses_a_misaligned_or_outside_slot(offset: int, error: type[Exception],
                                                        message: str) -> None:
    ext = _ext()
    a = np.zeros(4, dtype=np.int64)  # 32 bytes, 8-aligned
    with pytest.raises(error, match=message):
        ext.fetch_add(a, offset, 1)
    with pytest.raises(error, match=message):
        ext.add_n(a, offset, 1)
    assert a.tolist() == [0, 0, 0, 0]  # nothing written on refusal


def test_fetch_add_refuses_read_only_and_bad_arguments() -> None:
    ext = _ext()
    with pytest.raises(BufferError):
        ext.fetch_add(bytes(16), 0, 1)
    with pytest.raises(TypeError, match="takes 3 arguments"):
        ext.fetch_add(bytearray(16), 0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        ext.add_n(bytearray(16), 0, -1)


def test_add_n_is_atomic_across_processes() -> None:
    ext = _ext()
    from multiprocessing import shared_memory

    block = shared_memory.SharedMemory(create=True, size=64)
    try:
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_add_many, args=(block.name, 200_000)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(30)
        assert [p.exitcode for p in procs] == [0, 0]
        assert ext.fetch_add(block.buf, 0, 0) == 400_000
    finally:
        block.close()
        block.unlink()


def _add_many(name: str, n: int) -> None:
    from multiprocessing import shared_memory

    from sharebench import _fastatomic

    block = shared_memory.SharedMemory(name=name)
    _fastatomic.add_n(block.buf, 0, n)
    block.close()


# --- missing pieces are skipped with the reason, never a crash ------------------------------


def test_unbuilt_extension_makes_the_fetchadd_rows_skipped(monkeypatch: pytest.MonkeyPatch,
                                                          no_leaks: None) -> None:
    import sharebench

    monkeypatch.setitem(sys.modules, "sharebench._fastatomic", None)  # type: ignore[arg-type]
    monkeypatch.delattr(sharebench, "_fastatomic", raising=False)
    with pytest.raises(Unavailable, match="was not built"):
        fastatomic.fastatomic()
    for mech in fastatomic.MECHANISMS:
        if mech.name == "shm-atomicshm":
            continue
        rec = run_benchmark(mech, 1, "fork", FAST)
        assert str(rec.status) == f"skipped: {fastatomic.NOT_BUILT}"
        assert rec.round_seconds == []


@pytest.mark.parametrize(("module", "mech", "reason"), [
    ("atomicshm", fastatomic.MECHANISMS[2], "pip install atomicshm==0.1.0"),
    ("posix_ipc", posixsem.MECHANISMS[0], "pip install 'posix-ipc>=1.3'"),
    ("posix_ipc", posixsem.MECHANISMS[2], "pip install 'posix-ipc>=1.3'"),
])
def test_missing_library_is_a_skipped_row(module: str, mech: Mechanism, reason: str,
                                          monkeypatch: pytest.MonkeyPatch,
                                          no_leaks: None) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # type: ignore[arg-type]
    with pytest.raises(Unavailable, match=f"{module} is not installed"):
        mech.store(multiprocessing.get_context("fork"), StoreSpec(1, capacity=16, keys=4))
    rec = run_benchmark(mech, 1, "fork", FAST, keys=4 if mech.operation != "increment" else 0)
    assert str(rec.status).startswith(f"skipped: {module} is not installed")
    assert reason in str(rec.status)


# --- named semaphores: names, ownership and cleaning ---------------------------------------


def test_semaphore_is_named_for_the_run_and_unlinked_at_close() -> None:
    posix_ipc = pytest.importorskip("posix_ipc", reason=posixsem.POSIX_IPC_MISSING)
    ctx = multiprocessing.get_context("fork")
    store = posixsem.SemCounterStore(ctx, StoreSpec(1, capacity=16))
    sem_name = store.handles()[1]
    entry = lifecycle.SHM_DIR / f"sem.{sem_name[1:]}"
    try:
        assert sem_name.startswith(f"/sharebench-{os.getpid()}-")
        assert entry.exists()
        with pytest.raises(posix_ipc.ExistentialError):  # O_CREX: never reuses a name
            posix_ipc.Semaphore(sem_name, posix_ipc.O_CREX)
        assert [s.name for s in lifecycle.suite_segments() if s.name == entry.name]
    finally:
        store.close()
    assert not entry.exists()
    with pytest.raises(posix_ipc.ExistentialError):
        posix_ipc.Semaphore(sem_name)


_KILLED_RUN = """
import os
from sharebench.mechanisms.posixsem import NamedSemaphore
print(NamedSemaphore(str(os.getpid())).name, flush=True)
os._exit(9)  # killed: nobody unlinks it
"""


def test_named_semaphore_of_a_dead_run_is_cleaned() -> None:
    posix_ipc = pytest.importorskip("posix_ipc", reason=posixsem.POSIX_IPC_MISSING)
    dead = subprocess.run([sys.executable, "-c", _KILLED_RUN], capture_output=True,
                          text=True, check=False, timeout=60)
    assert dead.returncode == 9, dead.stderr
    dead_name = dead.stdout.strip()
    live = posixsem.NamedSemaphore(str(os.getpid()))
    try:
        dead_entry = f"sem.{dead_name[1:]}"
        live_entry = f"sem.{live.name[1:]}"
        posix_ipc.Semaphore(dead_name).close()  # left behind by the dead run
        found = {s.name: s for s in lifecycle.suite_segments()}
        assert found[dead_entry].stale
        assert not found[live_entry].stale
        removed = [s.name for s in lifecycle.clean_stale()]
        assert dead_entry in removed
        assert live_entry not in removed
        with pytest.raises(posix_ipc.ExistentialError):
            posix_ipc.Semaphore(dead_name)
        posix_ipc.Semaphore(live.name).close()  # a live run's semaphore is left alone
    finally:
        live.close()
