"""MediaPipe Face Landmarker -> canonical frames (52 ARKit weights, Head/Neck/eye rotations).

One FaceCapture per stream: VIDEO running mode keeps tracking state between images and
needs strictly increasing timestamps. Conventions (docs/capture.md):
  * MediaPipe's facial transformation matrix maps its canonical face model (cm; +X = the
    subject's left as seen facing the camera, +Y up, +Z toward the camera) into camera
    space (right-handed, camera looking along -Z). With an unmirrored image those are
    exactly the canonical avatar axes, so the rotation is the head rotation as is, and
    the translation /100 is the head position in metres relative to the camera.
  * The head rotation is split Neck 30 % / Head 70 % (same axis), like dsp-v1, so rigs
    that drive both bones get the full measured rotation.
  * Eye rotations come from the eyeLook* weights (engine.rig.eyes: +-30 deg yaw, +-25 deg pitch).
  * tongueOut is not measured by MediaPipe: always 0 (listed in UNMEASURED).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from engine.capture import smoothing
from engine.config import ConfigMixin
from engine.rig import ARKIT_INDEX, NUM_BLENDSHAPES, NUM_BONES
from engine.rig.eyes import eye_quats
from engine.rig.head import NECK_SHARE
from engine.rig.rotation import euler_from_quat, quat_from_matrix, quat_pow

log = logging.getLogger("engine.capture")

UNMEASURED = ["tongueOut"]
HOLD_S = 0.25  # face lost: hold the last pose this long ...
EASE_S = 0.3  # ... then ease to rest with this time constant
MIN_FACE_PX = 80.0  # below this face height, confidence falls off linearly
LIP_UPPER, LIP_LOWER, FOREHEAD, CHIN = 13, 14, 10, 152  # MediaPipe face mesh indices


@dataclass
class CaptureSettings(ConfigMixin):
    max_faces: int = 1  # faces searched per image (1..4); >1 re-runs detection more often and can lose small faces
    face_index: int = -1  # -1 = the largest face (sticky); N = the N-th face from the image's left
    smoothing: bool = True  # One Euro filtering (engine.capture.smoothing)
    mirrored: bool = False  # the images are mirrored (selfie preview): flip them back first
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5


@dataclass
class CaptureFrame:
    weights: np.ndarray  # (52,) float32, canonical order
    rotations: np.ndarray  # (4, 4) float32, xyzw for Head, Neck, LeftEye, RightEye
    translation: np.ndarray  # (3,) float32 metres, camera-relative, canonical axes
    confidence: float
    face_lost: bool
    landmarks: np.ndarray | None = None  # (478, 3) normalised image coords of the chosen face
    faces: int = 0  # faces found in this image
    face_box: tuple[float, float, float, float] | None = field(default=None)  # x0, y0, x1, y1 in pixels


class FaceCapture:
    def __init__(self, model: bytes | str, settings: CaptureSettings | None = None):
        from mediapipe.tasks.python import BaseOptions, vision

        self.settings = s = settings or CaptureSettings()
        if not 1 <= s.max_faces <= 4:
            raise ValueError(f"max_faces must be 1..4, got {s.max_faces}")
        base = BaseOptions(model_asset_buffer=model) if isinstance(model, bytes) else BaseOptions(model_asset_path=model)
        opts = vision.FaceLandmarkerOptions(
            base_options=base, running_mode=vision.RunningMode.VIDEO, num_faces=s.max_faces,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True,
            min_face_detection_confidence=s.min_detection_confidence,
            min_face_presence_confidence=s.min_detection_confidence,
            min_tracking_confidence=s.min_tracking_confidence)
        self._lm = vision.FaceLandmarker.create_from_options(opts)
        self._mp_image = __import__("mediapipe").Image
        self._srgb = __import__("mediapipe").ImageFormat.SRGB
        self._f_w = smoothing.OneEuro(smoothing.WEIGHTS)
        self._f_r = smoothing.OneEuro(smoothing.ROTATION)
        self._f_t = smoothing.OneEuro(smoothing.TRANSLATION)
        self._last_us: int | None = None
        self._last_ms = -1
        self._last: CaptureFrame | None = None  # last frame with a face
        self._lost_since: float | None = None
        self._center: np.ndarray | None = None  # the tracked face's centre (sticky selection)

    def close(self) -> None:
        if self._lm is not None:
            self._lm.close()
            self._lm = None

    def process(self, rgb: np.ndarray, timestamp_us: int) -> CaptureFrame:
        """One HxWx3 uint8 RGB image at timestamp_us (strictly increasing)."""
        if self._last_us is not None and timestamp_us <= self._last_us:
            raise ValueError(f"timestamp_us {timestamp_us} is not after the previous image's {self._last_us}; "
                             "timestamps must strictly increase")
        self._last_us = timestamp_us
        ms = max(timestamp_us // 1000, self._last_ms + 1)  # MediaPipe counts whole milliseconds
        self._last_ms = ms
        if self.settings.mirrored:
            rgb = rgb[:, ::-1]
        img = self._mp_image(image_format=self._srgb, data=np.ascontiguousarray(rgb))
        res = self._lm.detect_for_video(img, int(ms))
        t = timestamp_us * 1e-6
        h, w = rgb.shape[:2]
        pick = self._select(res.face_landmarks, w, h)
        if pick is None:
            return self._lost(t, len(res.face_landmarks))
        return self._measured(res, pick, t, w, h)

    # -- internals -----------------------------------------------------------
    def _select(self, faces, w: int, h: int) -> int | None:
        if not faces:
            self._center = None
            return None
        self._lms = [np.array([(p.x, p.y, p.z) for p in lms], np.float32) for lms in faces]
        boxes = np.array([(a[:, 0].min() * w, a[:, 1].min() * h, a[:, 0].max() * w, a[:, 1].max() * h)
                          for a in self._lms])
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        idx = self.settings.face_index
        if idx >= 0:
            order = np.argsort(centers[:, 0])
            if idx >= len(order):
                self._center = None
                return None
            pick = int(order[idx])
        else:
            pick = int(np.argmax(areas))
            if self._center is not None:  # stay on the tracked face while it is comparably large
                near = int(np.argmin(np.linalg.norm(centers - self._center, axis=1)))
                if areas[near] >= 0.7 * areas[pick]:
                    pick = near
        self._center = centers[pick]
        self._boxes = boxes
        return pick

    def _measured(self, res, pick: int, t: float, w: int, h: int) -> CaptureFrame:
        weights = np.zeros(NUM_BLENDSHAPES, np.float64)
        for cat in res.face_blendshapes[pick]:
            i = ARKIT_INDEX.get(cat.category_name)
            if i is not None:
                weights[i] = cat.score
        m = np.asarray(res.facial_transformation_matrixes[pick], np.float64)
        q = quat_from_matrix(m[:3, :3])
        trans = m[:3, 3] / 100.0
        if self._lost_since is not None or self._last is None:
            for f in (self._f_w, self._f_r, self._f_t):
                f.reset()  # re-found: start the filters on the new measurement, do not glide from rest
        self._lost_since = None
        if self.settings.smoothing:
            weights = np.clip(self._f_w(weights, t), 0.0, 1.0)
            if self._f_r.x is not None and np.dot(self._f_r.x, q) < 0:
                q = -q  # same hemisphere as the filter state
            q = self._f_r(q, t)
            q = q / np.linalg.norm(q)
            trans = self._f_t(trans, t)
        rot = np.zeros((NUM_BONES, 4))
        rot[1] = quat_pow(q, NECK_SHARE)
        rot[0] = quat_pow(q, 1.0 - NECK_SHARE)
        rot[2:4] = eye_quats(weights)
        lms = self._lms[pick]
        box = tuple(float(v) for v in self._boxes[pick])
        face_h = box[3] - box[1]
        yaw, pitch, _ = euler_from_quat(q)
        conf = min(1.0, face_h / MIN_FACE_PX) * (1.0 if max(abs(yaw), abs(pitch)) < np.radians(50) else 0.5)
        frame = CaptureFrame(weights.astype(np.float32), rot.astype(np.float32), trans.astype(np.float32),
                             float(conf), False, lms, len(res.face_landmarks), box)
        self._last = frame
        return frame

    def _lost(self, t: float, faces: int) -> CaptureFrame:
        rest_rot = np.zeros((NUM_BONES, 4), np.float32)
        rest_rot[:, 3] = 1.0
        if self._last is None:
            return CaptureFrame(np.zeros(NUM_BLENDSHAPES, np.float32), rest_rot, np.zeros(3, np.float32), 0.0, True,
                                None, faces)
        if self._lost_since is None:
            self._lost_since = t
        # Hold, then ease toward rest so a rig does not freeze mid-word or snap.
        k = 1.0 if t - self._lost_since <= HOLD_S else float(np.exp(-(t - self._lost_since - HOLD_S) / EASE_S))
        rot = np.array([quat_pow(q, k) for q in self._last.rotations.astype(np.float64)], np.float32)
        return CaptureFrame((self._last.weights * k).astype(np.float32), rot, self._last.translation.copy(), 0.0,
                            True, None, faces)



def lip_aperture(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Inner-lip gap (landmarks 13-14) over face height (10-152), in pixels' aspect. (n, 478, 3) -> (n,)."""
    lm = np.asarray(landmarks, np.float64)[..., :2] * np.array([width, height])
    gap = np.linalg.norm(lm[..., LIP_UPPER, :] - lm[..., LIP_LOWER, :], axis=-1)
    face = np.linalg.norm(lm[..., FOREHEAD, :] - lm[..., CHIN, :], axis=-1)
    return gap / np.maximum(face, 1e-6)
