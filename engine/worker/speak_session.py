"""A Speak stream inside a worker: text -> sentences -> TTS audio + phone timings -> frames on the voice's clock.

One sentence per step (the server asks for the next one while the client plays this one). The mouth comes
from the TTS's own phone timings through the one phone -> mouth path (phones.timing.mouth_track) handed to
the expression engine's set_mouth_track; the engine's network mouth is not used, its blinks, gaze, head
drift and emphasis still follow the audio (docs/speak.md).
"""
from __future__ import annotations

import math
import time

import numpy as np

from engine.audio import resample
from engine.expression.base import SAMPLE_RATE, ExpressionEngine, Frames
from engine.expression.phones.timing import Phone
from engine.expression.visemes import NUM_VISEMES, VISEME_INDEX
from engine.rig import NUM_BONES
from engine.tts.base import TtsBackend, Voice
from engine.tts.text import Piece, pieces
from engine.worker.session import FrameCounter, ShiftedTrack, _concat, style_from
from engine.worker.handler import Replies, Session
from engine.worker.specs import Done, Opened, SpeakSpec

EASE_S = 0.25  # barge-in: the face goes from where it was to rest over this long
SENTENCE_GAP_S = 0.3  # = timing.SIL_FULL_S: a pause this long brings the mouth fully to rest
LEAD_IN_S = 0.12  # = timing.MAX_LEAD_S: the furthest a phone's lips are anticipated
MIN_RATE, MAX_RATE = 0.5, 2.0  # speaking_rate's range (SSML prosody may ask for more; it is clamped)
HISTORY_S = 30.0  # frames kept for barge-in (a stop further back than this eases from the oldest kept)


def _pad_to_rest(audio: np.ndarray, rate: int, phones: list[Phone], first: bool) -> tuple[np.ndarray, float]:
    """-> (audio, seconds of silence put in front). After a sentence's last spoken phone at least SENTENCE_GAP_S
    of silence: the pause between sentences (each is synthesised alone, so the TTS's own pause at a full stop
    may be cut) and, after the last one, the time the mouth needs to come to rest. Before the first sentence
    LEAD_IN_S from its first phone, so the lips can anticipate it from rest."""
    spoken = [p for p in phones if p.label not in ("", "sil", "pau")]
    tail = audio.size / rate - (max(p.end_s for p in spoken) if spoken else 0.0)
    after = max(0, int(round((SENTENCE_GAP_S - tail) * rate)))
    before = max(0, int(round((LEAD_IN_S - min(p.start_s for p in spoken)) * rate))) if first and spoken else 0
    if after or before:
        audio = np.concatenate((np.zeros(before, np.float32), audio, np.zeros(after, np.float32)))
    return audio, before / rate


class SpeakSession(Session):
    """Its sentences are run by the worker's deadline scheduler (scheduled): each NEXT is one sentence."""

    scheduled = True

    def __init__(self, engine: ExpressionEngine, backend: TtsBackend, voice: Voice, spec: SpeakSpec):
        self.backend, self.voice = backend, voice
        self.sample_rate = voice.sample_rate
        self.fps = spec.fps
        self.rate = spec.speaking_rate
        self.stream = engine.open(self.fps, style_from(spec.style))
        if not hasattr(self.stream, "set_mouth_track"):
            raise ValueError(f"engine {engine.name} cannot take phone timings; Speak needs learned-v2 or learned-v1")
        self.pieces, self.warnings = pieces(spec.text)
        if not self.pieces:
            self.warnings.append("the text has nothing to say once markup is removed; a short pause was sent")
            self.pieces = [Piece(pause_s=0.2)]
        self.samples = 0  # audio sent, on the voice's clock
        self.counter = FrameCounter(self.sample_rate, self.fps)
        self._prev: list[Phone] = []  # the previous sentence's phones (coarticulation across the boundary)
        self._history: list[Frames] = []
        self.synthesis_s = 0.0
        self.opened_at = time.monotonic()  # the worker's deadlines (main.py: _next_deferred)
        self.started: float | None = None  # when the first audio left
        self.sentences = 0

    @property
    def audio_seconds(self) -> float:
        return self.samples / self.sample_rate

    def opened(self) -> Opened:
        eng = self.stream.engine
        return Opened(engine=eng.name, lookahead_s=0.0, viseme_names=list(eng.viseme_names), voice=self.voice.id,
                      language=self.voice.language, tts_engine=self.voice.engine, sample_rate=self.voice.sample_rate)

    def next(self, out: Replies) -> None:
        """One sentence: its audio (TRACK), then the frames it completes (FRAMES; the server's cue for NEXT)."""
        start, pcm, frames, last = self.step()
        if self.started is None:
            self.started = time.monotonic()  # the client starts playing about now
        out.track(start / self.sample_rate, self.sample_rate, 1, pcm.tobytes())
        out.frames(self, frames, last)
        if last:
            self.finish(out, self._done())

    def hush(self, out: Replies, at_time: float) -> None:
        out.frames(self, self.stop(at_time), True)
        self.finish(out, self._done(stopped_at=self.audio_seconds))

    def _done(self, stopped_at: float = -1.0) -> Done:
        return Done(audio_seconds=self.audio_seconds, warnings=self.warnings, sentences=self.sentences,
                    synthesis_seconds=self.synthesis_s, stopped_at=stopped_at)

    def step(self) -> tuple[int, np.ndarray, Frames, bool]:
        """The next sentence -> (its first sample, its PCM16 samples, the frames now complete, last?)."""
        piece = self.pieces.pop(0)
        start = self.samples
        t0 = start / self.sample_rate
        if piece.text:
            began = time.perf_counter()
            rate = min(MAX_RATE, max(MIN_RATE, self.rate * piece.rate))
            if rate != self.rate * piece.rate:
                msg = (f"SSML prosody rate times speaking_rate is {self.rate * piece.rate:g}, outside "
                       f"{MIN_RATE:g}..{MAX_RATE:g}; {rate:g} was used")
                if msg not in self.warnings:
                    self.warnings.append(msg)
            syn = self.backend.synth(piece.text, self.voice, rate)
            self.synthesis_s += time.perf_counter() - began
            self.sentences += 1
            audio, lead = _pad_to_rest(syn.audio, syn.sample_rate, syn.phones, first=start == 0)
            phones = [Phone(p.start_s + t0 + lead, p.end_s + t0 + lead, p.label) for p in syn.phones]
            self.warnings.extend(w for w in syn.warnings if w not in self.warnings)
        else:
            audio, phones = np.zeros(int(round(piece.pause_s * self.sample_rate)), np.float32), []
        self.samples += audio.size
        # The track spans the previous sentence too: its last phones and this one's first coarticulate, and
        # the previous sentence's last frames (held back by the engine's look-ahead) are emitted now.
        self.stream.set_mouth_track(ShiftedTrack(self._prev + phones))
        self._prev = phones
        frames = self.stream.push(resample(audio, self.sample_rate, SAMPLE_RATE) if audio.size else audio)
        last = not self.pieces
        if last:
            frames = self.counter.fit_final(_concat(frames, self.stream.finish()), self.samples)
        else:
            self.counter.track(frames)
        self.warnings.extend(frames.warnings)
        self._remember(frames)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
        return start, pcm, frames, last

    def stop(self, at_time: float) -> Frames:
        """Barge-in at at_time (s, the client's playback position): frames from there ease the face to rest."""
        emitted = self._history[-1].first_index + len(self._history[-1]) if self._history else 0
        k0 = min(max(0, int(math.ceil(at_time * self.fps - 1e-9))), emitted)
        w0, r0, v0 = self._frame(k0)
        n = max(1, int(math.ceil(EASE_S * self.fps)))
        u = np.arange(1, n + 1) / n
        s = (u * u * (3.0 - 2.0 * u))[:, None]  # smoothstep: no jump at either end
        w = (w0[None] * (1.0 - s)).astype(np.float32)
        ident = np.zeros((NUM_BONES, 4), np.float32)
        ident[:, 3] = 1.0
        q = r0[None] * (1.0 - s[:, :, None]) + ident[None] * s[:, :, None]
        q = (q / np.linalg.norm(q, axis=-1, keepdims=True)).astype(np.float32)
        rest_v = np.zeros(NUM_VISEMES, np.float32)
        rest_v[VISEME_INDEX["sil"]] = 1.0
        vis = (v0[None] * (1.0 - s) + rest_v[None] * s).astype(np.float32)
        self.samples = min(self.samples, int(round(at_time * self.sample_rate)))
        return Frames(k0, w, q, None, visemes=vis)

    def _frame(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        for f in reversed(self._history):
            if f.first_index <= k < f.first_index + len(f):
                i = k - f.first_index
                vis = f.visemes[i] if f.visemes is not None else np.eye(NUM_VISEMES, dtype=np.float32)[0]
                return f.weights[i], f.rotations[i], vis
        if self._history and len(self._history[-1]):  # past the newest frame (or older than HISTORY_S): nearest
            f = self._history[-1] if k >= self._history[-1].first_index else self._history[0]
            i = -1 if f is self._history[-1] else 0
            vis = f.visemes[i] if f.visemes is not None else np.eye(NUM_VISEMES, dtype=np.float32)[0]
            return f.weights[i], f.rotations[i], vis
        rot = np.zeros((NUM_BONES, 4), np.float32)
        rot[:, 3] = 1.0
        return np.zeros(52, np.float32), rot, np.eye(NUM_VISEMES, dtype=np.float32)[0]

    def _remember(self, frames: Frames) -> None:
        if len(frames):
            self._history.append(frames)
        newest = self._history[-1].first_index + len(self._history[-1]) if self._history else 0
        while self._history and newest - (self._history[0].first_index + len(self._history[0])) > HISTORY_S * self.fps:
            self._history.pop(0)
