"""Keyed data through libraries — UltraDict2, shared-memory-dict, diskcache, LMDB: exact
per-key counts for the locked and atomic dict-increments, checked lookups, a corrupted table
caught, nothing left in /dev/shm or the temporary directory, and the reason recorded when a
library is missing or a size is out of its reach."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sharebench import lifecycle
from sharebench.harness import HarnessConfig, run_benchmark
from sharebench.mechanisms import diskcache as diskcache_mechs
from sharebench.mechanisms import lmdbstore, smdict, ultradict
from sharebench.mechanisms.base import Mechanism, StoreSpec, Unavailable
from sharebench.mechanisms.keyed import value_of

FAST = HarnessConfig(round_time=0.02, rounds=3, warmup_rounds=1)

#: family -> (module to import, pip requirement)
LIBRARIES = {
    "ultradict": ("UltraDict2", ultradict.REQUIREMENT),
    "shared-memory-dict": ("shared_memory_dict", smdict.REQUIREMENT),
    "diskcache": ("diskcache", diskcache_mechs.REQUIREMENT),
    "lmdb": ("lmdb", lmdbstore.REQUIREMENT),
}
ALL = [m for mod in (ultradict, smdict, diskcache_mechs, lmdbstore) for m in mod.MECHANISMS]
DICT = [m for m in ALL if m.operation == "dict-increment"]
LOOKUP = [m for m in ALL if m.operation == "lookup"]


def _need(mech: Mechanism) -> None:
    module, requirement = LIBRARIES[mech.family]
    if module == "UltraDict2":
        # through the store's import: a plain import would patch the resource tracker
        try:
            ultradict.import_ultradict()
        except Unavailable as exc:
            pytest.skip(str(exc))
        return
    pytest.importorskip(module, reason=f"{module} is not installed (pip install {requirement})")


def _psm() -> set[str]:
    """UltraDict2's unnamed dump segments (none may appear: full_dump_size is always set)."""
    return {n for n in os.listdir(lifecycle.SHM_DIR) if n.startswith("psm_")}


def _our_dirs() -> set[str]:
    return {d.name for d in lifecycle.suite_dirs() if d.pid == os.getpid()}


@pytest.fixture
def nothing_left(no_leaks: None) -> Iterator[None]:
    """No block, child, run directory or ``psm_*`` segment outlives the test."""
    dirs, psm = _our_dirs(), _psm()
    yield
    assert _our_dirs() - dirs == set()
    assert _psm() - psm == set()


# --- dict-increment ------------------------------------------------------------------------


@pytest.mark.parametrize("processes", [1, 2, 4])
@pytest.mark.parametrize("mech", DICT, ids=lambda m: m.label)
def test_safe_dict_increments_lose_nothing(mech: Mechanism, processes: int,
                                           nothing_left: None) -> None:
    _need(mech)
    rec = run_benchmark(mech, processes, "fork", FAST, keys=50)
    assert rec.status.is_ok, rec.status
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert rec.round_lost == [0, 0, 0]
    assert rec.issued_ops == 3 * rec.ops_per_round > 0


@pytest.mark.parametrize("mech", DICT, ids=lambda m: m.label)
def test_dict_increments_under_spawn(mech: Mechanism, nothing_left: None) -> None:
    """Workers that inherit nothing: attach by name, reopen the database or environment."""
    _need(mech)
    rec = run_benchmark(mech, 2, "spawn", FAST, keys=20)
    assert rec.status.is_ok, rec.status
    assert rec.lost_updates == 0


@pytest.mark.parametrize("processes", [1, 2, 4])
def test_diskcache_increment_is_exact(processes: int, nothing_left: None) -> None:
    pytest.importorskip("diskcache")
    mech = next(m for m in ALL if m.key == "diskcache/atomic/increment")
    rec = run_benchmark(mech, processes, "fork", FAST)
    assert rec.status.is_ok, rec.status
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert rec.issued_ops == 3 * processes * rec.ops_per_worker > 0


def test_ultradict_dumps_when_its_stream_fills(monkeypatch: pytest.MonkeyPatch,
                                               nothing_left: None) -> None:
    """A stream of 1 kB fills every ~30 increments: the dict is dumped into its fixed
    ``_full`` segment over and over (never a new ``psm_*`` one) and still loses nothing."""
    mech = next(m for m in DICT if m.family == "ultradict")
    _need(mech)
    monkeypatch.setattr(ultradict, "STREAM", 1024)
    dumps: list[int] = []

    class Counting(ultradict.UltraCountersStore):
        def close(self) -> None:
            self.read_counts()  # the parent loads the newest dump
            dumps.append(self.dict.full_dump_counter)
            super().close()

    rec = run_benchmark(mech.replace(store=Counting), 2, "fork", FAST, keys=50)
    assert rec.status.is_ok, rec.status
    assert rec.lost_updates == 0
    assert dumps[0] >= max(2, rec.issued_ops // 64)  # measured rounds alone make that many


# --- lookup --------------------------------------------------------------------------------


@pytest.mark.parametrize("processes", [1, 2])
@pytest.mark.parametrize("mech", LOOKUP, ids=lambda m: m.label)
def test_lookups_read_the_right_values(mech: Mechanism, processes: int,
                                       nothing_left: None) -> None:
    _need(mech)
    rec = run_benchmark(mech, processes, "fork", FAST, keys=2000)
    assert rec.status.is_ok, rec.status
    assert rec.issued_ops == 3 * rec.ops_per_round > 0
    assert rec.memory_status == "ok"


def _corrupt(store: Any) -> None:
    """Key 3 now holds key 10's value, written the way the library writes."""
    if isinstance(store, ultradict.UltraLookupStore | smdict.SmdLookupStore):
        store.dict[3] = value_of(10)
    elif isinstance(store, diskcache_mechs.CacheLookupStore):
        store.cache.set(3, value_of(10))
    else:
        assert isinstance(store, lmdbstore.LmdbLookupStore)
        env = lmdbstore.open_env(str(store.directory), store.map_size)
        try:
            with env.begin(write=True) as txn:
                txn.put(lmdbstore.key_bytes(3), value_of(10))
        finally:
            env.close()


@pytest.mark.parametrize("mech", LOOKUP, ids=lambda m: m.label)
def test_a_corrupted_table_is_caught(mech: Mechanism, nothing_left: None) -> None:
    _need(mech)

    class Corrupt(mech.store):  # type: ignore[name-defined,misc]
        def __init__(self, ctx: Any, spec: StoreSpec) -> None:
            super().__init__(ctx, spec)
            _corrupt(self)

    rec = run_benchmark(mech.replace(store=Corrupt), 1, "fork", FAST, keys=20)
    assert str(rec.status).startswith("error: verification failed: 0 of "), rec.status
    assert "foreign values" in str(rec.status)


def test_ultradict_lookup_loads_through_dumps(monkeypatch: pytest.MonkeyPatch,
                                              nothing_left: None) -> None:
    """A load larger than the stream is dumped on the way; the workers still read it all."""
    mech = next(m for m in LOOKUP if m.family == "ultradict")
    _need(mech)
    monkeypatch.setattr(ultradict, "LOAD_STREAM", 4096)
    rec = run_benchmark(mech, 2, "fork", FAST, keys=2000)
    assert rec.status.is_ok, rec.status


# --- what a library cannot do here, and a missing library ------------------------------------


@pytest.mark.parametrize("mech", [m for m in ALL if m.family == "shared-memory-dict"],
                         ids=lambda m: m.key)
def test_shared_memory_dict_refuses_sizes_it_would_only_unpickle(mech: Mechanism,
                                                                 nothing_left: None) -> None:
    rec = run_benchmark(mech, 1, "fork", FAST, keys=smdict.MAX_ENTRIES + 1)
    assert str(rec.status).startswith(
        "skipped: shared-memory-dict unpickles the whole dict on every read"), rec.status
    assert f"at most {smdict.MAX_ENTRIES:,}" in str(rec.status)


@pytest.mark.parametrize("mech", ALL, ids=lambda m: m.key)
def test_a_missing_library_is_a_skip_with_the_pip_line(mech: Mechanism,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        nothing_left: None) -> None:
    module, requirement = LIBRARIES[mech.family]
    monkeypatch.setitem(sys.modules, module, None)  # import now raises ModuleNotFoundError
    smdict.named_dict_class.cache_clear()
    try:
        rec = run_benchmark(mech, 1, "fork", FAST, keys=10)
    finally:
        smdict.named_dict_class.cache_clear()
    name = requirement.split("=")[0].split(">")[0]
    assert str(rec.status) == f"skipped: {name} is not installed (pip install {requirement})"


def test_the_lmdb_parent_keeps_no_environment_open(nothing_left: None) -> None:
    """py-lmdb refuses a second open of a path in one process, and a forked worker would
    inherit any open one: after the store is made, the path must open again here."""
    pytest.importorskip("lmdb")
    ctx = multiprocessing.get_context("fork")
    store = lmdbstore.LmdbCountersStore(ctx, StoreSpec(1, capacity=0, keys=5))
    try:
        assert store.directory is not None
        env = lmdbstore.open_env(str(store.directory), store.map_size)
        env.close()
        assert store.read_counts() == [0] * 5
    finally:
        store.close()


def test_the_database_lives_in_a_run_dir_removed_at_close(nothing_left: None) -> None:
    pytest.importorskip("diskcache")
    ctx = multiprocessing.get_context("fork")
    store = diskcache_mechs.CacheCountersStore(ctx, StoreSpec(1, capacity=0, keys=5))
    directory = store.directory
    assert directory is not None
    try:
        assert directory.name.startswith(f"sharebench-{os.getpid()}-diskcache-")
        assert (directory / "cache.db").exists()
    finally:
        store.close()
    assert not Path(directory).exists()


def test_a_too_large_shared_memory_dict_builds_nothing(nothing_left: None) -> None:
    """shared-memory-dict says no before it makes anything (no block, no table)."""
    ctx = multiprocessing.get_context("fork")
    with pytest.raises(Unavailable, match="at most"):
        smdict.SmdLookupStore(ctx, StoreSpec(1, capacity=0, keys=10 * smdict.MAX_ENTRIES))


def test_importing_ultradict_leaves_the_resource_tracker_alone() -> None:
    """UltraDict2 patches multiprocessing.resource_tracker at import (Python < 3.13); the
    store's import puts it back, so other benchmarks' blocks stay tracked."""
    from multiprocessing import resource_tracker

    before = (resource_tracker.register, resource_tracker.unregister)
    _need(ultradict.MECHANISMS[0])
    assert (resource_tracker.register, resource_tracker.unregister) == before
    assert "shared_memory" in resource_tracker._CLEANUP_FUNCS
