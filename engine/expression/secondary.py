"""Secondary motion for dsp-v1: blinks, eye saccades, idle head drift.

Each generator is stepped once per frame, in frame order, and draws its
random numbers per event from its own seeded ``random.Random``; so the
motion depends only on (seed, frame times, pause onsets), never on how the
audio was chunked. Plain Python floats: one or two frames per push is the
common case, where numpy's per-call overhead would dominate.

Angles are radians. Rotation vectors are (x, y, z) = (pitch, yaw, roll) in
the rig's right-handed Y-up space (subject faces +Z, its left is +X):
+pitch (about +X) sends the face's forward +Z toward -Y, i.e. chin down;
+yaw (about +Y) sends +Z toward +X, i.e. a turn to the subject's left;
+roll (about +Z) sends the top of the head (+Y) toward -X, i.e. a tilt
toward the subject's right shoulder.
"""
from __future__ import annotations

import math
import random

DEG = math.pi / 180.0

# Blink: fast close, short hold, slower open; about 210 ms in all.
BLINK_CLOSE, BLINK_HOLD, BLINK_OPEN = 0.065, 0.025, 0.12
BLINK_LEN = BLINK_CLOSE + BLINK_HOLD + BLINK_OPEN
SACCADE_S = 0.045  # duration of a gaze shift


def rng_for(seed: int, stream: int) -> random.Random:
    """An independent, platform-stable generator per (seed, purpose)."""
    return random.Random((int(seed) & 0xFFFFFFFFFFFFFFFF) * 8 + stream)


def _smooth(u: float) -> float:
    return u * u * (3.0 - 2.0 * u)



class Blinks:
    """Blinks every 2-6 s, sometimes doubled, preferably just after speech stops."""

    def __init__(self, rng: random.Random):
        self._rng = rng
        self._next = 0.8 + 2.7 * rng.random()  # first blink within a few seconds
        self._last = -10.0
        self._starts: list[float] = []  # onsets of blinks that may still be showing

    def step(self, t: float, pause: bool) -> float:
        """Eyelid closure 0..1 at frame time t; ``pause``: speech stopped at this frame."""
        rng = self._rng
        if pause and t - self._last > 1.0 and rng.random() < 0.65:
            # People tend to blink when they stop talking: pull the next blink in.
            self._next = min(self._next, t + 0.05 + 0.15 * rng.random())
        while t >= self._next:
            s = self._next
            self._starts.append(s)
            if rng.random() < 0.12:  # double blink, clear of the first one
                s += 0.28 + 0.12 * rng.random()
                self._starts.append(s)
            self._last = s
            self._next = s + 2.0 + 4.0 * rng.random()
        w = 0.0
        starts = self._starts
        while starts and t - starts[0] >= BLINK_LEN:
            starts.pop(0)
        for s in starts:
            dt = t - s
            if dt < 0.0:
                continue
            if dt < BLINK_CLOSE:
                v = _smooth(dt / BLINK_CLOSE)
            elif dt < BLINK_CLOSE + BLINK_HOLD:
                v = 1.0
            else:
                v = 1.0 - _smooth(min(1.0, (dt - BLINK_CLOSE - BLINK_HOLD) / BLINK_OPEN))
            w = max(w, v)
        return w


class Saccades:
    """Gaze targets held for 0.5-3 s, with fast (45 ms) shifts; often back to the camera."""

    def __init__(self, rng: random.Random):
        self._rng = rng
        self._next = 0.3 + 1.2 * rng.random()
        self._start = -1.0
        self._from = self._to = (0.0, 0.0)

    def _target(self) -> tuple[float, float]:
        rng = self._rng
        if rng.random() < 0.4:
            return 0.0, 0.0  # eye contact
        # Roughly normal (sum of three uniforms), bounded: yaw within +-9 deg, pitch +-5 deg.
        yaw = (rng.random() + rng.random() + rng.random() - 1.5) * 6.0 * DEG
        pitch = (rng.random() + rng.random() + rng.random() - 1.4) * 3.5 * DEG
        return yaw, pitch

    def step(self, t: float) -> tuple[float, float]:
        """Gaze (yaw, pitch) at frame time t."""
        while t >= self._next:
            self._from = self._to  # holds are longer than a shift: the last one has ended
            self._to = self._target()
            self._start = self._next
            self._next += 0.5 + 2.5 * self._rng.random()
        u = (t - self._start) / SACCADE_S
        if u >= 1.0:
            return self._to
        u = _smooth(u)
        (y0, p0), (y1, p1) = self._from, self._to
        return y0 + (y1 - y0) * u, p0 + (p1 - p0) * u


class HeadDrift:
    """Slow bounded wander: per axis a sum of three sines of random 0.05-0.35 Hz.

    Each axis stays within [-1, 1] and keeps passing through zero, so the head
    wanders around its rest pose and never drifts away from it.
    """

    def __init__(self, rng: random.Random):
        coefs = []
        for _axis in range(3):
            amps = [0.5 + 0.5 * rng.random() for _ in range(3)]
            total = sum(amps)
            for a in amps:
                coefs += [a / total, 2 * math.pi * (0.05 + 0.3 * rng.random()), 2 * math.pi * rng.random()]
        self._c = tuple(coefs)

    def step(self, t: float) -> tuple[float, float, float]:
        """(pitch, yaw, roll) drift at time t, each in [-1, 1]."""
        sin = math.sin
        (a0, w0, p0, a1, w1, p1, a2, w2, p2, b0, v0, q0, b1, v1, q1, b2, v2, q2,
         c0, u0, r0, c1, u1, r1, c2, u2, r2) = self._c  # unrolled: this runs every frame
        return (a0 * sin(w0 * t + p0) + a1 * sin(w1 * t + p1) + a2 * sin(w2 * t + p2),
                b0 * sin(v0 * t + q0) + b1 * sin(v1 * t + q1) + b2 * sin(v2 * t + q2),
                c0 * sin(u0 * t + r0) + c1 * sin(u1 * t + r1) + c2 * sin(u2 * t + r2))
