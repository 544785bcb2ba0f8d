"""An engine worker: one process, one ZeroMQ DEALER, many streams.

Started by the bridge server (``python -m engine.worker --connect ... --identity ...``).
Single-threaded on purpose: each process owns one core's worth of compute and
the server spreads streams over processes. Exits when the server says STOP or
when its parent process goes away.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import time
import traceback

import zmq

from engine.audio import AudioError
from engine.capture.images import ImageError
from engine.capture.models import ModelMissing
from engine.capture.video import VideoError
from engine.logjson import setup_logging
from engine.rig import NUM_BONES
from engine.expression.base import Frames
from engine.expression.registry import DEFAULT_ENGINE, ENGINES, describe_engines, load_engine
from engine.worker import protocol as p
from engine.worker.capture_session import CAPTURE_ENGINE_INFO, CAPTURE_OPENED, ImageSession, VideoSession
from engine.worker.session import ClipSession, LiveSession, frame_sample_indices
from engine.worker.speak_session import SpeakSession
from engine.worker.specs import (CaptureSpec, ClipSpec, Done, ErrorReply, Hush, Opened, SpeakSpec, StreamSpec,
                                 VideoInfoSpec, WorkerConfig)
from engine.tts.base import TtsError, VoiceMissing
from engine.tts.registry import load_backends

log = logging.getLogger("engine.worker")
HEARTBEAT_S = 1.0
MAX_BATCH = 256  # live-stream audio chunks pushed through an engine together
FIRST_AUDIO_S = 0.15  # Speak: when a new stream's first sentence is due (its time-to-first-audio budget)
_NOBLOCK = int(zmq.NOBLOCK)  # a plain int: enum flag arithmetic costs per call


class Worker:
    def __init__(self, endpoint: str, identity: bytes, config: WorkerConfig):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.engines = {name: load_engine(name, config.learned_weights) for name in ENGINES}
        self.sessions: dict[int, LiveSession | ClipSession | ImageSession | VideoSession | SpeakSession] = {}
        # Speak: built-in + tts_plugins backends (ValueError names a bad plugin)
        self.tts = load_backends(config.tts_plugins, config.piper_voices)
        self.voices = {v.id: (b, v) for b in self.tts for v in b.voices()}
        if config.tts_prewarm:  # load Festival's voice now, not on the first call
            for b in self.tts:
                getattr(b, "prewarm", lambda: None)()
        self.parent = os.getppid()
        self._out: list[bytes] = []  # replies not yet sent (see _flush)
        # How long audio that arrived may wait for other live streams' chunks to join its batch (see _collect).
        self.batch_window_s = config.batch_window_ms / 1000.0
        self._chunks = 0  # audio chunks received since the last heartbeat
        self._chunk_rate = 0.0  # per second, measured over the last heartbeat interval
        self._deferred: list[tuple[int, int]] = []  # Speak NEXTs (sid, seq), done one at a time between drains
        self._last_beat = time.monotonic()  # when the last heartbeat left (run, _beat_if_due)

    def run(self) -> None:
        info = {"pid": os.getpid(), "engines": describe_engines(self.engines), "capture_engine": CAPTURE_ENGINE_INFO,
                "voices": [v.as_dict() for _, v in self.voices.values()]}
        self.sock.send(p.pack(p.READY, body=p.dumps(info)))
        beat = p.pack(p.BEAT)
        last_beat = self._last_beat = time.monotonic()
        while True:
            # Deferred Speak sentences (see _collect) are work to do now: no waiting for a message then.
            if (self.sock.poll(0 if self._deferred else int(HEARTBEAT_S * 1000)) or self._deferred) \
                    and not self._collect(last_beat):
                return
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_S:
                self._chunk_rate, self._chunks = self._chunks / (now - last_beat), 0
                if os.getppid() != self.parent:
                    log.warning("parent process went away; worker exiting")
                    return
                self.sock.send(beat)
                last_beat = self._last_beat = now
                for b in self.tts:
                    getattr(b, "idle", lambda now: None)(now)  # Festival exits when unused for a while

    def _beat_if_due(self) -> None:
        """A heartbeat from inside one long computation (a clip's forced alignment takes ~0.1 s per second of
        audio): at most one per HEARTBEAT_S, so the server's watchdog does not take a busy worker for a hung
        one and kill it with every stream it serves."""
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_S:
            self.sock.send(p.pack(p.BEAT))
            self._last_beat = now

    def _collect(self, last_beat: float) -> bool:
        """Drain what is queued (coming up for a heartbeat at least every second); audio chunks of different
        live streams go through their engine as one batch. False after STOP.

        Dynamic batching: a batch of an engine that batches (learned-v1) waits up to batch_window_s from its
        first chunk for chunks of the worker's other live streams, unless every one of them has sent
        already, and only while chunks arrive fast enough for the wait to gather two or more. A learned-v1
        push costs a fixed ~1 ms plus ~0.15 ms per stream, so at 50 streams a worker that ran each chunk as it
        came spent most of a core on the fixed part (docs/benchmarks.md); at a few streams nothing waits."""
        batch: dict[int, tuple[int, bytes]] = {}  # sid -> (seq, body), at most one chunk per stream
        first = 0.0  # when the batch's first chunk arrived
        live = 0  # live streams of this worker that could still join the batch (0: do not wait)
        worth_waiting = self._chunk_rate * self.batch_window_s >= 2.0
        while time.monotonic() - last_beat < HEARTBEAT_S:
            try:
                parts = self.sock.recv_multipart(_NOBLOCK)  # the server may send several messages at once
            except zmq.Again:
                wait = first + self.batch_window_s - time.monotonic() if batch and len(batch) < live else 0.0
                if wait > 0 and self.sock.poll(max(1, round(wait * 1000))):
                    continue
                if self._deferred:  # one later Speak sentence, then look at the socket again
                    self._audio_batch(batch)
                    batch = {}
                    self._speak_next(*self._next_deferred())
                    self._flush()
                    continue
                break
            for msg in parts:
                if msg[:1] == p.STOP:
                    self._audio_batch(batch)
                    return False
                kind, sid, seq, body = p.unpack(msg)
                if kind != p.AUDIO or sid in batch or len(batch) >= MAX_BATCH:
                    self._audio_batch(batch)  # first, so each stream's messages keep their order
                    batch = {}
                if kind == p.NEXT and isinstance(self.sessions.get(sid), SpeakSession):
                    # A Speak sentence waits behind every message already here and is then synthesised by
                    # deadline (_next_deferred), so live audio and the sentence that is due first are not
                    # queued behind other streams' sentences that have seconds of slack.
                    self._deferred.append((sid, seq))
                    continue
                if kind == p.AUDIO:
                    self._chunks += 1
                    if not batch:
                        first = time.monotonic()
                        s = self.sessions.get(sid)
                        live = (sum(1 for x in self.sessions.values() if isinstance(x, LiveSession))
                                if worth_waiting and getattr(getattr(s, "engine", None), "batches", False) else 0)
                    batch[sid] = (seq, body)
                else:
                    self.handle(kind, sid, seq, body)
                    self._flush()
        self._audio_batch(batch)
        return True

    def handle(self, kind: bytes, sid: int, seq: int, body: bytes) -> None:
        """Every message but AUDIO (those go through _audio_batch)."""
        try:
            if kind == p.OPEN:
                spec = StreamSpec.from_json(body)
                s = self.sessions[sid] = LiveSession(self._engine(spec.engine), spec)
                self._opened(sid, spec.engine, s.resampler.delay_s)
            elif kind == p.CAPTURE:
                self.sessions[sid] = ImageSession(CaptureSpec.from_json(body))
                self._send_opened(sid, CAPTURE_OPENED)
            elif kind == p.IMAGE:
                s = self.sessions[sid]
                b = s.image(*p.unpack_image(body))
                self._send_block(sid, seq, s, b, False)
            elif kind == p.VIDEO:
                cfg, data = p.unpack_clip(body)
                s = self.sessions[sid] = VideoSession(CaptureSpec.from_dict(cfg), data)
                self._send_opened(sid, dataclasses.replace(CAPTURE_OPENED, video=VideoInfoSpec(**vars(s.info))))
                self._video_item(sid, seq, s)
            elif kind == p.END and isinstance(self.sessions.get(sid), ImageSession):
                s = self.sessions.pop(sid)
                s.close()
                self._send(p.pack(p.DONE, sid, seq, s.done().to_json()))
            elif kind == p.END:
                s = self._live(sid)
                self._send_frames(sid, seq, s, s.end(), True)
                self.sessions.pop(sid, None)
                self._done(sid, seq, s)
            elif kind == p.CLIP:
                cfg, data = p.unpack_clip(body)
                spec = ClipSpec.from_dict(cfg)
                s = ClipSession(self._engine(spec.engine), spec, data, tick=self._beat_if_due)
                self.sessions[sid] = s
                self._opened(sid, spec.engine, 0.0)
                self._clip_block(sid, seq, s)
            elif kind == p.SPEAK:
                spec = SpeakSpec.from_json(body)
                backend, voice = self.voices[spec.voice]
                s = self.sessions[sid] = SpeakSession(self._engine(spec.engine), backend, voice, spec)
                self._send_opened(sid, Opened(engine=s.stream.engine.name, lookahead_s=0.0,
                                              viseme_names=list(s.stream.engine.viseme_names), voice=voice.id,
                                              language=voice.language, tts_engine=voice.engine,
                                              sample_rate=voice.sample_rate))
                self._flush()  # the header leaves before the first sentence is synthesised
                self._deferred.append((sid, seq))  # synthesised by deadline with the others (_next_deferred)
            elif kind == p.PHONES:
                self._live(sid).add_phones(p.loads(body))
            elif kind == p.HUSH:
                s = self.sessions.pop(sid, None)
                if isinstance(s, SpeakSession):
                    at = Hush.from_json(body).at_time
                    self._send_frames(sid, seq, s, s.stop(at), True)
                    self._speak_done(sid, seq, s, stopped_at=s.audio_seconds)
            elif kind == p.NEXT:
                s = self.sessions.get(sid)
                if isinstance(s, SpeakSession):
                    self._speak_step(sid, seq, s)
                elif isinstance(s, ClipSession):
                    self._clip_block(sid, seq, s)
                elif isinstance(s, VideoSession):
                    self._video_item(sid, seq, s)
            elif kind == p.CLOSE:
                self._forget(sid)
        except (AudioError, ImageError, VideoError) as exc:
            self._forget(sid)
            self._error(sid, seq, "INVALID_ARGUMENT", str(exc))
        except (ModelMissing, VoiceMissing) as exc:
            self._forget(sid)
            self._error(sid, seq, "FAILED_PRECONDITION", str(exc))
        except TtsError as exc:
            self._forget(sid)
            self._error(sid, seq, "INTERNAL", f"speech synthesis failed: {exc}")
        except Exception as exc:  # an engine bug must end this stream, not the worker
            self._fail(sid, seq, exc)

    def _audio_batch(self, batch: dict[int, tuple[int, bytes]]) -> None:
        """AUDIO messages of distinct live streams: decoded one by one (a bad chunk fails only its stream),
        then one push_many per engine (engines batch their compute across streams), frames sent in order."""
        groups: dict[object, list] = {}
        for sid, (seq, body) in batch.items():
            try:
                s = self._live(sid)
                groups.setdefault(s.engine, []).append((sid, seq, s, s.decode(body)))
            except AudioError as exc:
                self._forget(sid)
                self._error(sid, seq, "INVALID_ARGUMENT", str(exc))
            except Exception as exc:
                self._fail(sid, seq, exc)
        for engine, items in groups.items():
            try:
                frames = engine.push_many([it[2].stream for it in items], [it[3] for it in items])
            except Exception as exc:  # an engine bug ends these streams, not the worker
                for sid, seq, _, _ in items:
                    self._fail(sid, seq, exc)
                continue
            for (sid, seq, s, _), f in zip(items, frames):
                self._send_frames(sid, seq, s, s.deliver(f), False)
        self._flush()

    def _send(self, msg: bytes) -> None:
        self._out.append(msg)

    def _flush(self) -> None:
        """Every queued reply in one multipart message: one wake-up of ZeroMQ's I/O thread per batch, not one
        per stream (that hand-off cost about a fifth of a busy worker's time)."""
        if self._out:
            self.sock.send_multipart(self._out)
            self._out = []

    def _fail(self, sid: int, seq: int, exc: Exception) -> None:
        self._forget(sid)
        log.error("stream %d failed: %s", sid, "".join(traceback.format_exception(exc)))
        self._error(sid, seq, "INTERNAL", f"engine error: {type(exc).__name__}: {exc}")

    def _forget(self, sid: int) -> None:
        s = self.sessions.pop(sid, None)
        if isinstance(s, (ImageSession, VideoSession)):
            s.close()  # MediaPipe graphs hold threads and memory

    def _send_opened(self, sid: int, opened: Opened) -> None:
        self._send(p.pack(p.OPENED, sid, 0, opened.to_json()))

    def _send_block(self, sid: int, seq: int, s, b, last: bool) -> None:
        body = p.pack_frames(b.first_index, b.sample_index, b.weights, b.rotations, b.translation, s.audio_seconds,
                             s.sample_rate, last, [], b.confidence, b.face_lost)
        self._send(p.pack(p.FRAMES, sid, seq, body))

    def _video_item(self, sid: int, seq: int, s: VideoSession) -> None:
        item = s.next_item()
        if item[0] == "track":
            self._send(p.pack(p.TRACK, sid, seq, p.pack_track(*item[1])))
            return
        _, block, last = item
        self._send_block(sid, seq, s, block, last)
        if last:
            self.sessions.pop(sid, None)
            self._send(p.pack(p.DONE, sid, seq, s.done().to_json()))

    def _next_deferred(self) -> tuple[int, int]:
        """Earliest deadline first: a stream's next sentence is due when the audio it was sent finishes
        playing (its first audio left at s.started); a new stream's first one FIRST_AUDIO_S after it opened."""
        def due(item: tuple[int, int]) -> float:
            s = self.sessions.get(item[0])
            if not isinstance(s, SpeakSession):
                return -1.0  # gone: drop it first
            return s.opened + FIRST_AUDIO_S if s.started is None else s.started + s.audio_seconds
        i = min(range(len(self._deferred)), key=lambda j: due(self._deferred[j]))
        return self._deferred.pop(i)

    def _speak_next(self, sid: int, seq: int) -> None:
        """A deferred NEXT; the stream may have been closed or stopped since."""
        s = self.sessions.get(sid)
        if isinstance(s, SpeakSession):
            self.handle(p.NEXT, sid, seq, b"")

    def _speak_step(self, sid: int, seq: int, s: SpeakSession) -> None:
        """One sentence: its audio (TRACK), then the frames it completes (FRAMES; the server's cue for NEXT)."""
        start, pcm, frames, last = s.step()
        if s.started is None:
            s.started = time.monotonic()  # the client starts playing about now
        self._send(p.pack(p.TRACK, sid, seq, p.pack_track(start / s.sample_rate, s.sample_rate, 1, pcm.tobytes())))
        self._send_frames(sid, seq, s, frames, last)
        if last:
            self.sessions.pop(sid, None)
            self._speak_done(sid, seq, s)

    def _speak_done(self, sid: int, seq: int, s: SpeakSession, stopped_at: float = -1.0) -> None:
        self._send(p.pack(p.DONE, sid, seq, Done(
            audio_seconds=s.audio_seconds, warnings=s.warnings, sentences=s.sentences,
            synthesis_seconds=s.synthesis_s, stopped_at=stopped_at).to_json()))

    def _engine(self, name: str):
        return self.engines[name or DEFAULT_ENGINE]

    def _opened(self, sid: int, engine: str, extra_delay_s: float) -> None:
        eng = self._engine(engine)
        # The look-ahead a client sees includes the resampler's delay for its rate.
        self._send_opened(sid, Opened(engine=eng.name, lookahead_s=eng.lookahead_s + extra_delay_s,
                                      viseme_names=list(eng.viseme_names)))

    def _live(self, sid: int) -> LiveSession:
        s = self.sessions.get(sid)
        if not isinstance(s, LiveSession):
            raise KeyError(f"no live stream {sid} in this worker")
        return s

    def _clip_block(self, sid: int, seq: int, s: ClipSession) -> None:
        frames, last = s.next_block()
        self._send_frames(sid, seq, s, frames, last)
        if last:
            self.sessions.pop(sid, None)
            self._done(sid, seq, s)

    def _send_frames(self, sid: int, seq: int, s, frames: Frames, last: bool) -> None:
        idx = frame_sample_indices(frames.first_index, len(frames), s.sample_rate, s.fps)
        body = p.pack_frames(frames.first_index, idx, frames.weights, frames.rotations.reshape(len(frames), NUM_BONES * 4),
                             frames.translation, s.audio_seconds, s.sample_rate, last, frames.warnings,
                             visemes=frames.visemes)
        self._send(p.pack(p.FRAMES, sid, seq, body))

    def _done(self, sid: int, seq: int, s) -> None:
        self._send(p.pack(p.DONE, sid, seq, Done(audio_seconds=s.audio_seconds, warnings=s.warnings).to_json()))

    def _error(self, sid: int, seq: int, code: str, message: str) -> None:
        self._send(p.pack(p.ERROR, sid, seq, ErrorReply(message=message, code=code).to_json()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.worker")
    ap.add_argument("--connect", required=True, help="the server's ZeroMQ ROUTER endpoint")
    ap.add_argument("--identity", required=True)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--log-format", default="json", choices=["json", "text"])
    ap.add_argument("--config", default="{}", help="the worker's settings as WorkerConfig JSON (engine/worker/specs.py)")
    args = ap.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        worker = Worker(args.connect, args.identity.encode(), WorkerConfig.from_json(args.config.encode()))
    except ValueError as exc:  # a TTS plugin or a weights file that cannot load: say which, and stop before READY
        log.error("engine worker cannot start: %s", exc)
        return 2
    try:
        worker.run()
    finally:
        for backend in worker.tts:
            backend.close()  # Festival runs as a child process
    return 0
