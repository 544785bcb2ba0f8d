"""dsp-v1: a CPU-only, real-time, signal-processing audio -> ARKit-52 engine.

Not a learned model. Per output frame it measures band energies on a 32 ms
window that ends ``lookahead_s`` after the frame's time (features.py), turns
them into nine smoothed articulation controls with hand-set rules
(articulation.py), adds seeded blinks, saccades and head motion
(secondary.py), and maps everything onto the 52 blendshapes with one matrix
product. See docs/dsp_engine.md for the mapping, parameters and limitations.

Cost model: numpy for what is vectorisable over the frames a chunk completes
(windowing, FFT, band sums, the final mapping), plain Python floats for the
sequential per-frame state (a streaming push completes 1-3 frames, where a
numpy call costs ~20x a float operation).
"""
from __future__ import annotations

import numpy as np

from engine.expression import features as ft
from engine.expression.articulation import (
    ACT, CLOSE, EMPH, FRIC_F, FRIC_S, FRIC_SH, NCTRL, OPEN, ROUND, SPREAD, MouthTracker,
)
from engine.expression.base import SAMPLE_RATE, ExpressionEngine, ExpressionStream, Frames, Style
from engine.expression.input_checks import InputMonitor
from engine.expression.secondary import DEG, Blinks, HeadDrift, Saccades, rng_for
from engine.rig import ARKIT_INDEX, NUM_BLENDSHAPES, NUM_BONES
from engine.rig.emotions import EMOTIONS
from engine.rig.eyes import EYE_PITCH_FULL, EYE_YAW_FULL
from engine.rig.head import NECK_SHARE, VOR
from engine.rig.rotation import quat_from_rotvec_scalar

LOOKAHEAD_S = 0.04  # window ends 40 ms ahead: centre ~24 ms ahead of the frame (see docs)
_LOOK = int(round(LOOKAHEAD_S * SAMPLE_RATE))  # 640 samples
_WIN = ft.WIN
_WIN_RANGE = np.arange(_WIN)

# Inputs of the final linear map, after the NCTRL smoothed controls.
_RO = NCTRL  # round * open: a rounded mouth funnels as it opens
_OSAT = NCTRL + 1  # min(2 * open, 1): how far a pressed/closed base pose must give way
_BLINKC = NCTRL + 2
_LOOK_POS_YAW, _LOOK_NEG_YAW, _LOOK_UP, _LOOK_DOWN = range(NCTRL + 3, NCTRL + 7)
_NIN = NCTRL + 7

_I = ARKIT_INDEX

# Linear map controls -> blendshapes (per unit of control, before intensity).
_MOUTH_MAP = {
    OPEN: {"jawOpen": 0.58, "mouthLowerDownLeft": 0.28, "mouthLowerDownRight": 0.28,
           "mouthUpperUpLeft": 0.12, "mouthUpperUpRight": 0.12},
    # Bilabial closure: teeth slightly apart, lips sealed and pressed.
    CLOSE: {"jawOpen": 0.06, "mouthClose": 0.12, "mouthPressLeft": 0.40, "mouthPressRight": 0.40,
            "mouthRollLower": 0.12, "mouthRollUpper": 0.08},
    # Rounded: pucker when nearly closed (u, w), funnel as it opens (o, aw).
    ROUND: {"mouthFunnel": 0.25, "mouthPucker": 0.55},
    _RO: {"mouthFunnel": 0.45, "mouthPucker": -0.40},
    SPREAD: {"mouthStretchLeft": 0.30, "mouthStretchRight": 0.30, "mouthSmileLeft": 0.12,
             "mouthSmileRight": 0.12, "mouthDimpleLeft": 0.05, "mouthDimpleRight": 0.05},
    FRIC_S: {"jawOpen": 0.03, "mouthStretchLeft": 0.15, "mouthStretchRight": 0.15,
             "mouthLowerDownLeft": 0.10, "mouthLowerDownRight": 0.10,
             "mouthUpperUpLeft": 0.10, "mouthUpperUpRight": 0.10},
    FRIC_SH: {"jawOpen": 0.03, "mouthFunnel": 0.35, "mouthPucker": 0.15,
              "mouthUpperUpLeft": 0.10, "mouthUpperUpRight": 0.10,
              "mouthLowerDownLeft": 0.10, "mouthLowerDownRight": 0.10},
    # Labiodental: lower lip tucked under the upper teeth.
    FRIC_F: {"jawOpen": 0.03, "mouthRollLower": 0.35, "mouthUpperUpLeft": 0.15,
             "mouthUpperUpRight": 0.15, "mouthShrugUpper": 0.05},
    EMPH: {"browInnerUp": 0.15, "browOuterUpLeft": 0.25, "browOuterUpRight": 0.25},
}

# Base-pose parts that give way to articulation: pressed lips part when the jaw
# opens, a smile narrows when the lips round, wide eyes close in a blink.
_YIELD_TO_OPEN = ("mouthPressLeft", "mouthPressRight", "mouthClose")
_YIELD_TO_ROUND = ("mouthSmileLeft", "mouthSmileRight", "mouthDimpleLeft", "mouthDimpleRight")
_YIELD_TO_BLINK = ("eyeWideLeft", "eyeWideRight")

# Eye look: +yaw = toward the subject's left = outward for the left eye, inward
# for the right one; negative pitch = up.
_LOOK_MAP = {
    _LOOK_POS_YAW: ("eyeLookOutLeft", "eyeLookInRight"),
    _LOOK_NEG_YAW: ("eyeLookInLeft", "eyeLookOutRight"),
    _LOOK_UP: ("eyeLookUpLeft", "eyeLookUpRight"),
    _LOOK_DOWN: ("eyeLookDownLeft", "eyeLookDownRight"),
}
_INV_YAW_FULL, _INV_PITCH_FULL = 1.0 / EYE_YAW_FULL, 1.0 / EYE_PITCH_FULL

# Head motion at head_motion = 1 (radians).
_DRIFT = (1.5 * DEG, 2.5 * DEG, 1.2 * DEG)  # pitch, yaw, roll wander amplitude
_NOD = 3.5 * DEG  # extra chin-down pitch at full emphasis

_IDENTITY = np.array([0.0, 0.0, 0.0, 1.0], np.float32)
_NO_WEIGHTS = np.zeros((0, NUM_BLENDSHAPES), np.float32)
_NO_ROTATIONS = np.zeros((0, NUM_BONES, 4), np.float32)


def _row(spec: dict[str, float]) -> np.ndarray:
    v = np.zeros(NUM_BLENDSHAPES)
    for name, w in spec.items():
        v[_I[name]] += w
    return v


class DspExpressionEngine(ExpressionEngine):
    name = "dsp-v1"
    description = (
        "Signal-processing heuristic, not a learned model: per frame it measures loudness "
        "against an adaptive noise floor and the speaker's recent peak, band energies, "
        "F1/F2-region spectral centroids, spectral tilt and zero-crossing rate on a 32 ms "
        "window ending 50 ms ahead, maps them by hand-set rules to jaw opening, lip "
        "closure/press (energy dips, nasal murmur), rounding (low F2), spreading (high F2) "
        "and fricative shapes, smooths them with attack/release filters, and adds seeded "
        "blinks, saccades, emphasis nods and bounded head drift. CPU-only numpy, tens of "
        "microseconds per 40 ms chunk. It cannot tell visemes apart the way a trained model "
        "can (e.g. p/b/m vs t/d/n closures look alike to it)."
    )
    lookahead_s = LOOKAHEAD_S

    def open(self, fps: int, style: Style) -> "DspExpressionStream":
        return DspExpressionStream(fps, style)


class DspExpressionStream(ExpressionStream):
    """Per-stream state: a <1,100-sample buffer, a 2.5 s level history and a few filters."""

    def __init__(self, fps: int, style: Style):
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        if style.emotion not in EMOTIONS:
            raise ValueError(f"unknown emotion {style.emotion!r}; expected one of {sorted(EMOTIONS)}")
        self.fps = fps = int(fps)
        self._buf = np.zeros(0, np.float32)
        self._buf0 = 0  # absolute sample index of _buf[0]
        self._total = 0
        self._next = 0  # next frame index to emit
        self._finished = False
        self._input = InputMonitor()
        self._mouth = MouthTracker(fps)

        intensity = float(np.clip(style.intensity, 0.0, 2.0))
        strength = float(np.clip(style.emotion_strength, 0.0, 1.0))
        self._head_motion = float(np.clip(style.head_motion, 0.0, 2.0))
        base = _row(EMOTIONS[style.emotion]) * strength
        m = np.zeros((_NIN, NUM_BLENDSHAPES))
        for ch, spec in _MOUTH_MAP.items():
            m[ch] = _row(spec) * intensity
        for names, ch, share in ((_YIELD_TO_OPEN, _OSAT, 1.0), (_YIELD_TO_ROUND, ROUND, 0.7),
                                 (_YIELD_TO_BLINK, _BLINKC, 1.0)):
            for name in names:
                m[ch, _I[name]] -= share * base[_I[name]]
        for name in ("eyeBlinkLeft", "eyeBlinkRight"):
            m[_BLINKC, _I[name]] += 1.0
        for ch, names in _LOOK_MAP.items():
            for name in names:
                m[ch, _I[name]] = 1.0
        # float32: the product lands in the output dtype directly.
        self._map = m.astype(np.float32)
        self._base = base.astype(np.float32)

        # Independent generators: e.g. a blink never shifts the saccade sequence.
        self._blinks = Blinks(rng_for(style.seed, 0))
        self._saccades = Saccades(rng_for(style.seed, 1))
        self._drift = HeadDrift(rng_for(style.seed, 2))

    # ------------------------------------------------------------------ API
    def push(self, audio: np.ndarray) -> Frames:
        if self._finished:
            raise RuntimeError("push() after finish()")
        x = audio
        if type(x) is not np.ndarray or x.dtype != np.float32 or x.ndim != 1:
            x = np.asarray(x, dtype=np.float32).reshape(-1)
        warnings: list[str] = []
        if x.size:
            self._buf = np.concatenate((self._buf, x))  # always a copy: callers reuse buffers
            self._total += x.size
            warnings = self._input.check(x)
        # Frame k is ready once ceil(k*SR/fps) + lookahead <= total, i.e. k <= (total-L)*fps/SR.
        ready = (self._total - _LOOK) * self.fps // SAMPLE_RATE + 1 if self._total >= _LOOK else 0
        out = self._emit(ready, self._buf) if ready > self._next else self._empty()
        out.warnings = warnings
        return out

    def finish(self) -> Frames:
        if self._finished:
            return self._empty()
        self._finished = True
        n_total = -(-self._total * self.fps // SAMPLE_RATE)  # every k with k/fps < duration
        if n_total <= self._next:
            out = self._empty()
        else:
            # Windows past the end read zeros, exactly as if silence followed.
            need = self._end(n_total - 1) - self._buf0
            src = self._buf
            if need > src.size:
                src = np.concatenate((src, np.zeros(need - src.size, np.float32)))
            out = self._emit(n_total, src)
        self._buf = np.zeros(0, np.float32)
        return out

    # ------------------------------------------------------------ internals
    def _empty(self) -> Frames:
        # Shared zero-size arrays: nothing to mutate, and no allocation per empty push.
        return Frames(self._next, _NO_WEIGHTS, _NO_ROTATIONS)

    def _end(self, k):
        """Exclusive end sample of frame k's analysis window (ints or int arrays)."""
        return -(-k * SAMPLE_RATE // self.fps) + _LOOK

    def _emit(self, stop: int, src: np.ndarray) -> Frames:
        k0 = self._next
        n = stop - k0
        if n == 1:  # the common streaming case: a slice is cheaper than fancy indexing
            s0 = self._end(k0) - _WIN - self._buf0
            frames = src[None, s0:s0 + _WIN]
        else:
            starts = self._end(np.arange(k0, stop)) - (_WIN + self._buf0)
            frames = src[starts[:, None] + _WIN_RANGE]
        bands = ft.analyze(frames).tolist()
        ctrl, pauses = self._mouth.process(bands, k0)

        head_motion = self._head_motion
        blink_step, sacc_step, drift_step = self._blinks.step, self._saccades.step, self._drift.step
        inv_fps = 1.0 / self.fps
        # Per-frame constants folded once per call (this loop runs for every frame).
        dp_k, dy_k, dr_k = head_motion * _DRIFT[0], head_motion * _DRIFT[1], head_motion * _DRIFT[2]
        nod_k = head_motion * _NOD
        head_k, neck_k = 1.0 - NECK_SHARE, NECK_SHARE
        quats: list[tuple[float, ...]] = []
        for i, c in enumerate(ctrl):
            t = (k0 + i) * inv_fps
            o = c[OPEN]
            c += (c[ROUND] * o, 2.0 * o if o < 0.5 else 1.0, blink_step(t, pauses[i]))
            if head_motion <= 0.0:
                c += (0.0, 0.0, 0.0, 0.0)
                continue
            # Head: bounded wander (livelier while talking) plus chin-down nods on emphasis.
            dp, dy, dr = drift_step(t)
            live = 0.5 + 0.5 * c[ACT]
            hp = live * dp_k * dp + nod_k * c[EMPH]
            hy = live * dy_k * dy
            hr = live * dr_k * dr
            # Eyes: saccade targets, minus part of the head turn to keep the gaze steady.
            gy, gp = sacc_step(t)
            ey = head_motion * gy - VOR * hy
            ep = head_motion * gp - VOR * hp
            eye = quat_from_rotvec_scalar(ep, ey, 0.0)
            quats.append(quat_from_rotvec_scalar(head_k * hp, head_k * hy, head_k * hr)
                         + quat_from_rotvec_scalar(neck_k * hp, neck_k * hy, neck_k * hr) + eye + eye)
            yn, pn = ey * _INV_YAW_FULL, ep * _INV_PITCH_FULL
            c += (yn if yn > 0.0 else 0.0, -yn if yn < 0.0 else 0.0,
                  -pn if pn < 0.0 else 0.0, pn if pn > 0.0 else 0.0)

        w = np.array(ctrl, np.float32) @ self._map
        w += self._base
        np.maximum(w, 0.0, out=w)  # (np.clip's Python wrapper costs more than both ufuncs)
        np.minimum(w, 1.0, out=w)
        if head_motion > 0.0:
            rot = np.array(quats, np.float32).reshape(n, NUM_BONES, 4)
        else:
            rot = np.tile(_IDENTITY, (n, NUM_BONES, 1))

        self._next = stop
        # Keep only what the next frame's window needs (its start may lie a few
        # samples past the audio received so far: never skip those).
        keep_from = min(self._end(stop) - _WIN - self._buf0, self._buf.size)
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._buf0 += keep_from
        return Frames(k0, w, rot)
