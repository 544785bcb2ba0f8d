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
from engine.rig import NUM_BLENDSHAPES, NUM_BONES
from engine.worker import protocol as p
from engine.worker.main import Worker
from engine.worker.specs import WorkerConfig

CHUNK = (np.sin(np.arange(640) * 0.05) * 8000).astype("<i2").tobytes()  # 40 ms of 16 kHz PCM16
WINDOW_S = 0.5


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
    # A window far longer than the 30 ms over which the test staggers its chunks, so a loaded machine cannot
    # push the last chunk out of it; the cases where nothing may wait are checked against the same window.
    w = Worker(router.getsockopt_string(zmq.LAST_ENDPOINT), b"w-test", WorkerConfig(batch_window_ms=WINDOW_S * 1000.0))
    w.link.interval_s = 60.0  # no heartbeat during a test: a beat re-measures the chunk rate, which each test sets
    sizes: list[int] = []
    finishes: list[int] = []
    for eng in w.engines.values():  # record the size of every engine call
        orig, orig_finish = eng.push_many, eng.finish_many

        def spy(streams, audio, orig=orig):
            sizes.append(len(streams))
            return orig(streams, audio)

        def spy_finish(streams, orig=orig_finish):
            finishes.append(len(streams))
            return orig(streams)
        eng.push_many, eng.finish_many = spy, spy_finish
    w.finish_sizes = finishes
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


def _open(router, ident, engine: str, n: int) -> None:
    router.send_multipart([ident, *(p.pack(p.OPEN, sid, 0, p.dumps(_cfg(engine))) for sid in range(1, n + 1))])
    assert [r[0] for r in _replies(router, n)] == [p.OPENED] * n


def test_busy_batching_engine_shares_one_call(worker_pair):
    w, router, ident, sizes = worker_pair
    n = 6
    # What the heartbeat measures, set before the streams open: a worker decides whether a batch may wait
    # when it starts draining its socket, which may be before the OPENED replies reach us.
    w._chunk_rate = 1000.0
    _open(router, ident, "learned-v1", n)
    sizes.clear()
    for sid in range(1, n + 1):  # 6 chunks 5 ms apart: well within the window
        router.send_multipart([ident, p.pack(p.AUDIO, sid, 1, CHUNK)])
        time.sleep(0.005)
    replies = _replies(router, n)
    assert sorted(r[1] for r in replies) == list(range(1, n + 1))
    assert all(r[0] == p.FRAMES for r in replies)
    assert sizes == [n], sizes


def test_streams_that_end_together_finish_in_one_call(worker_pair):
    """ENDs of many live streams in one drain: one finish_many for all (not one engine pass per stream, which
    stalled every other stream of the worker), each stream's last block before its DONE, and the same frames
    as a stream that ends alone."""
    w, router, ident, sizes = worker_pair
    n = 8
    _open(router, ident, "learned-v2", n + 1)
    for sid in range(1, n + 2):
        router.send_multipart([ident, p.pack(p.AUDIO, sid, 1, CHUNK * 5)])
    assert [r[0] for r in _replies(router, n + 1)] == [p.FRAMES] * (n + 1)
    w.finish_sizes.clear()
    router.send_multipart([ident, *(p.pack(p.END, sid, 2) for sid in range(1, n + 1))])
    got = _replies(router, 2 * n)
    assert w.finish_sizes == [n], w.finish_sizes
    for sid in range(1, n + 1):
        mine = [r for r in got if r[1] == sid]
        assert [r[0] for r in mine] == [p.FRAMES, p.DONE], mine
    router.send_multipart([ident, p.pack(p.END, n + 1, 2)])  # the same audio, ending alone
    alone = _replies(router, 2)
    assert w.finish_sizes == [n, 1]
    assert [r[0] for r in alone] == [p.FRAMES, p.DONE]
    last = {r[1]: p.unpack_frames(r[3], NUM_BLENDSHAPES, NUM_BONES) for r in got + alone if r[0] == p.FRAMES}
    assert len(last[1]) > 0 and last[1].last
    for sid in range(2, n + 2):
        np.testing.assert_allclose(last[sid].weights, last[1].weights, atol=1e-5, err_msg=f"stream {sid}")
    assert not any(sid in w.sessions for sid in range(1, n + 2))


def test_streams_opening_among_audio_do_not_split_the_batch(worker_pair):
    """Many streams starting together: their OPENs arrive between the first streams' chunks. Each OPEN is
    answered at once, and the chunks around them still go through the engine in one call (an OPEN used to end
    the batch, leaving passes of one stream at the engine's fixed cost each, when the worker is busiest)."""
    w, router, ident, sizes = worker_pair
    n = 4
    _open(router, ident, "learned-v2", n)
    sizes.clear()
    msgs = []
    for sid in range(1, n + 1):  # audio of stream k, then the OPEN of a new stream n + k, in one drain
        msgs += [p.pack(p.AUDIO, sid, 1, CHUNK), p.pack(p.OPEN, n + sid, 0, p.dumps(_cfg("learned-v2")))]
    router.send_multipart([ident, *msgs])
    got = _replies(router, 2 * n)
    assert sorted(r[1] for r in got if r[0] == p.OPENED) == list(range(n + 1, 2 * n + 1))
    assert sorted(r[1] for r in got if r[0] == p.FRAMES) == list(range(1, n + 1))
    assert sizes == [n], sizes
    # ...and each new stream works: its first chunk is answered
    router.send_multipart([ident, *(p.pack(p.AUDIO, sid, 1, CHUNK) for sid in range(n + 1, 2 * n + 1))])
    assert sorted(r[1] for r in _replies(router, n) if r[0] == p.FRAMES) == list(range(n + 1, 2 * n + 1))


@pytest.mark.parametrize("engine, rate", [
    ("learned-v1", 1.0),     # few chunks per second: waiting would gather nothing
    ("dsp-v1", 1000.0),      # an engine whose push_many gains nothing: never waits, however busy
])
def test_nothing_waits_when_batching_cannot_pay(worker_pair, engine, rate):
    w, router, ident, sizes = worker_pair
    n = 4
    w._chunk_rate = rate
    _open(router, ident, engine, n)
    sizes.clear()
    for sid in range(1, n + 1):  # one chunk at a time: each is answered without waiting for the window
        t0 = time.monotonic()
        router.send_multipart([ident, p.pack(p.AUDIO, sid, 1, CHUNK)])
        (reply,) = _replies(router, 1)
        waited = time.monotonic() - t0
        assert reply[:2] == (p.FRAMES, sid)
        assert waited < 0.8 * WINDOW_S, f"chunk {sid} waited {waited:.3f} s for a batch that could not form"
    assert sizes == [1] * n, sizes


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
