"""Quaternion and axis helpers for the canonical avatar space (docs/conventions.md).

Canonical: right-handed, Y up, metres; the subject faces +Z and its own left is +X.
Quaternions are (x, y, z, w). Conversions to other spaces happen only at edges; the
ones for Unity and Unreal live here so that every edge (VMC, Live Link Face, renderers,
tests) uses the same, tested formulas.
"""
from __future__ import annotations

import math

import numpy as np


def quat_from_matrix(m: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix (or [..., 3, 3]) -> unit quaternion (x, y, z, w) with w >= 0.
    Shepperd's method: divide by the largest of w, x, y, z for numerical stability."""
    m = np.asarray(m, np.float64)
    flat = m.reshape(-1, 3, 3)
    out = np.empty((flat.shape[0], 4))
    for i, r in enumerate(flat):
        t = r[0, 0] + r[1, 1] + r[2, 2]
        if t > 0:
            s = 2.0 * np.sqrt(t + 1.0)
            q = (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s
        elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
            s = 2.0 * np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
            q = 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s
        elif r[1, 1] > r[2, 2]:
            s = 2.0 * np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
            q = (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s
        else:
            s = 2.0 * np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
            q = (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s
        out[i] = q
    out *= np.where(out[:, 3:] < 0, -1.0, 1.0)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out.reshape(m.shape[:-2] + (4,))


def matrix_from_quat(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float64)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def quat_from_euler(yaw: float | np.ndarray, pitch: float | np.ndarray = 0.0, roll: float | np.ndarray = 0.0) -> np.ndarray:
    """Radians: yaw about +Y (to the subject's left), pitch about +X (chin down), roll about +Z.
    Applied as R = Ry(yaw) @ Rx(pitch) @ Rz(roll)."""
    yaw, pitch, roll = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (yaw, pitch, roll)))
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    qy = np.stack([0 * cy, sy, 0 * cy, cy], -1)
    qp = np.stack([sp, 0 * cp, 0 * cp, cp], -1)
    qr = np.stack([0 * cr, 0 * cr, sr, cr], -1)
    return quat_mul(quat_mul(qy, qp), qr)


def euler_from_quat(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of quat_from_euler: (yaw, pitch, roll) in radians."""
    m = matrix_from_quat(q)
    pitch = np.arcsin(np.clip(-m[..., 1, 2], -1, 1))
    yaw = np.arctan2(m[..., 0, 2], m[..., 2, 2])
    roll = np.arctan2(m[..., 1, 0], m[..., 1, 1])
    return yaw, pitch, roll


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = np.moveaxis(np.asarray(a, np.float64), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.asarray(b, np.float64), -1, 0)
    return np.stack([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz], -1)


def quat_conj(q: np.ndarray) -> np.ndarray:
    """The inverse of a unit quaternion (..., 4) xyzw."""
    q = np.asarray(q, np.float64)
    return np.concatenate((-q[..., :3], q[..., 3:]), axis=-1)


def quat_from_rotvec(v: np.ndarray) -> np.ndarray:
    """Rotation vectors (..., 3), radians about their axis -> unit quaternions (..., 4) xyzw; exact identity for a
    zero vector."""
    v = np.asarray(v, np.float64)
    th = np.sqrt((v * v).sum(-1, keepdims=True))
    zero = th < 1e-12
    s = np.where(zero, 0.0, np.sin(0.5 * th) / np.where(zero, 1.0, th))
    return np.concatenate((v * s, np.cos(0.5 * th)), axis=-1)


def quat_from_rotvec_scalar(px: float, py: float, pz: float) -> tuple[float, float, float, float]:
    """quat_from_rotvec for one vector as plain floats: the per-frame loop of the DSP engine calls this
    for every bone of every frame, where numpy's per-call overhead would dominate."""
    th = math.sqrt(px * px + py * py + pz * pz)
    if th < 1e-12:
        return 0.0, 0.0, 0.0, 1.0
    s = math.sin(0.5 * th) / th
    return px * s, py * s, pz * s, math.cos(0.5 * th)


def quat_pow(q: np.ndarray, a: float) -> np.ndarray:
    """q^a: the same axis, a times the angle (a=0 -> identity); q and -q give the same result."""
    q = np.asarray(q, np.float64)
    if q[3] < 0:
        q = -q
    s = np.linalg.norm(q[:3])
    if s < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    half = np.arctan2(s, q[3]) * a
    return np.concatenate([q[:3] / s * np.sin(half), [np.cos(half)]])


# -- edges -----------------------------------------------------------------
# Unity: left-handed, Y up, metres, a character faces +Z and its left is -X (mirror X).
# Unreal: left-handed, Z up, centimetres, a character faces +X and its left is -Y.
# For an axis map M with det -1, R' = M R M^T maps a quaternion's vector part v to -M v.

def to_unity_quat(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float64)
    return np.stack([q[..., 0], -q[..., 1], -q[..., 2], q[..., 3]], -1)


def to_unity_position(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    return np.stack([-p[..., 0], p[..., 1], p[..., 2]], -1)


def to_unreal_quat(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float64)
    return np.stack([-q[..., 2], q[..., 0], -q[..., 1], q[..., 3]], -1)


def to_unreal_position(p: np.ndarray) -> np.ndarray:
    """Metres (canonical) -> centimetres (Unreal)."""
    p = np.asarray(p, np.float64)
    return np.stack([100 * p[..., 2], -100 * p[..., 0], 100 * p[..., 1]], -1)
