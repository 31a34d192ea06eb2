"""91: ark-cached restarts from its index snapshots: real redis-server,
real ark-cached, over RESP (ARK.STORE / ARK.LOOKUP, as mod_ark sends
them). What was stored before a restart is served after it, from the
snapshot; what was deleted or expired while the daemon was down is never
served."""
import glob
import os
import time

from ark_harness import redis_command

NS = "restart-ns"
N = 120          # above approx_threshold below: an HNSW graph, as at scale


def question(i):
    topics = ["rotate the TLS certificate of", "restart the worker pool of",
              "compress the backups of", "trace slow queries in"]
    return "How do I %s service %d in region %d?" % (topics[i % 4],
                                                    1000 + i, i % 13)


def near(i):
    return "Quick question: %s Thanks" % question(i)


def store(cached, i, ttl=3600):
    return int(redis_command(cached.port, "ARK.STORE", NS, question(i),
                             "answer %d" % i, "TTL", str(ttl)))


def lookup(cached, text):
    """The payload served for text, or None."""
    r = redis_command(cached.port, "ARK.LOOKUP", NS, text)
    return r[0] if r else None


def snap_args(d, interval=1):
    return ["--snapshot_dir", d, "--snapshot_interval_s", str(interval),
            "--snapshot_min_vectors", "10", "--approx_threshold", "32"]


def wait_info(cached, key, pred, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cached.info().get(key)
        if v is not None and pred(v):
            return v
        time.sleep(0.05)
    raise AssertionError("%s never satisfied: %r" % (key,
                                                     cached.info().get(key)))


def test_91_01_restart_serves_snapshot_never_ghosts(redis_server,
                                                    make_cached, tmp_path):
    snap = str(tmp_path / "snap")
    cached = make_cached(redis_server, args=snap_args(snap))
    ids = [store(cached, i) for i in range(N)]
    short = store(cached, N, ttl=2)           # expires while we are down
    assert lookup(cached, near(N)) == "answer %d" % N
    # the periodic save (every second) writes the snapshot, HNSW by then
    wait_info(cached, "approx_namespaces", lambda v: v == "1")
    wait_info(cached, "snapshot_saves", lambda v: int(v) >= 1)
    cached.stop()
    files = glob.glob(os.path.join(snap, "ns-*.vix"))
    assert len(files) == 1
    assert "ACD00239" in open(cached.log).read()

    # While the daemon is down: one entry is forgotten behind its back
    # (its Redis hash deleted), one expires, one is added by another
    # replica.
    assert redis_server.command("DEL", "ark:cache:e:%d" % ids[5]) == 1
    time.sleep(2.2)
    assert redis_server.command("EXISTS", "ark:cache:e:%d" % short) == 0
    other = make_cached(redis_server)
    store(other, N + 1)
    other.stop()

    cached.start()
    info = cached.info()
    assert info["snapshots_loaded"] == "1"
    assert int(info["snapshot_vectors_loaded"]) == N + 1
    # served at once, during the catch-up or after it; never the gone ones
    assert lookup(cached, near(7)) == "answer 7"
    assert lookup(cached, near(5)) is None
    assert lookup(cached, question(5)) is None
    assert lookup(cached, near(N)) is None
    wait_info(cached, "catching_up", lambda v: v == "0")
    assert lookup(cached, near(5)) is None
    assert lookup(cached, near(N)) is None
    assert lookup(cached, near(N + 1)) == "answer %d" % (N + 1)
    served = sum(lookup(cached, near(i)) == "answer %d" % i
                 for i in range(N))
    assert served == N - 1
    info = cached.info()
    assert info["ghosts_removed"] == "2"
    assert int(info["vectors"]) == N - 1 + 1
    log = open(cached.log).read()
    assert "ACD00234" in log and "ACD00238" in log


def test_91_02_damaged_snapshot_is_ignored(redis_server, make_cached,
                                           tmp_path):
    snap = str(tmp_path / "snap")
    cached = make_cached(redis_server, args=snap_args(snap, interval=0))
    for i in range(40):
        store(cached, i)
    time.sleep(1.5)
    assert cached.info()["snapshot_saves"] == "0"   # interval 0: none yet
    cached.stop()                                   # saved at shutdown
    (path,) = glob.glob(os.path.join(snap, "ns-*.vix"))
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    cached.start()
    info = cached.info()
    assert info["snapshots_loaded"] == "0"
    assert info["entries"] == "40"      # rebuilt from Redis instead
    assert lookup(cached, near(3)) == "answer 3"
    log = open(cached.log).read()
    assert "ACD00232" in log and "snapshot ignored" in log


def test_91_03_snapshot_dir_needs_redis(make_cached, tmp_path):
    cached = make_cached(None, args=["--snapshot_dir", str(tmp_path / "s")],
                         start=False)
    try:
        cached.start()
        started = True
    except RuntimeError as e:
        started = False
        assert "snapshot_dir" in str(e) and "Redis" in str(e)
    assert not started
