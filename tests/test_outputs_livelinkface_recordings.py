"""Live Link Face output against recordings made by the real Live Link Face app.

The fixtures (tests/fixtures/livelinkface/, provenance in its README) are rows of two range-of-motion CSV
takes and ten UDP packets recorded from the app. They pin what our encoder cannot tell us about itself:
the angle unit, which side the eye curves belong to, the device id's form and the timecode. Our packets are
produced by the real output class and read back from a UDP socket on loopback.
"""
from __future__ import annotations

import asyncio
import binascii
import csv
import math
import pathlib
import re

import numpy as np

from engine.rig import ARKIT_NAMES, BONE_NAMES
from engine.rig.eyes import eye_quats
from test_livelink_face import UUID_RE, Receiver, decode

FIX = pathlib.Path(__file__).parent / "fixtures" / "livelinkface"
APP_NAMES = [n[0].upper() + n[1:] for n in ARKIT_NAMES]  # the app's column / curve names


def recorded_rows() -> dict[str, np.ndarray]:
    cols: dict[str, list[float]] = {}
    for name in ("alex_rom_3_rows.csv", "alex_rom_4_rows.csv"):
        with open(FIX / name, newline="") as fh:
            for row in csv.DictReader(fh):
                for k, v in row.items():
                    if k not in ("SourceLine", "Timecode"):
                        cols.setdefault(k, []).append(float(v))
    return {k: np.array(v) for k, v in cols.items()}


def recorded_packets() -> list[dict]:
    lines = [ln for ln in (FIX / "llv_dao_packets.hex").read_text().splitlines() if ln and not ln.startswith("#")]
    return [decode(binascii.unhexlify(ln)) for ln in lines]


def slope(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.polyfit(x, y, 1)[0])


def our_packets(weights: np.ndarray, rotations: np.ndarray, options: dict | None = None, fps: int = 60) -> list[dict]:
    """Frames through LiveLinkFaceOutput (pace=0) to a real UDP socket; the decoded packets."""
    from bridge_server.outputs import OutputTarget, StreamInfo
    from bridge_server.outputs.livelink_face import LiveLinkFaceOutput
    from engine.worker.protocol import FrameBlock

    rx = Receiver()
    n = len(weights)

    async def run():
        out = LiveLinkFaceOutput(OutputTarget("livelinkface", "127.0.0.1", rx.port, {"pace": "0", **(options or {})}),
                                 StreamInfo("unit", fps, list(ARKIT_NAMES), list(BONE_NAMES)))
        idx = np.array([k * 48000 // fps for k in range(n)], np.uint64)
        out.send(FrameBlock(0, idx, weights.astype(np.float32), rotations.astype(np.float32), None, n / fps,
                            48000, True, []), 48000)
        out.close()
        await asyncio.sleep(0.05)

    asyncio.run(run())
    return [decode(p) for _, p in rx.wait_for(n, timeout=5)]


def gaze_frames(yaw: np.ndarray, pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conjugate gaze (radians, +yaw = to the subject's left, +pitch = down) as every engine writes it:
    eyeLook* weights, and eye rotations from the engine's one weights->rotation table."""
    from engine.rig.eyes import EYE_PITCH_FULL, EYE_YAW_FULL

    w = np.zeros((len(yaw), 52))
    a = ARKIT_NAMES.index
    gy, gp = np.clip(yaw / EYE_YAW_FULL, -1, 1), np.clip(pitch / EYE_PITCH_FULL, -1, 1)
    w[:, a("eyeLookOutLeft")] = w[:, a("eyeLookInRight")] = np.maximum(gy, 0)
    w[:, a("eyeLookInLeft")] = w[:, a("eyeLookOutRight")] = np.maximum(-gy, 0)
    for side in ("Left", "Right"):
        w[:, a("eyeLookDown" + side)] = np.maximum(gp, 0)
        w[:, a("eyeLookUp" + side)] = np.maximum(-gp, 0)
    rot = np.tile([0, 0, 0, 1.0], (len(yaw), 4))
    rot[:, 8:16] = eye_quats(w).reshape(-1, 8)
    return w, rot


def curves(packets: list[dict], name: str) -> np.ndarray:
    names = APP_NAMES + ["HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                         "RightEyeYaw", "RightEyePitch", "RightEyeRoll"]
    return np.array([p["curves"][names.index(name)] for p in packets])


def test_eye_angles_are_radians_with_the_recordings_sign_and_scale():
    """Recorded: eye yaw per unit of (eyeLookOut - eyeLookIn) is -0.59..-0.61 rad, pitch per unit of
    (eyeLookUp - eyeLookDown) -0.54..-0.56. Ours must have the same signs and a scale within 30 %
    (our table: 30 and 25 degrees per unit); degrees/180 would be about pi times too small."""
    rec = recorded_rows()
    real = {side: (slope(rec[f"EyeLookOut{side}"] - rec[f"EyeLookIn{side}"], rec[f"{side}EyeYaw"]),
                   slope(rec[f"EyeLookUp{side}"] - rec[f"EyeLookDown{side}"], rec[f"{side}EyePitch"]))
            for side in ("Left", "Right")}
    assert -0.65 < real["Left"][0] < -0.55 and 0.55 < real["Right"][0] < 0.65, real
    assert -0.6 < real["Left"][1] < -0.5 and -0.6 < real["Right"][1] < -0.5, real
    t = np.linspace(0, 2 * math.pi, 120)
    pk = our_packets(*gaze_frames(0.45 * np.sin(t), 0.3 * np.sin(2 * t)))
    for side in ("Left", "Right"):
        yaw = slope(curves(pk, f"EyeLookOut{side}") - curves(pk, f"EyeLookIn{side}"), curves(pk, f"{side}EyeYaw"))
        pitch = slope(curves(pk, f"EyeLookUp{side}") - curves(pk, f"EyeLookDown{side}"), curves(pk, f"{side}EyePitch"))
        assert 0.7 < yaw / real[side][0] < 1.3, f"{side} eye yaw per eyeLook unit {yaw:.3f}, recorded {real[side][0]:.3f}"
        assert 0.7 < pitch / real[side][1] < 1.3, f"{side} eye pitch {pitch:.3f}, recorded {real[side][1]:.3f}"


def test_converging_eyes_give_the_recordings_left_minus_right_yaw():
    """Every recorded frame has LeftEyeYaw - RightEyeYaw = -0.04..-0.07 (the eyes converge on the phone).
    Eyes converged by the same amount in our canonical frame must come out with that sign and size."""
    rec = recorded_rows()
    diff = rec["LeftEyeYaw"] - rec["RightEyeYaw"]
    assert np.all((diff > -0.07) & (diff < -0.035)), diff
    packets = [p["curves"] for p in recorded_packets()]
    assert all(-0.07 < c[55] - c[58] < -0.055 for c in packets)
    half = float(-np.mean(diff)) / 2  # each eye turned inward by this much
    rot = np.tile([0, 0, 0, 1.0], (4, 4))
    s, c = math.sin(half / 2), math.cos(half / 2)
    rot[:, 8:12] = [0, -s, 0, c]  # the left eye turns toward the subject's right (inward)
    rot[:, 12:16] = [0, s, 0, c]  # the right eye toward the subject's left (inward)
    ours = our_packets(np.zeros((4, 52)), rot)
    got = curves(ours, "LeftEyeYaw") - curves(ours, "RightEyeYaw")
    np.testing.assert_allclose(got, np.mean(diff), atol=1e-6)


def test_packet_header_has_the_apps_form():
    """Recorded packets: version 6, 61 curves, a frame number that keeps counting with a fractional subframe at
    60/1, angles within a quarter turn. Ours: the same, with a 36-character upper-case UUID device id."""
    rec = recorded_packets()
    assert {(p["version"], p["count"], p["rate"]) for p in rec} == {(6, 61, (60, 1))}
    frames = [p["frame"] for p in rec]
    assert frames[:5] == list(range(frames[0], frames[0] + 5)) and frames[0] > 1_000_000
    assert all(0 < p["subframe"] < 1 for p in rec)
    assert max(abs(float(v)) for p in rec for v in p["curves"][52:]) < math.pi / 2
    ours = our_packets(np.zeros((3, 52)), np.tile([0, 0, 0, 1.0], (3, 4)))
    assert {(p["version"], p["count"], p["rate"]) for p in ours} == {(6, 61, (60, 1))}
    assert all(re.match(UUID_RE, p["device"]) for p in ours)
    assert [p["frame"] + p["subframe"] for p in ours][1] - (ours[0]["frame"] + ours[0]["subframe"]) \
        == __import__("pytest").approx(1.0, abs=1e-3)
