"""Capture building blocks without a server: conventions, filtering, model files."""
from __future__ import annotations

import hashlib
import http.server
import math
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import ROOT, shared_file
from engine.capture import models
from engine.capture.smoothing import OneEuro, OneEuroParams
from engine.rig import ARKIT_INDEX
from engine.rig.eyes import EYE_PITCH_FULL, EYE_YAW_FULL, eye_angles
from engine.rig.head import NECK_SHARE
from engine.rig.rotation import (euler_from_quat, matrix_from_quat, quat_from_euler, quat_from_matrix, quat_mul, quat_pow,
                                 to_unity_position, to_unity_quat, to_unreal_position, to_unreal_quat)


def rot_y(deg):
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


def test_mediapipe_matrix_to_canonical_head_turn():
    """MediaPipe's face model faces the camera (+Z) with the subject's left at +X: a head that turns
    20 deg to the subject's left rotates its forward axis toward +X, which must read as +yaw."""
    m = np.eye(4)
    m[:3, :3] = rot_y(20)
    q = quat_from_matrix(m[:3, :3])
    yaw, pitch, roll = np.degrees(euler_from_quat(q))
    assert yaw == pytest.approx(20, abs=1e-6) and abs(pitch) < 1e-6 and abs(roll) < 1e-6
    assert (matrix_from_quat(q) @ [0, 0, 1])[0] > 0.3  # the nose points to the subject's left (+X)
    # Neck and head shares compose to the full measured rotation.
    total = quat_mul(quat_pow(q, NECK_SHARE), quat_pow(q, 1 - NECK_SHARE))
    assert np.allclose(total, q, atol=1e-9)


@pytest.mark.parametrize("yaw, pitch, roll", [(25, 0, 0), (0, 15, 0), (0, 0, 10), (-30, 10, -5)])
def test_quaternion_roundtrips(yaw, pitch, roll):
    q = quat_from_euler(*np.radians([yaw, pitch, roll]))
    assert np.allclose(np.degrees(euler_from_quat(q)), [yaw, pitch, roll], atol=1e-9)
    assert np.allclose(quat_from_matrix(matrix_from_quat(q)), q * np.sign(q[3]), atol=1e-12)


def _unity_matrix(q):
    """Rotation matrix in Unity's own axes from the converted quaternion (same formula: a quaternion is
    a quaternion; handedness only changes how the axes are drawn)."""
    return matrix_from_quat(q)


def test_unity_sign_of_a_left_turn():
    """Unity: left-handed, Y up, a character faces +Z and its left is -X. A head turning to the subject's
    left must swing the face's forward (+Z) toward -X, i.e. a negative rotation about +Y."""
    q = to_unity_quat(quat_from_euler(math.radians(30)))
    fwd = _unity_matrix(q) @ [0, 0, 1]
    assert fwd[0] < -0.4 and q[1] < 0
    # Chin down (+pitch canonical): in Unity (left-handed) a positive X rotation also tips forward down.
    fwd = _unity_matrix(to_unity_quat(quat_from_euler(0, math.radians(20)))) @ [0, 0, 1]
    assert fwd[1] < -0.3
    assert np.allclose(to_unity_position([0.1, 0.2, 0.3]), [-0.1, 0.2, 0.3])


def test_unreal_sign_of_a_left_turn():
    """Unreal: left-handed, Z up, cm, a character faces +X and its left is -Y. A turn to the subject's left
    swings forward (+X) toward -Y: a negative yaw about +Z."""
    q = to_unreal_quat(quat_from_euler(math.radians(30)))
    fwd = matrix_from_quat(q) @ [1, 0, 0]
    assert fwd[1] < -0.4 and q[2] < 0
    fwd = matrix_from_quat(to_unreal_quat(quat_from_euler(0, math.radians(20)))) @ [1, 0, 0]
    assert fwd[2] < -0.3  # chin down: forward tips toward -Z
    assert np.allclose(to_unreal_position([0.1, 0.2, 0.3]), [30, -10, 20])


def test_eye_angles_from_look_weights():
    w = np.zeros(52)
    w[ARKIT_INDEX["eyeLookOutLeft"]] = 1.0  # left eye looks to the subject's left: +yaw
    w[ARKIT_INDEX["eyeLookInRight"]] = 1.0  # right eye looks inward = also to the subject's left
    w[ARKIT_INDEX["eyeLookDownLeft"]] = 0.5
    a = eye_angles(w)
    assert a[0, 0] == pytest.approx(EYE_YAW_FULL) and a[1, 0] == pytest.approx(EYE_YAW_FULL)
    assert a[0, 1] == pytest.approx(0.5 * EYE_PITCH_FULL) and a[1, 1] == 0


def test_one_euro_steady_and_fast():
    """Still input: jitter is cut. A fast step: 75 % reached within 100 ms (lip sync stays crisp)."""
    rng = np.random.default_rng(0)
    f = OneEuro(OneEuroParams(min_cutoff=3.0, beta=1.0))
    t = np.arange(0, 2, 1 / 30)
    noisy = 0.3 + rng.normal(0, 0.02, t.size)
    out = np.array([f(np.array([x]), ti)[0] for x, ti in zip(noisy, t)])
    assert out[10:].std() < noisy[10:].std() / 1.4  # measured 1.6x at the weights defaults, 30 fps
    f.reset()
    step = np.where(t < 1, 0.0, 0.8)
    out = np.array([f(np.array([x]), ti)[0] for x, ti in zip(step, t)])
    k = np.searchsorted(t, 1.1)
    assert out[k] > 0.6 and out[-1] == pytest.approx(0.8, abs=0.01)


class _Serve(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def test_models_fetch_verify_list(tmp_path):
    """`avatar-bridge models fetch` from an HTTP mirror: the pinned checksum is enforced, a bad download
    leaves nothing behind, verify/list report what is where."""
    src = shared_file("models/face_landmarker.task")
    assert hashlib.sha256(src.read_bytes()).hexdigest() == models.FACE_LANDMARKER.sha256
    www = tmp_path / "www"
    www.mkdir()
    (www / "good.task").write_bytes(src.read_bytes())
    (www / "bad.task").write_bytes(src.read_bytes()[:-10] + b"0123456789")
    handler = lambda *a, **kw: _Serve(*a, directory=str(www), **kw)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    env = {"AVATAR_BRIDGE_MODELS_DIR": str(tmp_path / "models"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "bridge_server.cli", "models", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)
    try:
        r = cli("verify")
        assert r.returncode == 1 and "missing; run `avatar-bridge models fetch face_landmarker`" in r.stdout
        r = cli("fetch", "--url", f"{base}/bad.task")
        assert r.returncode == 1 and "does not match the pinned file" in r.stderr and "sha256" in r.stderr
        assert not any((tmp_path / "models").iterdir())  # no partial or bad file left
        r = cli("fetch", "--url", f"{base}/good.task")
        assert r.returncode == 0 and "ok" in r.stdout, r.stderr
        r = cli("verify")
        assert r.returncode == 0 and "ok" in r.stdout and str(tmp_path / "models") in r.stdout
        (tmp_path / "models" / "face_landmarker.task").write_bytes(b"broken")
        r = cli("verify")
        assert r.returncode == 1 and "BAD" in r.stdout and "truncated" in r.stdout
        r = cli("fetch", "nosuchmodel")
        assert r.returncode == 2 and "unknown model nosuchmodel" in r.stderr
    finally:
        httpd.shutdown()
