"""Per-stream state inside a worker: decode -> resample -> engine -> timed frames."""
from __future__ import annotations

import logging

import numpy as np

from engine.audio import MAX_DECODE_SECONDS, AudioError, AudioTooLong, PcmDecoder, StreamResampler, decode_file, resample
from engine.expression.base import SAMPLE_RATE, ExpressionEngine, Frames, Style
from engine.rig import NUM_BLENDSHAPES, NUM_BONES
from engine.worker.handler import Replies, Session
from engine.worker.specs import ClipSpec, Done, Opened, StreamSpec, StyleSpec

log = logging.getLogger("engine.worker")


def style_from(spec: StyleSpec) -> Style:
    """The validated style of a spec, which the engines take as is."""
    return spec


def expression_opened(engine: ExpressionEngine, extra_delay_s: float) -> Opened:
    return Opened(engine=engine.name, lookahead_s=engine.lookahead_s + extra_delay_s,
                  viseme_names=list(engine.viseme_names))


class LiveSession(Session):
    """A StreamExpression stream: PCM chunks in, frames out as soon as they are complete. Its audio goes through
    the worker's batch (decode, engine.push_many, deliver), the rest through the handler calls below."""

    def __init__(self, engine: ExpressionEngine, spec: StreamSpec):
        self.sample_rate = spec.sample_rate
        self.fps = spec.fps
        self.decoder = PcmDecoder(spec.encoding, spec.channels)
        self.resampler = StreamResampler(self.sample_rate, SAMPLE_RATE)
        self.engine = engine
        self.stream = engine.open(self.fps, style_from(spec.style))
        self.counter = FrameCounter(self.sample_rate, self.fps)
        self.warnings: list[str] = []
        self.phone_track = LivePhones()

    def opened(self) -> Opened:
        # The look-ahead a client sees includes the resampler's delay for its rate.
        return expression_opened(self.engine, self.resampler.delay_s)

    def phones(self, rows: list[list]) -> None:
        self.warnings.extend(self.phone_track.add(self.stream, rows, self.audio_seconds))

    def decode(self, data: bytes) -> np.ndarray:
        """PCM bytes -> the engine's 16 kHz mono samples (AudioError on bad bytes)."""
        return self.resampler.process(self.decoder.decode(data))

    def deliver(self, frames: Frames) -> Frames:
        """Frames the engine gave for decode()'s samples -> counted, warnings noted."""
        return self._note(self.counter.track(frames))

    def end(self, out: Replies) -> None:
        """The end of this stream's audio alone (the worker batches streams that end together: end_audio, the
        engine's push_many + finish_many, ended)."""
        tail = self.stream.push(self.end_audio())
        self.ended(out, tail, self.stream.finish())

    def end_audio(self) -> np.ndarray:
        """The resampler's last samples (to push before the engine's finish); notes input warnings."""
        self.warnings.extend(self.decoder.downmix.warnings)
        dropped = self.decoder.pending_bytes
        if dropped:
            self.warnings.append(
                f"the audio ended mid-sample: {dropped} trailing bytes (less than one "
                f"{self.decoder.frame_bytes}-byte sample frame) were ignored")
        return self.resampler.process(np.zeros(0, np.float32), last=True)

    def ended(self, out: Replies, tail: Frames, rest: Frames) -> None:
        """The frames of end_audio's push (tail) and of the engine's finish (rest): the last block, then DONE."""
        out.frames(self, self._note(self.counter.fit_final(_concat(tail, rest), self.decoder.samples_in)), True)
        self.finish(out, Done(audio_seconds=self.audio_seconds, warnings=self.warnings))

    @property
    def audio_seconds(self) -> float:
        return self.decoder.samples_in / self.sample_rate

    def _note(self, frames: Frames) -> Frames:
        self.warnings.extend(frames.warnings)
        return frames


class ClipSession(Session):
    """An AnimateClip request: the decoded file is animated block by block, on demand (NEXT)."""

    BLOCK_SECONDS = 1.0

    def __init__(self, engine: ExpressionEngine, spec: ClipSpec, data: bytes, tick=None):
        limit = spec.max_audio_seconds
        # Decoding stops a little past the server's limit (not at a fixed hour), so an over-long file costs
        # only that much time and memory before the error below.
        try:
            x, self.sample_rate, decode_warnings = decode_file(
                data, spec.format_hint, max_seconds=limit + 1.0 if limit else MAX_DECODE_SECONDS)
        except AudioTooLong:
            if not limit:
                raise
            raise AudioError(f"audio_file is longer than {limit + 1.0:g} s, over the server's limit of {limit:.0f} s "
                             "(max_audio_seconds); split it or use StreamExpression", "audio_file") from None
        self.audio_seconds = x.shape[0] / self.sample_rate
        if x.shape[0] == 0:
            raise AudioError("audio_file decodes to zero samples; send a file that holds audio", "audio_file")
        if limit and self.audio_seconds > limit:
            raise AudioError(f"audio_file is {self.audio_seconds:.1f} s long, over the server's limit of "
                             f"{limit:.0f} s (max_audio_seconds); split it or use StreamExpression",
                             "audio_file")
        if not np.isfinite(x).all():
            raise AudioError("audio_file decodes to non-finite samples (NaN/Inf); re-encode the file", "audio_file")
        self.fps = spec.fps
        self.samples = x.shape[0]
        self.counter = FrameCounter(self.sample_rate, self.fps)
        self.audio16k = resample(x, self.sample_rate, SAMPLE_RATE)
        self.engine = engine
        self.stream = engine.open(self.fps, style_from(spec.style))
        self.pos = 0
        self.warnings: list[str] = list(decode_warnings)
        if spec.phones:  # external phone timings win over a transcript: they need no aligner
            self.warnings.extend(apply_phones(self.stream, self.audio16k, spec.phones))
        elif spec.transcript:
            self.warnings.extend(apply_transcript(self.stream, self.audio16k, spec.transcript, spec.language, tick))

    def opened(self) -> Opened:
        return expression_opened(self.engine, 0.0)

    def begin(self, out: Replies) -> None:
        self.next(out)

    def next(self, out: Replies) -> None:
        frames, last = self.next_block()
        out.frames(self, frames, last)
        if last:
            self.finish(out, Done(audio_seconds=self.audio_seconds, warnings=self.warnings))

    def next_block(self) -> tuple[Frames, bool]:
        """Frames for the next block of audio, and whether this was the last one."""
        step = int(self.BLOCK_SECONDS * SAMPLE_RATE)
        frames = self.stream.push(self.audio16k[self.pos:self.pos + step])
        self.pos += step
        last = self.pos >= self.audio16k.shape[0]
        if last:
            frames = self.counter.fit_final(_concat(frames, self.stream.finish()), self.samples)
            self.audio16k = self.audio16k[:0]
        else:
            self.counter.track(frames)
        self.warnings.extend(frames.warnings)
        return frames, last


def apply_transcript(stream, audio16k: np.ndarray, transcript: str, language: str, tick=None) -> list[str]:
    """Align a clip's transcript and give the stream its mouth track (docs/transcript.md) -> status lines.
    ``tick`` is called every few seconds of the alignment (the worker's heartbeat).

    Every failure falls back to the audio-only mouth with a warning that says why: the transcript is a
    hint, and a clip is still animated without it."""
    from engine.expression.phones import align as al
    from engine.expression.phones.timing import STEP_S, mouth_track

    fallback = "; the mouth follows the audio alone"
    if not hasattr(stream, "set_mouth_track"):
        return [f"transcript ignored: this engine cannot take phone timings (use learned-v2 or learned-v1){fallback}"]
    if not al.is_english(language):
        return [f"transcript ignored: language {language!r} has no aligner (only English, 'en'){fallback}"]
    try:
        a = al.align(audio16k, transcript, tick=tick)
    except al.AlignmentError as exc:
        return [f"transcript not used: {exc}{fallback}"]
    except ImportError:
        return [f"transcript ignored: pocketsphinx is not installed in the worker{fallback}"]
    except Exception as exc:  # an aligner bug costs the clip its transcript, not its animation
        log.exception("transcript alignment failed")
        return [f"transcript not used: the aligner failed ({type(exc).__name__}){fallback}"]
    stream.set_mouth_track(mouth_track(a.phones, n_steps=int(audio16k.shape[0] / SAMPLE_RATE / STEP_S) + 2))
    return a.warnings + [f"transcript aligned: {len(a.words)} words (cost {a.cost_per_frame:.0f}/frame, "
                         f"{a.coverage:.0%} of voiced frames covered)"]


_SILENCE = ("", "sil", "sp", "spn", "pau", "h#", "#", "_")


def apply_phones(stream, audio16k: np.ndarray, phones: list[list]) -> list[str]:
    """Client phone timings (AnimateClipRequest.phones, e.g. a cloud TTS's) -> the stream's mouth track."""
    from engine.expression.phones.arpabet import label_to_viseme
    from engine.expression.phones.timing import STEP_S, Phone, mouth_track

    if not hasattr(stream, "set_mouth_track"):
        return ["phones ignored: this engine cannot take phone timings (use learned-v2 or learned-v1); "
                "the mouth follows the audio alone"]
    seconds = audio16k.shape[0] / SAMPLE_RATE
    # Silence as aligners and TTSs spell it; timing.py would read "pau" or "sp" as IPA (p..., s...).
    track = [Phone(float(s), float(e), "" if str(label).lower() in _SILENCE else str(label)) for s, e, label in phones]
    unknown = sorted({p.label for p in track if p.label and label_to_viseme(p.label) == "sil"})
    warnings = [f"phones used: {len(track)} phone timings drive the mouth"]
    if unknown:
        warnings.append(f"phones: {len(unknown)} labels are not IPA, ARPAbet or viseme names and were read as "
                        f"silence: {', '.join(repr(u) for u in unknown[:10])}")
    late = sum(1 for p in track if p.start_s >= seconds)
    if late:
        warnings.append(f"phones: {late} phones start after the audio ends ({seconds:.2f} s) and were not used")
    stream.set_mouth_track(mouth_track(track, n_steps=int(seconds / STEP_S) + 2))
    return warnings


class ShiftedTrack:
    """The mouth of phones that start late in a long stream: mouth_track's arrays begin at its first step, so the
    phones are moved to start near 0 and read back on the stream's clock (a track from 0 would grow with the
    stream: an hour is 360 000 steps per rebuild)."""

    def __init__(self, phones: list, margin_s: float = 0.2):
        from engine.expression.phones.timing import Phone, mouth_track

        self.t0 = max(0.0, min(p.start_s for p in phones) - margin_s) if phones else 0.0
        self.track = mouth_track([Phone(p.start_s - self.t0, p.end_s - self.t0, p.label) for p in phones])

    def at(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.track.at(np.asarray(t_s, np.float64) - self.t0)


class LivePhones:
    """StreamExpression phone timings (ExpressionRequest.phones): appended as they come, the recent ones kept."""

    KEEP_S = 2.0  # phones that ended this long before the newest audio no longer shape any frame to come

    def __init__(self):
        self.phones: list = []
        self.count = 0

    def add(self, stream, rows: list[list], audio_seconds: float) -> list[str]:
        from engine.expression.phones.timing import Phone

        if not hasattr(stream, "set_mouth_track"):
            return [] if self.count else ["phones ignored: this engine cannot take phone timings (use learned-v2 "
                                          "or learned-v1); the mouth follows the audio alone"]
        new = [Phone(float(s), float(e), "" if str(lb).lower() in _SILENCE else str(lb)) for s, e, lb in rows]
        first = not self.count
        self.count += len(new)
        self.phones = [p for p in self.phones if p.end_s > audio_seconds - self.KEEP_S] + new
        stream.set_mouth_track(ShiftedTrack(self.phones))
        return ["phones used: the mouth follows the phone timings sent on this stream"] if first else []


class FrameCounter:
    """Makes the frame count exact on the input clock: ceil(samples * fps / rate).

    The engine counts frames on its resampled 16 kHz clock, which can differ
    from the input's by a fraction of a sample at the very end; without this a
    stream could end one frame short or long of what its time codes promise.
    """

    def __init__(self, sample_rate: int, fps: int):
        self.sample_rate, self.fps = sample_rate, fps
        self.last: Frames | None = None  # the newest single frame seen

    def track(self, frames: Frames) -> Frames:
        if len(frames):
            tr = None if frames.translation is None else frames.translation[-1:]
            vis = None if frames.visemes is None else frames.visemes[-1:]
            self.last = Frames(frames.first_index + len(frames) - 1, frames.weights[-1:], frames.rotations[-1:], tr,
                               visemes=vis)
        return frames

    def fit_final(self, frames: Frames, samples: int) -> Frames:
        expected = (samples * self.fps + self.sample_rate - 1) // self.sample_rate
        end = frames.first_index + len(frames)
        if end > expected:
            keep = max(0, expected - frames.first_index)
            tr = None if frames.translation is None else frames.translation[:keep]
            vis = None if frames.visemes is None else frames.visemes[:keep]
            frames = Frames(frames.first_index, frames.weights[:keep], frames.rotations[:keep], tr, frames.warnings,
                            vis)
        elif end < expected:
            # Copy the newest frame; audio too short to reach the engine at all gets the rest pose.
            src = frames if len(frames) else self.last or _rest_frame()
            pad = expected - end
            tail = Frames(end, np.repeat(src.weights[-1:], pad, 0), np.repeat(src.rotations[-1:], pad, 0),
                          None if src.translation is None else np.repeat(src.translation[-1:], pad, 0),
                          visemes=None if src.visemes is None else np.repeat(src.visemes[-1:], pad, 0))
            frames = _concat(frames, tail)
        return self.track(frames)


def _rest_frame() -> Frames:
    rot = np.zeros((1, NUM_BONES, 4), np.float32)
    rot[..., 3] = 1.0
    return Frames(0, np.zeros((1, NUM_BLENDSHAPES), np.float32), rot)


def _concat(a: Frames, b: Frames) -> Frames:
    if len(a) == 0:
        b.warnings = a.warnings + b.warnings
        return b
    if len(b) == 0:
        return a
    tr = None
    if a.translation is not None and b.translation is not None:
        tr = np.concatenate([a.translation, b.translation])
    vis = None
    if a.visemes is not None and b.visemes is not None:
        vis = np.concatenate([a.visemes, b.visemes])
    return Frames(a.first_index, np.concatenate([a.weights, b.weights]),
                  np.concatenate([a.rotations, b.rotations]), tr, a.warnings + b.warnings, vis)
