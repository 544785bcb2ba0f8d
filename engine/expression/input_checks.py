"""Warnings about a stream's input that every expression engine gives (they reach StreamStatus.warnings).

One instance per stream; ``check`` sees every pushed chunk (16 kHz mono float32) and returns the warnings
that chunk raises, each at most once per stream:

* clipping: at least ``CLIP_MIN_SAMPLES`` samples at full scale (one click is not clipping);
* very low level: the first ``QUIET_AFTER_S`` seconds peak below -40 dBFS but are not digital silence
  (a muted microphone, a wrong channel, a gain problem).
"""
from __future__ import annotations

import math

import numpy as np

from engine.expression.base import SAMPLE_RATE

CLIP_LEVEL = 0.999  # |x| at or above this counts as full scale
CLIP_MIN_SAMPLES = 10
QUIET_PEAK = 10 ** (-40 / 20)
QUIET_AFTER_S = 2.0
DIGITAL_SILENCE = 1e-5  # peaks below this are silence sent on purpose, not a quiet microphone


class InputMonitor:
    def __init__(self) -> None:
        self.total = 0
        self._clipped = 0
        self._warned_clip = False
        self._max_abs = 0.0
        self._level_decided = False

    def check(self, x: np.ndarray) -> list[str]:
        self.total += x.size
        if not x.size or (self._warned_clip and self._level_decided):
            return []
        peak = float(np.maximum.reduce(np.abs(x)))
        warnings = []
        if not self._warned_clip and peak >= CLIP_LEVEL:
            self._clipped += int(np.count_nonzero(np.abs(x) >= CLIP_LEVEL))
            if self._clipped >= CLIP_MIN_SAMPLES:
                self._warned_clip = True
                warnings.append(f"clipping detected: {100.0 * self._clipped / self.total:.2g}% of samples at full "
                                "scale so far; lower the input gain (mouth motion is less reliable on clipped audio)")
        if not self._level_decided:
            self._max_abs = max(self._max_abs, peak)
            if self.total >= QUIET_AFTER_S * SAMPLE_RATE:
                self._level_decided = True  # decided once, on the first seconds
                if DIGITAL_SILENCE < self._max_abs < QUIET_PEAK:
                    warnings.append(
                        f"input level is very low (peak {20 * math.log10(self._max_abs):.0f} dBFS over the first "
                        f"{self.total / SAMPLE_RATE:.1f} s); raise the input gain or check the microphone/channel "
                        "(mouth motion is less reliable below about -40 dBFS)")
        return warnings
