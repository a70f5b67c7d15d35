"""Bulk transfers: every mechanism delivers intact arrays, corruption and loss are caught,
memcpy is measured beside them, and nothing is left behind (shared memory, processes)."""

from __future__ import annotations

from typing import Any

import pytest

from sharebench import mechanisms
from sharebench.harness import HarnessConfig, run_benchmark, store_capacity
from sharebench.mechanisms import all_mechanisms, transfer
from sharebench.mechanisms.transfer import Payload, TransferLocal, check_payload_size
from sharebench.profiles import PROFILES, cases

FAST = HarnessConfig(round_time=0.02, rounds=3, warmup_rounds=1)
KIB64 = 64 * 1024

#: Ray's transfer has its own tests (tests/test_lib_ray.py): its cluster outlives one test.
TRANSFERS = [m for m in mechanisms.all_mechanisms("transfer") if m.family not in ("harness",
                                                                                   "ray")]


@pytest.mark.parametrize("mech", TRANSFERS, ids=lambda m: m.label)
def test_every_transfer_arrives_intact(mech: Any, no_leaks: None) -> None:
    rec = run_benchmark(mech, 1, "fork", FAST, payload_bytes=KIB64)
    assert rec.status.is_ok
    assert rec.payload_bytes == KIB64
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert rec.issued_ops == 3 * rec.ops_per_worker > 0


@pytest.mark.parametrize("name", ["shm-numpy", "pipe"])
def test_transfer_under_spawn(name: str, no_leaks: None) -> None:
    rec = run_benchmark(mechanisms.get(name, "atomic", "transfer"), 1, "spawn", FAST,
                        payload_bytes=4096)
    assert rec.status.is_ok
    assert rec.lost_updates == 0


def test_memcpy_is_measured_for_the_same_sizes() -> None:
    rec = run_benchmark(mechanisms.get("memcpy", "none", "transfer"), 1, "fork", FAST,
                        payload_bytes=KIB64)
    assert rec.status.is_ok
    assert rec.family == "harness"
    assert rec.lost_updates == 0


# Senders that break the data on purpose. Stamps and patterns are checked per transfer (probe
# words), the last transfer of a round byte for byte.


def _pipe_flips_a_probe_word(local: TransferLocal, k: int, base: int) -> None:
    words, sources = local.payload.words, local.payload.sources
    send = local.channel.send_bytes
    mid = local.payload.probes[1]
    for i in range(k):
        w = words[i & 1]
        w[0] = base + i
        saved = int(w[mid])
        if i == 0:
            w[mid] = saved ^ 1
        send(sources[i & 1])
        w[mid] = saved


def _pipe_flips_a_byte_between_probes(local: TransferLocal, k: int, base: int) -> None:
    words, sources = local.payload.words, local.payload.sources
    send = local.channel.send_bytes
    where = 3 * len(sources[0]) // 4  # no probe word there
    for i in range(k):
        words[i & 1][0] = base + i
        src = sources[i & 1]
        saved = int(src[where])
        src[where] = saved ^ 0xFF
        send(src)
        src[where] = saved


def _shm_sends_a_stale_array(local: TransferLocal, k: int, base: int) -> None:
    """Every transfer stamped, but always pattern 0: odd transfers carry the wrong bytes."""
    import numpy as np

    words = local.payload.words
    for i in range(k):
        words[0][0] = base + i
        local.empty.acquire()
        np.copyto(local.dst, local.payload.sources[0])
        local.full.release()


def _queue_skips_one(local: TransferLocal, k: int, base: int) -> None:
    """Sends k arrays but the stamp jumps once: from there on the sequence is off."""
    put, sources = local.channel.put, local.payload.sources
    for i in range(k):
        seq = i + 1 if i >= k // 2 else i
        put((base + seq, sources[seq & 1]))


@pytest.mark.parametrize(
    ("name", "loop", "lost"),
    [
        ("pipe", _pipe_flips_a_probe_word, "1 of"),
        ("pipe", _pipe_flips_a_byte_between_probes, "1 of"),
        ("shm-numpy", _shm_sends_a_stale_array, "lost"),
        ("queue", _queue_skips_one, "lost"),
    ],
)
def test_corrupt_or_missing_transfers_fail_verification(
    name: str, loop: Any, lost: str, no_leaks: None
) -> None:
    mech = mechanisms.get(name, "atomic", "transfer").replace(loop=loop)
    rec = run_benchmark(mech, 1, "fork", HarnessConfig(round_time=0.02, rounds=2,
                                                        warmup_rounds=0),
                        payload_bytes=KIB64)
    assert str(rec.status).startswith("error: verification failed:")
    assert lost in str(rec.status)
    assert "foreign values" in str(rec.status)
    assert rec.lost_updates > 0


def test_payload_patterns_are_the_same_in_every_process_and_differ_by_parity() -> None:
    a, b = Payload(4096), Payload(4096)
    assert all((x == y).all() for x, y in zip(a.words, b.words, strict=True))
    assert not (a.words[0][1:] == a.words[1][1:]).all()
    assert a.matches(0, a.words[0].copy())
    assert not a.matches(1, a.words[0].copy())


@pytest.mark.parametrize("size", [0, 8, 63, 1000 + 1, -64, True])
def test_payload_sizes_the_check_cannot_use_are_refused(size: Any) -> None:
    with pytest.raises(ValueError, match="multiple of 8 bytes"):
        check_payload_size(size)


def test_transfer_stores_allocate_by_payload_not_by_capacity(no_leaks: None) -> None:
    """Capacity (sized for item stores from max_rate) must not size anything here."""
    import multiprocessing

    from sharebench.mechanisms.base import StoreSpec

    ctx = multiprocessing.get_context("fork")
    store = transfer.ShmTransferStore(ctx, StoreSpec(1, capacity=10**12,
                                                     payload_bytes=KIB64))
    try:
        assert store.block is not None
        assert store.block.size == KIB64
    finally:
        store.close()
    assert store_capacity(transfer.ShmTransferStore, 0.05) <= 10**6


def test_profiles_parametrise_transfers_by_size() -> None:
    quick = cases(all_mechanisms("transfer"), (1, 2, 4), ("fork",),
                  PROFILES["quick"].transfer_sizes)
    ids = [c.id for c in quick]
    assert "shm-numpy-atomic-transfer-64MiB-p1-fork" in ids
    assert "memcpy-none-transfer-64MiB-p1-fork" in ids
    assert all("-p1-" in i for i in ids)  # one process hands to another
    everything = mechanisms.all_mechanisms("transfer")
    assert len(ids) == len(everything) * len(PROFILES["quick"].transfer_sizes)
    assert PROFILES["full"].transfer_sizes == tuple(1024 * 4**i for i in range(9))
    # Other operations are not multiplied by sizes.
    increments = cases(all_mechanisms("increment"), (1,), ("fork",), (1024,))
    assert all(c.payload_bytes == 0 for c in increments)
