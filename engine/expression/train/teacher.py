"""A real-speech teacher: pocketsphinx's US-English acoustic model labels speech with phones.

The shipped pocketsphinx wheel carries an acoustic model trained on real
speech, a phone language model and a dictionary. Run offline over a whole
clip, its phone decoding (allphone search) or its forced alignment of a known
transcript gives the phone sounding every 10 ms; those labels are the
targets a small streaming network is trained on (train/real.py), so the
network learns real voices, rooms and microphones instead of a synthesiser's.

Frame convention: pocketsphinx frame f is the 10 ms step starting at sample
160 f; our log-mel step j is centred on sample 160 j, so label j is the phone
of pocketsphinx frame j (a 5 ms shift, under the label noise).
"""
from __future__ import annotations

import os

import numpy as np

from engine.expression.phones.align import FRAME_S, pcm16
from engine.expression.phones.arpabet import label_to_viseme
from engine.expression.phones.timing import Phone
from engine.expression.visemes import JAW, VISEME_INDEX

SIL = VISEME_INDEX["sil"]


def model_dir() -> str:
    import pocketsphinx

    return os.path.join(os.path.dirname(pocketsphinx.__file__), "model", "en-us")


class PhoneTeacher:
    """Phone decoding of whole clips (16 kHz mono float32). One per process; not thread-safe."""

    def __init__(self, lw: float = 2.0, pip: float = 0.3):
        from pocketsphinx import Decoder

        d = model_dir()
        self._dec = Decoder(hmm=os.path.join(d, "en-us"), allphone=os.path.join(d, "en-us-phone.lm.bin"),
                            lw=lw, pip=pip, beam=1e-20, pbeam=1e-20, backtrace=False, loglevel="ERROR")

    def phones(self, x: np.ndarray) -> list[Phone]:
        """Decoded phones (ARPAbet, SIL and fillers) on the clip's clock, the type the aligner gives too."""
        self._dec.start_utt()
        self._dec.process_raw(pcm16(np.asarray(x, np.float32)), full_utt=True)
        self._dec.end_utt()
        return [Phone(s.start_frame * FRAME_S, (s.end_frame + 1) * FRAME_S, s.word) for s in self._dec.seg()]


def frame_labels(phones: list[Phone], n_frames: int) -> np.ndarray:
    """Viseme index per 10 ms step, from decoded or aligned phones (silence where there is none)."""
    labels = np.full(n_frames, SIL, np.int64)
    for p in phones:
        labels[max(0, round(p.start_s / FRAME_S)): min(n_frames, round(p.end_s / FRAME_S))] = \
            VISEME_INDEX[label_to_viseme(p.label)]
    return labels


def jaw_target(labels: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Per-frame jaw opening of the labelled visemes, smoothed (coarticulation, ~30 ms)."""
    j = JAW[labels].astype(np.float64)
    r = int(3 * sigma)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    return np.convolve(np.pad(j, r, mode="edge"), k, mode="valid").astype(np.float32)


def teacher_jaw(x: np.ndarray, fps: int, n: int, teacher: PhoneTeacher | None = None) -> np.ndarray:
    """The teacher's own mouth, offline over the whole clip: decoded phones -> jaw per frame k (k / fps).
    A reference row for the evaluation (what the distilled network could reach), not a streaming engine."""
    teacher = teacher or PhoneTeacher()
    steps = -(-x.size // 160)
    jaw = jaw_target(frame_labels(teacher.phones(x), steps))
    return np.interp(np.arange(n) / fps * 100.0, np.arange(steps), jaw)
