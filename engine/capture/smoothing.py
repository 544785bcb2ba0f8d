"""One Euro filter (Casiez, Roussel & Vogel, CHI 2012), vectorised over channels.

A low-pass whose cutoff rises with speed: still faces do not jitter, fast mouth and
head motion is not smeared. Per channel: fc = min_cutoff + beta * |dx/dt| (dx/dt itself
low-passed at d_cutoff), alpha = 1 / (1 + 1 / (2*pi*fc*dt)). Timestamps, not frame
counts, drive it, so irregular camera frame times are handled.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroParams:
    min_cutoff: float  # Hz at rest: lower = steadier, laggier
    beta: float  # how fast the cutoff rises with speed (per unit/s)
    d_cutoff: float = 1.0  # Hz for the speed estimate


# Documented defaults (docs/capture.md). Blendshapes are 0..1; angles are radians; metres.
WEIGHTS = OneEuroParams(min_cutoff=3.0, beta=1.0)
ROTATION = OneEuroParams(min_cutoff=1.5, beta=0.5)
TRANSLATION = OneEuroParams(min_cutoff=1.0, beta=4.0)


def _alpha(cutoff, dt: float):
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))


class OneEuro:
    def __init__(self, params: OneEuroParams):
        self.p = params
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t = 0.0

    def reset(self) -> None:
        self.x = self.dx = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None:
            self.x, self.dx, self.t = x.copy(), np.zeros_like(x), t
            return x
        dt = max(t - self.t, 1e-4)
        self.t = t
        dx = (x - self.x) / dt
        self.dx = self.dx + _alpha(self.p.d_cutoff, dt) * (dx - self.dx)
        cutoff = self.p.min_cutoff + self.p.beta * np.abs(self.dx)
        self.x = self.x + _alpha(cutoff, dt) * (x - self.x)
        return self.x
