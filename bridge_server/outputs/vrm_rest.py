"""Rest pose of a VRM avatar's head bones for the VMC output (``vmc://...?rest=avatar.vrm``).

VMC receivers set each received bone's local position and local rotation. Our rotations are relative to a
rest pose whose axes are the body's; that equals the bone's local rotation only where the avatar's rest
rotations are identity (VRM 0.x exports are normalised that way; VRM 1.0 files need not be). With the avatar
file we send the bone's real rest offset as its position and turn each delta into that bone's local rotation.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from engine.rig.rotation import quat_conj, quat_mul

BONES = {"Head": "head", "Neck": "neck", "LeftEye": "leftEye", "RightEye": "rightEye"}  # ours -> VRM humanoid

# Without an avatar file: a generic adult (Unity axes: +X = the avatar's right, +Y up, +Z forward, metres,
# each relative to its parent bone). Close enough that a receiver applying positions keeps the head on the
# neck and the eyes in the face; rest= gives the avatar's exact values.
GENERIC_POSITIONS = {"Neck": (0.0, 0.10, -0.01), "Head": (0.0, 0.08, 0.01),
                     "LeftEye": (-0.031, 0.065, 0.055), "RightEye": (0.031, 0.065, 0.055)}


@dataclass(frozen=True)
class BoneRest:
    position: np.ndarray  # (3,) Unity local position
    local: np.ndarray  # (4,) xyzw Unity local rest rotation
    parent_world: np.ndarray  # (4,) xyzw Unity world rest rotation of the parent



def local_rotation(delta: np.ndarray, rest: BoneRest) -> np.ndarray:
    """A rest-relative rotation in the body's axes -> the bone's local rotation: the delta expressed in the
    parent's rest axes, applied on top of the bone's own rest rotation."""
    p = rest.parent_world
    return quat_mul(quat_mul(quat_mul(quat_conj(p), delta), p), rest.local)


def _node_rt(node: dict) -> tuple[np.ndarray, np.ndarray]:
    if "matrix" in node:
        raise ValueError("node uses a matrix; export the VRM with translation/rotation")
    return np.array(node.get("translation", [0, 0, 0]), float), np.array(node.get("rotation", [0, 0, 0, 1]), float)


def load(path: str) -> dict[str, BoneRest]:
    """Read a .vrm (glb) file; raises ValueError naming the problem."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read {path!r}: {exc.strerror}") from None
    if len(data) < 20 or data[:4] != b"glTF" or data[16:20] != b"JSON":
        raise ValueError(f"{path!r} is not a .vrm/.glb file (no glTF binary header)")
    (n,) = struct.unpack_from("<I", data, 12)
    gltf = json.loads(data[20:20 + n])
    ext = gltf.get("extensions", {})
    if "VRMC_vrm" in ext:  # VRM 1.0: the file faces +Z; Unity = glTF with X mirrored
        bones = {k: v["node"] for k, v in ext["VRMC_vrm"]["humanoid"]["humanBones"].items()}
        pos_sign, rot_sign = np.array([-1, 1, 1.0]), np.array([1, -1, -1, 1.0])
    elif "VRM" in ext:  # VRM 0.x: the file faces -Z; Unity = glTF with Z mirrored
        bones = {b["bone"]: b["node"] for b in ext["VRM"]["humanoid"]["humanBones"]}
        pos_sign, rot_sign = np.array([1, 1, -1.0]), np.array([-1, -1, 1, 1.0])
    else:
        raise ValueError(f"{path!r} has no VRM humanoid (VRMC_vrm or VRM extension)")
    nodes = gltf.get("nodes", [])
    parent = {c: i for i, nd in enumerate(nodes) for c in nd.get("children", [])}

    def world(i: int) -> np.ndarray:
        q = np.array([0, 0, 0, 1.0])
        while i is not None:
            q = quat_mul(_node_rt(nodes[i])[1] * rot_sign, q)
            i = parent.get(i)
        return q

    out = {}
    for ours, vrm in BONES.items():
        if vrm not in bones:
            continue  # eyes are optional in VRM; those bones then get the generic offset
        i = bones[vrm]
        t, r = _node_rt(nodes[i])
        p = parent.get(i)
        out[ours] = BoneRest(t * pos_sign, r * rot_sign, world(p) if p is not None else np.array([0, 0, 0, 1.0]))
    if "Head" not in out:
        raise ValueError(f"{path!r} has no head bone in its VRM humanoid")
    return out
