"""The interface every TTS backend implements, and what it returns.

A backend makes audio *and* says which phone it spoke when: the mouth is driven from those timings
(engine/expression/phones/timing.py: mouth_track), never guessed back from the audio.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.expression.phones.timing import Phone


class VoiceMissing(Exception):
    """A voice is configured but its files are not there (-> FAILED_PRECONDITION, message names the fix)."""


class TtsError(Exception):
    """Synthesis failed for this text (-> INVALID_ARGUMENT or INTERNAL, message says which)."""


@dataclass(frozen=True)
class Voice:
    id: str  # "backend:name", what a client sends as SpeakRequest.voice
    language: str  # BCP-47, lowercase, e.g. "en-us", "cmn", "de"
    engine: str  # backend name
    sample_rate: int
    description: str = ""
    missing: str = ""  # non-empty: the voice's files are missing; the text says how to install them

    def as_dict(self) -> dict:
        return {"id": self.id, "language": self.language, "engine": self.engine, "sample_rate": self.sample_rate,
                "description": self.description, "missing": self.missing}


@dataclass
class Synthesis:
    """One sentence: mono float32 audio at sample_rate, phones on its own clock (0 = first sample)."""
    audio: np.ndarray
    sample_rate: int
    phones: list[Phone]
    warnings: list[str] = field(default_factory=list)


class TtsBackend:
    """A family of voices. One instance per worker process; synth() is called from one thread."""

    name = ""

    def voices(self) -> list[Voice]:
        raise NotImplementedError

    def synth(self, text: str, voice: Voice, rate: float) -> Synthesis:
        """Plain text (one sentence, no markup) -> audio + phone timings. rate: 1 = the voice's normal
        speed, 0.5..2. Raise VoiceMissing if the voice's files are gone, TtsError if the text cannot be spoken."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def phones_from_starts(starts: list[tuple[float, str]], end_s: float) -> list[Phone]:
    """[(start s, label)] in time order -> Phones ending where the next begins (the last at end_s)."""
    out = []
    for i, (s, label) in enumerate(starts):
        e = starts[i + 1][0] if i + 1 < len(starts) else end_s
        if e > s:
            out.append(Phone(s, e, label))
    return out
