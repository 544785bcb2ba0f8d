"""Phone timings -> a 10 ms mouth track (viseme weights + jaw), with coarticulation.

The one path from "which phone when" to the mouth, shared by the transcript mode (align.py), a TTS that
reports its phones, and training labels. No recogniser is imported here.

Model (docs/transcript.md): a dominance model in the spirit of Cohen & Massaro (1993), with the lip/jaw
split of JALI (Edwards et al. 2016). Each phone has a target (its viseme) and a dominance function over
time: flat at ``strength`` inside the phone, decaying exponentially before it (anticipation, time constant
``lead_s``) and after it (carry-over, ``lag_s``), cut to zero beyond MAX_LEAD_S / MAX_LAG_S. The viseme
weights at a step are the phones' dominances summed per viseme and normalised (so they sum to 1); the jaw
is the dominance-weighted mean of the phones' jaw targets with a separate jaw dominance. Lip closures and
labiodentals are strong and anticipate; rounding (O, U, CH, RR) anticipates furthest; tongue-only
consonants are weak for the lips and weaker still for the jaw, so the surrounding vowels show through.
Closures are then forced to their full pose at the middle of their own interval, because averaging would
otherwise leave a /b/ between two open vowels half open.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.expression.phones.arpabet import DIPHTHONGS, base_phone, label_to_viseme
from engine.expression.visemes import JAW, NUM_VISEMES, VISEME_INDEX

STEP_S = 0.01  # the learned engine's feature step: track step i is time i * STEP_S
MAX_LEAD_S = 0.12  # no target anticipates further than this (the longest measured lip anticipation)
MAX_LAG_S = 0.10
DIPHTHONG_SPLIT = 0.55  # a diphthong's first target holds this share of its duration
_SIL = VISEME_INDEX["sil"]


@dataclass(frozen=True)
class Phone:
    """One phone: [start_s, end_s) on the audio's clock and its label: a viseme name (VISEMES), an
    ARPAbet phone (stress digits allowed) or an IPA phone; '' or 'sil' is silence."""
    start_s: float
    end_s: float
    label: str


@dataclass(frozen=True)
class Dominance:
    strength: float  # dominance inside the phone (lips)
    lead_s: float  # anticipation time constant
    lag_s: float  # carry-over time constant
    jaw: float  # dominance of this phone's jaw target


# Per viseme. Lip-critical targets are strong, tongue-only ones weak (their jaw weaker still).
DOMINANCE: dict[str, Dominance] = {
    "PP": Dominance(1.0, 0.040, 0.030, 1.0),
    "FF": Dominance(0.9, 0.040, 0.030, 0.8),
    "O": Dominance(0.9, 0.060, 0.040, 0.7),
    "U": Dominance(0.9, 0.060, 0.040, 0.7),
    "CH": Dominance(0.7, 0.050, 0.030, 0.3),
    "RR": Dominance(0.6, 0.050, 0.030, 0.3),
    "aa": Dominance(0.7, 0.030, 0.030, 0.8),
    "E": Dominance(0.7, 0.030, 0.030, 0.8),
    "I": Dominance(0.7, 0.030, 0.030, 0.8),
    "TH": Dominance(0.5, 0.020, 0.020, 0.2),
    "SS": Dominance(0.4, 0.020, 0.020, 0.15),
    "DD": Dominance(0.3, 0.020, 0.020, 0.15),
    "nn": Dominance(0.3, 0.020, 0.020, 0.15),
    "kk": Dominance(0.3, 0.020, 0.020, 0.15),
    "sil": Dominance(0.6, 0.050, 0.050, 0.6),
}
SIL_FULL_S = 0.30  # a pause this long rests the mouth fully; shorter ones dominate in proportion
CLOSURES = ("PP", "FF")  # reach their full pose mid-phone whatever the neighbours
CLOSURE_EDGE_S = 0.02  # ...except this much at each edge (the lips travel), at most a quarter of the phone


@dataclass
class MouthTrack:
    """visemes (T, 15) float32, rows sum to 1; jaw (T,) float32 in 0..1; step i is time i * STEP_S."""
    visemes: np.ndarray
    jaw: np.ndarray

    def __len__(self) -> int:
        return self.jaw.shape[0]

    def at(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(visemes (N, 15), jaw (N,)) at times t_s, linearly interpolated; past either end: silence."""
        u = np.asarray(t_s, np.float64) / STEP_S
        i0 = np.floor(u).astype(np.int64)
        frac = (u - i0)[:, None]
        vis = np.concatenate((self.visemes, _rest(2)[0]))  # two rest rows: what lies outside the track
        jaw = np.concatenate((self.jaw, np.zeros(2, np.float32)))
        out = len(self)
        a = np.where((i0 >= 0) & (i0 < out), i0, out)
        b = np.where((i0 + 1 >= 0) & (i0 + 1 < out), i0 + 1, out)
        v = (1.0 - frac) * vis[a] + frac * vis[b]
        j = (1.0 - frac[:, 0]) * jaw[a] + frac[:, 0] * jaw[b]
        return v, j


def _rest(n: int) -> tuple[np.ndarray, np.ndarray]:
    v = np.zeros((n, NUM_VISEMES), np.float32)
    v[:, _SIL] = 1.0
    return v, np.zeros(n, np.float32)


def targets(phones: list[Phone]) -> list[tuple[float, float, str]]:
    """Phones -> (start, end, viseme) targets in time order: diphthongs split in two, gaps filled with
    silence, zero-length and inverted phones dropped, a pause appended after the last phone."""
    out: list[tuple[float, float, str]] = []
    t = 0.0
    for p in sorted(phones, key=lambda p: p.start_s):
        s, e = max(float(p.start_s), t), float(p.end_s)
        if not (math.isfinite(s) and math.isfinite(e)) or e <= s:
            continue
        if s > t + 1e-9:
            out.append((t, s, "sil"))
        split = DIPHTHONGS.get(base_phone(p.label)) if p.label.isascii() else None
        if split:
            m = s + DIPHTHONG_SPLIT * (e - s)
            out += [(s, m, split[0]), (m, e, split[1])]
        else:
            out.append((s, e, label_to_viseme(p.label)))
        t = e
    if out and out[-1][2] != "sil":
        out.append((t, t + SIL_FULL_S, "sil"))  # the mouth comes to rest after the last phone
    return out


def mouth_track(phones: list[Phone], n_steps: int | None = None) -> MouthTrack:
    """Phone timings -> the mouth every STEP_S, steps 0..n_steps-1 (default: to the last phone's end).

    Steps before the first phone and after the last are silence (rest)."""
    tg = targets(phones)
    end = tg[-1][1] if tg else 0.0
    T = int(n_steps if n_steps is not None else math.ceil(end / STEP_S) + 1)
    if T <= 0:
        return MouthTrack(*_rest(0))
    t = np.arange(T) * STEP_S
    lip = np.zeros((T, NUM_VISEMES))
    jaw_num = np.zeros(T)
    jaw_den = np.zeros(T)
    cores: list[tuple[int, int, int]] = []
    for s, e, v in tg:
        d = DOMINANCE[v]
        scale = min(1.0, (e - s) / SIL_FULL_S) if v == "sil" else 1.0
        i0 = max(0, int(math.floor((s - MAX_LEAD_S) / STEP_S)))
        i1 = min(T, int(math.ceil((e + MAX_LAG_S) / STEP_S)) + 1)
        if i0 >= i1:
            continue
        tt = t[i0:i1]
        shape = np.where(tt < s, np.exp(-(s - tt) / d.lead_s), np.where(tt > e, np.exp(-(tt - e) / d.lag_s), 1.0))
        shape[(tt < s - MAX_LEAD_S) | (tt > e + MAX_LAG_S)] = 0.0
        k = VISEME_INDEX[v]
        lip[i0:i1, k] += d.strength * scale * shape
        jaw_num[i0:i1] += d.jaw * scale * shape * JAW[k]
        jaw_den[i0:i1] += d.jaw * scale * shape
        if v in CLOSURES:
            edge = min(CLOSURE_EDGE_S, (e - s) / 4.0)
            c0, c1 = math.ceil((s + edge) / STEP_S - 1e-9), math.floor((e - edge) / STEP_S + 1e-9)
            if c1 < c0:  # shorter than a step: the step nearest its middle
                c0 = c1 = int(round((s + e) / 2 / STEP_S))
            cores.append((max(0, c0), min(T - 1, c1), k))
    total = lip.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 1e-12
    lip[empty, _SIL] = 1.0
    vis = lip / np.where(empty[:, None], 1.0, total)
    jaw = np.where(jaw_den > 1e-12, jaw_num / np.maximum(jaw_den, 1e-12), 0.0)
    for c0, c1, k in cores:
        if c1 >= c0:
            vis[c0:c1 + 1] = 0.0
            vis[c0:c1 + 1, k] = 1.0
            jaw[c0:c1 + 1] = JAW[k]
    return MouthTrack(vis.astype(np.float32), np.clip(jaw, 0.0, 1.0).astype(np.float32))
