"""Small rigid-transform helpers (quaternions are x, y, z, w as in glTF and the frame stream)."""
from __future__ import annotations

import numpy as np

from engine.rig.rotation import matrix_from_quat


def quat_to_matrix(q) -> np.ndarray:
    """3x3 rotation matrix of a unit quaternion (x, y, z, w); normalised first (glTF files store rounded ones)."""
    q = np.asarray(q, np.float64)
    return matrix_from_quat(q / np.linalg.norm(q))


def axis_angle_quat(axis, degrees: float) -> np.ndarray:
    """Unit quaternion (x, y, z, w) for a rotation of `degrees` about `axis` (right-hand rule)."""
    axis = np.asarray(axis, np.float64)
    axis = axis / np.linalg.norm(axis)
    half = np.radians(degrees) / 2
    return np.array([*(axis * np.sin(half)), np.cos(half)])


def trs_matrix(translation=None, rotation=None, scale=None) -> np.ndarray:
    m = np.eye(4)
    if rotation is not None:
        m[:3, :3] = quat_to_matrix(rotation)
    if scale is not None:
        m[:3, :3] = m[:3, :3] * np.asarray(scale, np.float64)[None, :]
    if translation is not None:
        m[:3, 3] = translation
    return m


def rotation_part(m: np.ndarray) -> np.ndarray:
    """The rotation of a 4x4 (or 3x3) affine transform with its scale removed (polar decomposition)."""
    u, _, vt = np.linalg.svd(np.asarray(m, np.float64)[:3, :3])
    r = u @ vt
    if np.linalg.det(r) < 0:  # a mirrored parent: keep a proper rotation
        u[:, -1] *= -1
        r = u @ vt
    return r


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenGL view matrix (camera looks down its -Z)."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    f = target - eye
    f /= np.linalg.norm(f)
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u, -f
    m[:3, 3] = -m[:3, :3] @ eye
    return m


def perspective(fov_y_deg: float, aspect: float, near: float, far: float) -> np.ndarray:
    f = 1.0 / np.tan(np.radians(fov_y_deg) / 2)
    m = np.zeros((4, 4))
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m
