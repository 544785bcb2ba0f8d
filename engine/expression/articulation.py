"""Per-frame articulation controls for dsp-v1: band energies -> smoothed mouth controls.

Input per frame: the band sums of features.analyze(). Output per frame: nine
smoothed controls in 0..1 (see the channel constants) that dsp.py maps onto
blendshapes. The rules are hand-set heuristics, not a trained model.

This runs per frame in plain Python on floats on purpose: a streaming push
completes one or two frames, and at that size a scalar expression costs
~0.05 us where a numpy call costs ~1 us. The state (level history, filters)
is sequential anyway, so the output does not depend on how frames are batched.
"""
from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

from engine.expression import features as ft

# Output channels.
OPEN, CLOSE, ROUND, SPREAD, FRIC_S, FRIC_SH, FRIC_F, EMPH, ACT = range(9)
NCTRL = 9

# Attack / release time constants (s) per channel.
TAU = (
    (0.022, 0.045),  # open: quick; the look-ahead window already leads the audio
    (0.012, 0.035),  # closure: lips seal fast
    (0.045, 0.080),  # round
    (0.045, 0.080),  # spread
    (0.025, 0.050),  # s
    (0.030, 0.060),  # sh
    (0.025, 0.050),  # f / v / th
    (0.060, 0.250),  # emphasis (brows, nods): slow release
    (0.030, 0.350),  # speech activity: holds through short gaps
)

# Level statistics.
STATS_S = 2.5  # noise floor and speaker peak are taken over this much past
RECENT_S = 0.15  # "was there speech just before?" for closures after a syllable
FLOOR_Q = 0.10  # the noise floor is the 10th percentile of frame levels (robust to dropouts)
PEAK_Q = 0.03  # the speaker's peak ignores the loudest 3% (clicks, pops)
# Before STATS_S of audio exists the peak is unknown: assume speech up to a level
# decaying from -24 to -60 dB, so that the first quiet onset does not read as "loudest".
PRIOR_DB0, PRIOR_SLOPE = -24.0, -36.0 / STATS_S

_DB = 10.0 / math.log(10.0)
_LN_EPS = math.log(ft.EPS)
_ZCR_K = 2.0 / 16000.0  # Rice: crossings per sample = 2 * rms frequency / sample rate


class MouthTracker:
    """Sequential per-stream state: level history, gates, attack/release filters."""

    def __init__(self, fps: int):
        self.fps = fps
        self.m_stats = max(2, int(round(STATS_S * fps)))
        self._levels: deque[float] = deque()
        self._sorted: list[float] = []
        self._recent: deque[float] = deque(maxlen=max(2, int(round(RECENT_S * fps))))
        dt = 1.0 / fps
        self._att = [1.0 - math.exp(-dt / a) for a, _ in TAU]
        self._rel = [1.0 - math.exp(-dt / r) for _, r in TAU]
        self._y = [0.0] * NCTRL
        self._speaking = False

    def process(self, bands: list[list[float]], k0: int) -> tuple[list[list[float]], list[bool]]:
        """Band rows of frames k0, k0+1, ... -> (smoothed controls per frame, pause onset per frame).

        Hot loop: ramps are written out inline as ``v = (x - lo) * inv`` followed by a
        clamp, which is ~3x cheaper than calling _r().
        """
        log10, sqrt = math.log10, math.sqrt
        eps = ft.EPS
        levels, srt, recent = self._levels, self._sorted, self._recent
        m_stats = self.m_stats
        att, rel, y = self._att, self._rel, self._y
        speaking = self._speaking
        inv_fps = 1.0 / self.fps
        out: list[list[float]] = []
        pauses: list[bool] = []
        for i, b in enumerate(bands):
            tot, low, _mid, hi, naslo, nashi, sh, s, f1n, f1d, f2n, f2d, fsq, pall = b
            t = (k0 + i) * inv_fps
            e = 10.0 * log10(tot + eps)
            tilt = 10.0 * log10((hi + eps) / (low + eps))  # energy above 2.5 kHz vs below 900 Hz
            f1 = f1n / (f1d + eps)
            f2 = f2n / (f2d + eps)
            zcr = _ZCR_K * sqrt(fsq / (pall + eps))

            # Level statistics over the past STATS_S (sorted window kept incrementally).
            levels.append(e)
            insort(srt, e)
            if len(levels) > m_stats:
                del srt[bisect_left(srt, levels.popleft())]
            nv = len(srt) - 1
            floor = srt[int(FLOOR_Q * nv)]
            peak = srt[nv - int(PEAK_Q * nv)]
            prior = PRIOR_DB0 + PRIOR_SLOPE * t
            if prior > peak:
                peak = prior
            recent.append(e)
            rpeak = max(recent)

            # Gates: speech is well above the adaptive floor and above an absolute -65 dBFS.
            v = (e + 68.0) * 0.1
            absg = 0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v
            snr = e - floor
            v = (snr - 6.0) * 0.125
            gate = (0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v) * absg
            v = (rpeak - floor - 6.0) * 0.125
            w = (rpeak + 68.0) * 0.1
            rgate = (0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v) * (0.0 if w <= 0.0 else 1.0 if w >= 1.0 else w)
            # Voiced = low-frequency dominated (tilt < -12 dB) and few zero crossings.
            v = -tilt / 12.0
            w = (zcr - 0.25) * 5.0
            voiced = (0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v) * (1.0 - (0.0 if w <= 0.0 else 1.0 if w >= 1.0 else w))
            # Frication: unvoiced, relatively much energy above 2.5 kHz (tilt > -12..2 dB: lax,
            # so that band-limited recordings still qualify), 5-12 dB over the floor.
            v = (snr - 5.0) / 7.0
            w = (tilt + 12.0) / 14.0
            fric = ((0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v) * absg * (1.0 - voiced)
                    * (0.0 if w <= 0.0 else 1.0 if w >= 1.0 else w))
            v = (tilt - 6.0) * 0.1
            sib = fric * (0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v)  # strong: s, sh, z
            v = (10.0 * log10((sh + eps) / (s + eps)) + 2.0) * 0.125
            shness = 0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v  # frication peak low (sh) or high (s)
            # Closure 1: a drop well below the level of the last 150 ms of speech. Lips close
            # for p b m, but also for t d k g: the audio cannot tell where the closure is.
            v = (rpeak - e - 8.0) / 12.0
            closure = rgate * (0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v) * (1.0 - fric)
            # Closure 2: nasal murmur: voiced, energy only below ~450 Hz, well below the peak.
            v = (10.0 * log10((naslo + eps) / (nashi + eps)) - 17.0) * 0.1
            w = (peak - e - 7.0) / 6.0
            nasal = (gate * voiced * (0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v)
                     * (0.0 if w <= 0.0 else 1.0 if w >= 1.0 else w))
            if nasal > closure:
                closure = nasal
            v = (f1 - 380.0) / 340.0
            f1_open = 0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v  # high F1 = open vowel
            vowel = gate * voiced * (1.0 - closure)
            v = (e - peak + 26.0) / 23.0
            loud = 0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v  # level relative to the speaker's peak
            # Rounded: low F2 (< 900-1200 Hz), but not /a/ (low F2 too, with F1 > 560-720 Hz).
            v = (f2 - 900.0) / 300.0
            w = (f1 - 560.0) / 160.0
            rounded = vowel * (1.0 - (0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v)) * (
                1.0 - (0.0 if w <= 0.0 else 1.0 if w >= 1.0 else w))
            v = (f2 - 1650.0) / 450.0
            spread = vowel * (0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v) * (1.0 - f1_open)
            v = (e - peak + 7.0) / 6.0  # within a few dB of the peak: a stressed syllable
            emph = gate * voiced * (0.0 if v <= 0.0 else 1.0 if v >= 1.0 else v)

            tg = (
                gate * loud * (0.4 + 0.6 * f1_open) * (1.0 - closure) * (1.0 - 0.75 * fric),
                closure,
                rounded,
                spread,
                sib * (1.0 - shness),
                sib * shness,
                fric - sib,  # weak, flat frication: f, v, th
                emph,
                gate,
            )
            y = [yc + (tc - yc) * (a if tc > yc else rl) for yc, tc, a, rl in zip(y, tg, att, rel)]
            out.append(y)
            # Pause onset (activity falls through 0.3 after exceeding 0.6): a cue for blinks.
            a = y[ACT]
            pause = speaking and a < 0.3
            if pause:
                speaking = False
            elif a > 0.6:
                speaking = True
            pauses.append(pause)
        self._y = list(y)  # the caller may extend the rows it got
        self._speaking = speaking
        return out, pauses
