"""Manager over TCP: exact counts, workers that connect by address and authkey only, a wrong
authkey refused, and a server the user runs (``--manager-address``) left running and clean."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import pytest

from sharebench import mechanisms
from sharebench.harness import HarnessConfig, run_benchmark
from sharebench.mechanisms.base import StoreSpec
from sharebench.mechanisms.manager_tcp import connect
from sharebench.pools import ProcessPool
from sharebench.servers import free_port
from sharebench.verify import worker_tag

FAST = HarnessConfig(round_time=0.02, rounds=3, warmup_rounds=1)
SAFE = [m for m in mechanisms.all_mechanisms()
        if m.family == "manager-tcp" and m.sync != "none"]


def _round(mech, start_method, k, resources=None):
    ctx = multiprocessing.get_context(start_method)
    spec = StoreSpec(2, capacity=2 * k, run_token="tcp", resources=resources or {})
    store = mech.store(ctx, spec)
    pool = ProcessPool(ctx, mech, store.handles(), 2)
    try:
        pool.start()
        pool.run_round(k)
        if mech.operation == "increment":
            return store.read_counter()
        return sorted(int(x) for x in store.read_items())
    finally:
        pool.close()
        store.close()


def _expected(mech, k):
    if mech.operation == "increment":
        return 2 * k
    return sorted(worker_tag(w) + i for w in range(2) for i in range(k))


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
@pytest.mark.parametrize("mech", SAFE, ids=lambda m: f"{m.label}-{m.operation}")
def test_exact_counts_at_two_processes(mech, start_method, no_leaks):
    assert _round(mech, start_method, 300) == _expected(mech, 300)


def test_workers_get_an_address_and_a_key_not_proxies(no_leaks):
    store = mechanisms.get("manager-tcp-value", "lock", "increment").store(
        multiprocessing.get_context("fork"), StoreSpec(1, capacity=1, run_token="tcp"))
    try:
        (host, port), authkey, names = store.handles()
        assert host == "127.0.0.1"
        assert isinstance(port, int)
        assert isinstance(authkey, bytes)
        assert len(authkey) == 32
        assert all(isinstance(n, str) for n in names)
        # A fresh client with address and key finds the same object by name.
        store.value.value = 42
        client = connect((host, port), authkey)
        assert client.sharebench_value(names[0]).value == 42
    finally:
        store.close()


def test_a_client_with_the_wrong_authkey_is_refused(no_leaks):
    store = mechanisms.get("manager-tcp-list", "atomic", "append").store(
        multiprocessing.get_context("fork"), StoreSpec(1, capacity=1, run_token="tcp"))
    try:
        address, authkey, _ = store.handles()
        with pytest.raises(multiprocessing.AuthenticationError):
            connect(address, b"not the key" + authkey[11:])
        store.items.append(1)  # the server is unharmed
        assert store.items[:] == [1]
    finally:
        store.close()


def test_the_racy_variant_completes():
    rec = run_benchmark(mechanisms.get("manager-tcp-value", "none", "increment"), 2, "fork",
                        FAST)
    assert rec.status.is_ok
    assert rec.issued_ops == 3 * rec.ops_per_round


@pytest.fixture
def user_server():
    """A server as a user would run it for --manager-address (its own process)."""
    port = free_port()
    key = os.urandom(32).hex()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharebench", "manager", f"127.0.0.1:{port}"],
        env={**os.environ, "SHAREBENCH_MANAGER_AUTHKEY": key},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "serving at" in line, line + proc.stdout.read()
        yield f"127.0.0.1:{port}", key
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_a_user_run_server_is_used_left_running_and_clean(user_server):
    address, key = user_server
    mech = mechanisms.get("manager-tcp-value", "lock", "increment")
    resources = {"manager_address": address, "manager_authkey": key}
    assert _round(mech, "fork", 300, resources) == 600
    host, port = address.split(":")
    client = connect((host, int(port)), bytes.fromhex(key))
    objects = client.sharebench_objects()
    assert objects.keys() == []  # our objects were deleted; the server still answers


@pytest.mark.parametrize(
    ("resources", "reason"),
    [
        ({}, "needs the server's authkey in SHAREBENCH_MANAGER_AUTHKEY"),
        ({"manager_authkey": "00" * 32}, "refused our authkey"),
    ],
)
def test_a_user_server_without_the_right_key_is_skipped(user_server, resources, reason):
    address, _ = user_server
    rec = run_benchmark(mechanisms.get("manager-tcp-list", "atomic", "append"), 1, "fork",
                        HarnessConfig(round_time=0.02, rounds=1, warmup_rounds=0,
                                      resources={"manager_address": address, **resources}))
    assert str(rec.status).startswith("skipped:")
    assert reason in str(rec.status)
