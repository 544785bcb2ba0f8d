"""Eye rotation <-> eyeLook* blendshapes: one table for every engine.

An eye yawed by EYE_YAW_FULL reads as eyeLookIn/Out = 1, an eye pitched by
EYE_PITCH_FULL as eyeLookUp/Down = 1 (roughly ARKit's measured range).
+yaw = toward the subject's left: outward for the left eye, inward for the right.
"""
from __future__ import annotations

import math

import numpy as np

from engine.rig.arkit import ARKIT_INDEX
from engine.rig.rotation import quat_from_euler

EYE_YAW_FULL = math.radians(30.0)
EYE_PITCH_FULL = math.radians(25.0)

_L = [ARKIT_INDEX[n] for n in ("eyeLookOutLeft", "eyeLookInLeft", "eyeLookDownLeft", "eyeLookUpLeft")]
_R = [ARKIT_INDEX[n] for n in ("eyeLookInRight", "eyeLookOutRight", "eyeLookDownRight", "eyeLookUpRight")]


def eye_angles(weights: np.ndarray) -> np.ndarray:
    """(..., 52) weights -> (..., 2, 2) [left, right] x [yaw, pitch] radians (+pitch = looking down)."""
    w = np.asarray(weights, np.float64)
    out = []
    for pos_yaw, neg_yaw, down, up in (_L, _R):
        out.append(np.stack([(w[..., pos_yaw] - w[..., neg_yaw]) * EYE_YAW_FULL,
                             (w[..., down] - w[..., up]) * EYE_PITCH_FULL], -1))
    return np.stack(out, -2)


def eye_quats(weights: np.ndarray) -> np.ndarray:
    """(..., 52) weights -> (..., 2, 4) quaternions for LeftEye, RightEye (local to rest)."""
    a = eye_angles(weights)
    return quat_from_euler(a[..., 0], a[..., 1], 0.0)
