"""Training data: espeak-ng utterances -> augmented 16 kHz audio -> log-mel + per-10 ms viseme labels.

Every utterance is synthesised with a random language, voice variant, rate,
pitch and pitch range, then augmented so that the model transfers from
formant synthesis to real voices and rooms: level (-45..-1 dBFS peak),
leading/trailing silence, spectral tilt, room reverb (synthetic exponential
impulse responses), additive noise (white / pink / brown / babble from
another utterance, 0-35 dB SNR), 8 kHz telephone band, hard clipping. A
share of clips are negatives (digital silence, noise, hum, tones, chords)
labelled all 'sil' so that the mouth rests on non-speech.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import soxr

from engine.expression.learned_runtime import HOP, SAMPLE_RATE, LogMel, ModelConfig
from engine.expression.train.tts import LANGUAGES, VARIANTS, Espeak, random_text
from engine.expression.visemes import VISEME_INDEX, phone_to_viseme

SIL = VISEME_INDEX["sil"]


@dataclass
class Example:
    feats: np.ndarray  # (T, n_mels) float32
    labels: np.ndarray  # (T,) int64 viseme per 10 ms frame
    lang: str


def frame_labels(events: list[tuple[int, str]], sr: int, n_frames: int, offset_s: float, tempo: float
                 ) -> np.ndarray:
    """Viseme of the phone sounding at each 10 ms frame centre (16 kHz clock)."""
    labels = np.full(n_frames, SIL, np.int64)
    t = np.arange(n_frames) * HOP / SAMPLE_RATE
    cur = "sil"
    bounds = []
    for sample, phone in events:
        v = phone_to_viseme(phone)
        cur = v if v is not None else cur
        bounds.append((offset_s + sample / sr / tempo, VISEME_INDEX[cur]))
    for i, (start, v) in enumerate(bounds):
        end = bounds[i + 1][0] if i + 1 < len(bounds) else np.inf
        labels[(t >= start) & (t < end)] = v
    return labels


def _colored_noise(n: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    w = rng.standard_normal(n)
    if kind == "white":
        return w
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1] if n > 1 else 1.0
    spec = np.fft.rfft(w) / (np.sqrt(f) if kind == "pink" else f)
    x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-12)


def _reverb(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rt60 = rng.uniform(0.1, 0.7)
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0 / rng.uniform(0.3, 1.0)
    wet = np.convolve(x, ir)[: x.size]
    wet *= np.std(x) / (np.std(wet) + 1e-12)
    return wet


def _tilt(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(-0.7, 0.7)  # first-order pre-/de-emphasis
    y = x.copy()
    y[1:] -= a * x[:-1]
    return y * (np.std(x) / (np.std(y) + 1e-12))


def augment(x: np.ndarray, rng: np.random.Generator, babble: np.ndarray | None) -> np.ndarray:
    x = x.astype(np.float64)
    if rng.random() < 0.4:
        x = _tilt(x, rng)
    if rng.random() < 0.35:
        x = _reverb(x, rng)
    if rng.random() < 0.2:  # telephone: 8 kHz band limit
        x = soxr.resample(soxr.resample(x, SAMPLE_RATE, 8000), 8000, SAMPLE_RATE)[: x.size]
        if x.size < 1:
            x = np.zeros(1)
    sig = np.sqrt(np.mean(x ** 2)) + 1e-9
    if rng.random() < 0.65:
        kind = rng.choice(["white", "pink", "brown", "babble"])
        if kind == "babble" and babble is not None and babble.size > 0:
            nz = np.resize(babble[::-1], x.size).astype(np.float64)
            nz /= np.std(nz) + 1e-12
        else:
            nz = _colored_noise(x.size, rng, "white" if kind == "babble" else kind)
        snr = rng.uniform(0.0, 35.0)
        x = x + nz * sig * 10 ** (-snr / 20)
    peak_db = rng.uniform(-45.0, -1.0)
    x = x * (10 ** (peak_db / 20) / (np.abs(x).max() + 1e-12))
    if rng.random() < 0.05:
        x = np.clip(x * rng.uniform(2, 10), -1, 1)
    return x.astype(np.float32)


def negative(rng: np.random.Generator) -> np.ndarray:
    """Non-speech: silence, noise, mains hum, steady/gliding tones, chords (labelled sil)."""
    n = int(rng.uniform(1.0, 4.0) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    kind = rng.integers(0, 5)
    if kind == 0:
        x = np.zeros(n)
    elif kind == 1:
        x = _colored_noise(n, rng, rng.choice(["white", "pink", "brown"]))
    elif kind == 2:
        f = rng.choice([50.0, 60.0])
        x = sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 6))
    elif kind == 3:
        f0 = rng.uniform(100, 2000) * (1 + rng.uniform(-0.3, 0.3) * t / t[-1])
        x = np.sin(2 * np.pi * np.cumsum(f0) / SAMPLE_RATE)
    else:  # a few notes of a synthetic melody / chord with harmonics
        x = np.zeros(n)
        step = int(rng.uniform(0.15, 0.6) * SAMPLE_RATE)
        for s in range(0, n, step):
            for f in rng.uniform(110, 880, size=rng.integers(1, 4)):
                seg = t[s:s + step] - t[s]
                x[s:s + step] += sum(np.sin(2 * np.pi * f * k * seg) / k ** 1.5 for k in range(1, 6)) * np.exp(-3 * seg)
    if x.any():
        x = x * (10 ** (rng.uniform(-50, -3) / 20) / (np.abs(x).max() + 1e-12))
    return x.astype(np.float32)


def build(n_utts: int, seed: int, cfg: ModelConfig, languages: list[str] | None = None,
          negatives: float = 0.08, log=print) -> list[Example]:
    """Synthesise, augment and featurise ``n_utts`` utterances (plus negatives). Deterministic in seed."""
    tts = Espeak()
    mel = LogMel(cfg)
    langs = languages or list(LANGUAGES)
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    prev = None
    for i in range(n_utts):
        if rnd.random() < negatives:
            x = negative(rng)
            n = -(-x.size // HOP)
            out.append(Example(mel.whole(x), np.full(n, SIL, np.int64), "none"))
            continue
        lang = rnd.choice(langs)
        text = random_text(lang, rnd)
        rate, pitch, prange = rnd.randint(100, 240), rnd.randint(15, 85), rnd.randint(20, 100)
        try:
            x, ev = tts.synth(text, lang + rnd.choice(VARIANTS), rate, pitch, prange)
        except ValueError:
            x, ev = tts.synth(text, lang, rate, pitch, prange)
        if x.size == 0 or any(p.startswith("(") for _, p in ev):  # skip language switches
            continue
        x = soxr.resample(x, tts.sample_rate, SAMPLE_RATE).astype(np.float32)
        lead, tail = rnd.uniform(0.0, 0.6), rnd.uniform(0.0, 0.6)
        x = np.concatenate([np.zeros(int(lead * SAMPLE_RATE), np.float32), x,
                            np.zeros(int(tail * SAMPLE_RATE), np.float32)])
        aug = augment(x, rng, prev)
        prev = x
        n = -(-aug.size // HOP)
        out.append(Example(mel.whole(aug), frame_labels(ev, tts.sample_rate, n, lead, 1.0), lang))
        if log and (i + 1) % 500 == 0:
            log(f"  data: {i + 1}/{n_utts} utterances")
    return out
