"""The worker's dynamic batching (engine/worker/main.py Worker._collect), driven over a real ZeroMQ socket:
busy streams' chunks wait a few ms to share one engine call; at low rates, or for engines that do not batch,
nothing waits. Each stream's frames are the same either way (test_learned_engine checks push_many)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from bridge_server.config import ServerConfig
from engine.worker import protocol as p
from engine.worker.main import Worker

CHUNK = (np.sin(np.arange(640) * 0.05) * 8000).astype("<i2").tobytes()  # 40 ms of 16 kHz PCM16


def _cfg(engine: str) -> dict:
    return {"encoding": "pcm16", "sample_rate": 16000, "channels": 1, "fps": 30, "engine": engine,
            "style": {"emotion": "neutral", "emotion_strength": 0.5, "intensity": 1.0, "head_motion": 1.0,
                      "seed": 0}}


@pytest.fixture
def worker_pair():
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind("tcp://127.0.0.1:*")
    w = Worker(router.getsockopt_string(zmq.LAST_ENDPOINT), b"w-test", batch_window_s=0.05)
    sizes: list[int] = []
    for eng in w.engines.values():  # record the size of every engine call
        orig = eng.push_many

        def spy(streams, audio, orig=orig):
            sizes.append(len(streams))
            return orig(streams, audio)
        eng.push_many = spy
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    ident, ready = router.recv_multipart()
    assert p.unpack(ready)[0] == p.READY
    yield w, router, ident, sizes
    router.send_multipart([ident, p.pack(p.STOP)])
    t.join(10)
    router.close(0)


def _replies(router, n: int) -> list:
    out = []
    while len(out) < n:
        assert router.poll(10_000), "the worker stopped answering"
        out += [p.unpack(m) for m in router.recv_multipart()[1:]]
    return out


@pytest.mark.parametrize("engine, busy, expect_batched", [
    ("learned-v1", True, True),     # busy worker, batching engine: the staggered chunks share one call
    ("learned-v1", False, False),   # few chunks per second: nothing waits
    ("dsp-v1", True, False),        # an engine whose push_many gains nothing: nothing waits
])
def test_dynamic_batching(worker_pair, engine, busy, expect_batched):
    w, router, ident, sizes = worker_pair
    n = 6
    router.send_multipart([ident, *(p.pack(p.OPEN, sid, 0, p.dumps(_cfg(engine))) for sid in range(1, n + 1))])
    assert [r[0] for r in _replies(router, n)] == [p.OPENED] * n
    w._chunk_rate = 1000.0 if busy else 10.0  # what the heartbeat measures; set here to skip the wait
    sizes.clear()
    t0 = time.monotonic()
    for sid in range(1, n + 1):  # 6 chunks 5 ms apart: within the 50 ms window
        router.send_multipart([ident, p.pack(p.AUDIO, sid, 1, CHUNK)])
        time.sleep(0.005)
    replies = _replies(router, n)
    assert sorted(r[1] for r in replies) == list(range(1, n + 1))
    assert all(r[0] == p.FRAMES for r in replies)
    if expect_batched:
        assert sizes == [n], sizes
    else:
        assert len(sizes) >= 2 and max(sizes) < n, sizes
    assert time.monotonic() - t0 < 5


def test_batch_window_setting():
    assert ServerConfig.load(None, {}, environ={}).batch_window_ms == 5.0
    assert ServerConfig.load(None, {}, environ={"AVATAR_BRIDGE_BATCH_WINDOW_MS": "0"}).batch_window_ms == 0.0
    with pytest.raises(ValueError, match="batch_window_ms from environment must be within 0..50 ms"):
        ServerConfig.load(None, {}, environ={"AVATAR_BRIDGE_BATCH_WINDOW_MS": "500"})
    with pytest.raises(ValueError, match="batch_window_ms from flags must be within 0..50 ms"):
        ServerConfig.load(None, {"batch_window_ms": -1.0}, environ={})
    with pytest.raises(ValueError, match="setting batch_window_ms from environment must be float"):
        ServerConfig.load(None, {}, environ={"AVATAR_BRIDGE_BATCH_WINDOW_MS": "soon"})


def test_default_workers_follow_cpu_affinity():
    import os
    assert ServerConfig.load(None, {}, environ={}).resolved_workers() == len(os.sched_getaffinity(0))
