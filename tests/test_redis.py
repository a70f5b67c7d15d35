"""Redis benchmarks against a real redis-server (started here, never mocked): exact counts for
the atomic variants, measured loss for GET/SET, no keys left, no server left, and the reason
recorded when there is no server."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sharebench import lifecycle, mechanisms
from sharebench.harness import HarnessConfig, run_benchmark
from sharebench.mechanisms.base import StoreSpec
from sharebench.mechanisms.redis import BATCH, key_prefix
from sharebench.pools import ProcessPool
from sharebench.results import read_summary
from sharebench.servers import RedisServer, Services, check_redis_url, free_port, redact
from sharebench.verify import worker_tag

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="redis-server is not installed (apt-get install redis-server); CI installs it",
)

FAST = {"round_time": 0.02, "rounds": 3, "warmup_rounds": 1}
ATOMIC = [m for m in mechanisms.all_mechanisms() if m.family == "redis" and m.sync == "atomic"
          and m.operation in ("increment", "append")]
KEYED = [m for m in mechanisms.all_mechanisms() if m.family == "redis"
         and m.operation in ("dict-increment", "lookup", "ping-pong")]

BENCH = """
import pytest

@pytest.mark.sharebench("increment")
def test_increment(sharebench):
    sharebench.run()
"""


@pytest.fixture(scope="module")
def server():
    """A redis-server for this module, started and stopped by the suite's own code."""
    with RedisServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    import redis

    c = redis.Redis.from_url(server.url)
    yield c
    c.close()


@pytest.fixture
def no_leaks_but_the_server(server):
    """conftest's promise for one test, the module's server aside."""
    from conftest import shm_entries, suite_children

    mine = f"{server.pid} "
    before = shm_entries()
    yield
    assert shm_entries() - before == set()
    assert [c for c in suite_children() if not c.startswith(mine)] == []


def our_keys(client, token):
    return list(client.scan_iter(match=key_prefix(token) + "*"))


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
@pytest.mark.parametrize("mech", ATOMIC, ids=lambda m: f"{m.label}-{m.operation}")
def test_atomic_variants_end_with_exact_counts(mech, start_method, server, client,
                                               no_leaks_but_the_server):
    k = 3 * BATCH + 7  # a partial last batch for the pipelined variants
    token = f"exact-{start_method}"
    ctx = multiprocessing.get_context(start_method)
    spec = StoreSpec(2, capacity=2 * k, run_token=token, resources={"redis_url": server.url})
    store = mech.store(ctx, spec)
    pool = ProcessPool(ctx, mech, store.handles(), 2)
    try:
        pool.start()
        pool.run_round(k)
        assert our_keys(client, token)  # the store works in its own namespace
        if mech.operation == "increment":
            assert store.read_counter() == 2 * k
        else:
            expected = sorted(worker_tag(w) + i for w in range(2) for i in range(k))
            assert sorted(store.read_items()) == expected
    finally:
        pool.close()
        store.close()
    assert our_keys(client, token) == []


def test_get_set_completes_and_reports_its_loss(server, client):
    cfg = HarnessConfig(**FAST, run_token="racy", resources={"redis_url": server.url})
    rec = run_benchmark(mechanisms.get("redis", "none", "increment"), 2, "fork", cfg)
    assert rec.status.is_ok
    assert rec.issued_ops == 3 * rec.ops_per_round
    assert 0 < rec.lost_updates < rec.issued_ops  # two round trips per update: a wide window
    assert our_keys(client, "racy") == []


def test_through_the_harness_every_round_is_exact(server, client):
    cfg = HarnessConfig(**FAST, run_token="harness", resources={"redis_url": server.url})
    rec = run_benchmark(mechanisms.get(f"redis-pipeline-{BATCH}", "atomic", "append"), 2,
                        "fork", cfg)
    assert rec.status.is_ok
    assert (rec.lost_updates, rec.duplicates) == (0, 0)
    assert our_keys(client, "harness") == []


@pytest.mark.parametrize(
    ("resources", "reason"),
    [
        ({}, "skipped: no Redis server given (--redis-url or SHAREBENCH_REDIS_URL)"),
        ({"redis_unavailable": "no redis-server on PATH (...)"},
         "skipped: no redis-server on PATH (...)"),
    ],
)
def test_without_a_server_the_row_is_skipped_with_the_reason(resources, reason):
    cfg = HarnessConfig(**FAST, resources=resources)
    rec = run_benchmark(mechanisms.get("redis", "atomic", "increment"), 1, "fork", cfg)
    assert str(rec.status) == reason


def test_an_unreachable_server_is_skipped_and_the_password_not_shown():
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    cfg = HarnessConfig(**FAST, resources={"redis_url": url})
    rec = run_benchmark(mechanisms.get("redis", "atomic", "increment"), 1, "fork", cfg)
    assert str(rec.status).startswith("skipped: Redis at redis://:***@127.0.0.1:")
    assert "does not answer" in str(rec.status)
    assert "secret" not in str(rec.status)


def test_our_own_server_dying_is_an_error_not_a_skip():
    """A server this run started answered once; if it stops answering, the benchmark failed
    (report --check must see it), unlike a server that was never there."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    cfg = HarnessConfig(**FAST, resources={"redis_url": url, "redis_owned": "1"})
    rec = run_benchmark(mechanisms.get("redis", "atomic", "increment"), 1, "fork", cfg)
    assert str(rec.status).startswith("error: RuntimeError: the redis-server this run started")
    assert "stopped answering" in str(rec.status)


def test_the_server_runs_without_persistence_and_is_gone_after_stop():
    import psutil

    srv = RedisServer()
    srv.start()
    proc = psutil.Process(srv.pid)
    data_dir = srv._dir
    try:
        # A run directory of this process: `sharebench clean` removes it if the run is killed.
        assert Path(data_dir) in [d.path for d in lifecycle.suite_dirs() if d.pid == os.getpid()]
        import redis

        with redis.Redis.from_url(srv.url) as c:
            assert c.config_get("save") == {"save": ""}
            assert c.config_get("appendonly") == {"appendonly": "no"}
            assert c.config_get("bind")["bind"] == "127.0.0.1"
    finally:
        srv.stop()
    assert not proc.is_running()
    assert not os.path.exists(data_dir)
    srv.stop()  # idempotent


def test_services_start_redis_only_for_benchmarks_that_need_it():
    base = HarnessConfig(**FAST)
    with Services() as services:
        assert services.configure(mechanisms.get("value", "lock", "increment"), base) is base
        assert services.redis_server is None
        cfg = services.configure(mechanisms.get("redis", "atomic", "increment"), base)
        server = services.redis_server
        assert server is not None
        assert cfg.resources["redis_url"] == server.url
        again = services.configure(mechanisms.get("redis", "none", "increment"), cfg)
        assert again is cfg  # one server per run
        pid = server.pid
    assert services.redis_server is None
    import psutil

    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_urls_and_options():
    assert redact("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert redact("redis://h:1/0") == "redis://h:1/0"
    with pytest.raises(ValueError, match="is not a Redis URL"):
        check_redis_url("http://h:6379")
    env = {"SHAREBENCH_REDIS_URL": "redis://other:6379/1"}
    assert Services.from_options(None, None, env).redis_url == "redis://other:6379/1"
    assert Services.from_options("redis://x:1/0", None, env).redis_url == "redis://x:1/0"


# -- the plugin, in a subprocess: lazily started server, gone afterwards however the run ends


def _bench_cmd(tmp_path, *args):
    (tmp_path / "test_bench.py").write_text(BENCH)
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
            str(tmp_path / "test_bench.py"), f"--sharebench-csv={tmp_path}/run.csv", *args]


def _watch(proc, until=None, timeout=120.0):
    """Poll the run's descendants; return the redis-server processes seen (psutil objects)."""
    import psutil

    seen = {}
    deadline = time.monotonic() + timeout
    parent = psutil.Process(proc.pid)
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            for child in parent.children(recursive=True):
                try:
                    if child.name() == "redis-server":
                        seen.setdefault(child.pid, child)
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            break
        if until is not None and until(seen):
            break
        time.sleep(0.05)
    return list(seen.values())


def _gone(procs, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(p.is_running() and p.status() != "zombie" for p in procs):
            return True
        time.sleep(0.05)
    return False


def test_a_bench_run_starts_redis_lazily_and_stops_it(tmp_path):
    cmd = _bench_cmd(tmp_path, "-k", "redis-atomic or redis-none or value-lock",
                     "--sharebench-processes=1,2", "--sharebench-rounds=3",
                     "--sharebench-warmup=0", "--sharebench-round-time=0.02")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREBENCH_")}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    seen = _watch(proc)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, out
    assert len(seen) == 1, out  # one server for the whole run
    assert _gone(seen)
    df = read_summary(tmp_path / "run.csv").set_index("benchmark")
    assert (df["status"] == "ok").all()
    assert df.loc["redis-atomic-increment-p2-fork", "lost_updates"] == 0
    assert df.loc["redis-none-increment-p2-fork", "lost_updates"] > 0


def test_a_run_without_redis_benchmarks_never_starts_redis(tmp_path):
    cmd = _bench_cmd(tmp_path, "-k", "value-lock", "--sharebench-processes=1",
                     "--sharebench-rounds=1", "--sharebench-warmup=0",
                     "--sharebench-round-time=0.01")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    seen = _watch(proc)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out
    assert seen == []


def test_against_a_given_url_only_our_keys_are_touched(tmp_path, server, client):
    client.set("someone-elses-key", "keep me")
    cmd = _bench_cmd(tmp_path, "-k", "redis-atomic", f"--redis-url={server.url}",
                     "--sharebench-processes=2", "--sharebench-rounds=2",
                     "--sharebench-warmup=0", "--sharebench-round-time=0.02")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    seen = _watch(proc)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, out
    assert seen == []  # the given server is used; none is started
    assert client.get("someone-elses-key") == b"keep me"
    assert list(client.scan_iter(match="sharebench:*")) == []
    client.delete("someone-elses-key")
    df = read_summary(tmp_path / "run.csv")
    assert (df["status"] == "ok").all()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_the_server_is_gone_after_an_interrupted_run(tmp_path, sig):
    # Long rounds: the signal arrives while a redis benchmark runs.
    cmd = _bench_cmd(tmp_path, "-k", "redis-atomic", "--sharebench-processes=2",
                     "--sharebench-rounds=200", "--sharebench-round-time=0.2")
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        seen = _watch(proc, until=bool, timeout=60)
        assert seen, "redis-server never started"
        time.sleep(1.0)  # well into the benchmark
        os.killpg(proc.pid, sig)  # like Ctrl-C at a terminal: the whole foreground group
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert _gone(seen), f"redis-server {[p.pid for p in seen]} outlived the run ({sig.name})"
    if sig != signal.SIGKILL:
        df = read_summary(tmp_path / "run.csv")
        assert (df["run_status"] == "interrupted").all()


def test_with_no_redis_server_on_path_the_rows_say_why(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHAREBENCH_")}
    env["PATH"] = str(empty)
    cmd = _bench_cmd(tmp_path, "-k", "redis", "--sharebench-processes=1",
                     "--sharebench-rounds=1", "--sharebench-warmup=0")
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    df = read_summary(tmp_path / "run.csv")
    assert len(df) == 3  # redis/atomic, redis/none and redis-pipeline-100 increments, at p1
    assert (df["status"].str.startswith("skipped: no redis-server on PATH")).all(), df["status"]
    assert "3 skipped" in result.stdout


@pytest.mark.parametrize("mech", KEYED, ids=lambda m: f"{m.label}-{m.operation}")
def test_keyed_and_round_trip_variants_are_exact_and_clean_up(mech, server, client,
                                                              no_leaks_but_the_server):
    """HINCRBY counts every key exactly, GET reads the right values, LPUSH/BRPOP echoes; no
    key of the run is left on the server."""
    config = HarnessConfig(round_time=0.02, rounds=2, warmup_rounds=0,
                           run_token="keyed", resources={"redis_url": server.url})
    processes = 1 if mech.operation == "ping-pong" else 2
    rec = run_benchmark(mech, processes, "fork", config, keys=300,
                        payload_bytes=256 if mech.operation == "ping-pong" else 0)
    assert rec.status.is_ok, rec.status
    assert rec.lost_updates == 0
    assert our_keys(client, "keyed") == []
