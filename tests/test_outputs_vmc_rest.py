"""VMC output with rest= (bridge_server/outputs/vrm_rest.py): a VRM 1.0 avatar whose rest rotations are not
identity gets local rotations that turn its head by the stream's rotation in the body's axes, and every bone
gets the avatar's own local offset. The avatars are minimal .vrm files written here (glTF binary + VRM
humanoid); the check uses rotation matrices, not the module's quaternion code."""
from __future__ import annotations

import asyncio
import json
import math
import struct
import time

import numpy as np
import pytest

from engine.rig import ARKIT_NAMES, BONE_NAMES
from test_livelink_face import matrix
from test_vmc_output import Receiver


def write_vrm(path, version: int, rot_neck, rot_head) -> None:
    nodes = [{"name": "hips", "children": [1], "translation": [0, 1.0, 0]},
             {"name": "neck", "children": [2], "translation": [0, 0.45, 0.02], "rotation": rot_neck},
             {"name": "head", "children": [3, 4], "translation": [0.0, 0.09, 0.015], "rotation": rot_head},
             {"name": "eye.L", "translation": [0.032, 0.07, 0.06]},
             {"name": "eye.R", "translation": [-0.032, 0.07, 0.06]}]
    bones = {"hips": 0, "neck": 1, "head": 2, "leftEye": 3, "rightEye": 4}
    if version == 1:
        ext = {"VRMC_vrm": {"specVersion": "1.0", "humanoid": {"humanBones": {k: {"node": v} for k, v in bones.items()}}}}
    else:
        ext = {"VRM": {"humanoid": {"humanBones": [{"bone": k, "node": v} for k, v in bones.items()]}}}
    js = json.dumps({"asset": {"version": "2.0"}, "nodes": nodes, "scenes": [{"nodes": [0]}], "extensions": ext}).encode()
    js += b" " * (-len(js) % 4)
    body = struct.pack("<I4s", len(js), b"JSON") + js
    path.write_bytes(struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body)


def receive(port_receiver, options: dict, rotations: np.ndarray) -> dict:
    from bridge_server.outputs import OutputTarget, StreamInfo
    from bridge_server.outputs.vmc import VmcOutput, check_target
    from engine.worker.protocol import FrameBlock

    target = OutputTarget("vmc", "127.0.0.1", port_receiver.port, options)
    check_target(target)  # as at server start-up

    async def run():
        out = VmcOutput(target, StreamInfo("rest", 60, list(ARKIT_NAMES), list(BONE_NAMES)))
        out.send(FrameBlock(0, np.array([0], np.uint64), np.zeros((1, 52), np.float32),
                            rotations[None].astype(np.float32), None, 0.0, 48000, True, []), 48000)
        out.close()
        await asyncio.sleep(0.05)

    asyncio.run(run())
    deadline = time.monotonic() + 3
    while port_receiver.count("/VMC/Ext/Blend/Apply") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    return port_receiver.frames()[0]["bones"]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def unity(q):  # canonical / VRM 1.0 glTF quaternion -> Unity (mirror X)
    return np.array([q[0], -q[1], -q[2], q[3]])


def test_vrm1_with_non_identity_rest_turns_the_head_in_body_axes(tmp_path, receiver):
    a, b = math.radians(90), math.radians(-30)
    rest_neck = [0, math.sin(a / 2), 0, math.cos(a / 2)]  # neck rest turned 90 degrees about Y
    rest_head = [math.sin(b / 2), 0, 0, math.cos(b / 2)]  # head rest pitched -30 degrees on top of it
    path = tmp_path / "rest.vrm"
    write_vrm(path, 1, rest_neck, rest_head)
    yaw = math.radians(25)  # the stream turns the head 25 degrees to the subject's left, relative to the neck
    rot = np.tile([0, 0, 0, 1.0], 4)
    rot[0:4] = [0, math.sin(yaw / 2), 0, math.cos(yaw / 2)]
    bones = receive(receiver, {"rest": str(path)}, rot)
    q_head = np.array(bones["Head"][3:])
    P, R0 = matrix(unity(rest_neck)), matrix(unity(rest_head))  # the head's parent is the neck (hips: identity)
    D = matrix(unity(rot[0:4]))
    # Posed world rotation = the stream's delta (body axes) applied to the rest world rotation.
    np.testing.assert_allclose(P @ matrix(q_head), D @ P @ R0, atol=2e-6)
    # Without rest=, a receiver would set the delta itself as the local rotation and lose the rest pose:
    assert not np.allclose(P @ D, D @ P @ R0, atol=1e-3)
    # Positions: the avatar's own local offsets, glTF -> Unity (X mirrored for VRM 1.0).
    assert bones["Head"][:3] == pytest.approx((0.0, 0.09, 0.015), abs=1e-7)
    assert bones["LeftEye"][:3] == pytest.approx((-0.032, 0.07, 0.06), abs=1e-7)
    # Identity delta leaves the rest rotation in place.
    bones0 = receive(receiver, {"rest": str(path)}, np.tile([0, 0, 0, 1.0], 4))
    np.testing.assert_allclose(matrix(bones0["Neck"][3:]), matrix(unity(rest_neck)), atol=2e-6)


def test_vrm0_positions_are_z_mirrored_and_identity_rest_sends_the_delta(tmp_path, receiver):
    path = tmp_path / "v0.vrm"
    write_vrm(path, 0, [0, 0, 0, 1], [0, 0, 0, 1])
    rot = np.tile([0, 0, 0, 1.0], 4)
    rot[0:4] = [0.1, 0.2, 0.0, math.sqrt(1 - 0.05)]
    bones = receive(receiver, {"rest": str(path)}, rot)
    assert bones["Neck"][:3] == pytest.approx((0.0, 0.45, -0.02), abs=1e-7)  # VRM 0.x faces -Z in the file
    np.testing.assert_allclose(bones["Head"][3:], unity(rot[0:4]), atol=1e-6)


def test_a_file_that_is_not_a_vrm_is_refused_with_the_option_named(tmp_path):
    from bridge_server.outputs import parse_targets

    bad = tmp_path / "x.vrm"
    bad.write_bytes(b"not a glb")
    with pytest.raises(ValueError, match=r"vmc rest=.*is not a \.vrm/\.glb file"):
        parse_targets(f"vmc://127.0.0.1:39539?rest={bad}")
