"""An engine worker: one process, one ZeroMQ DEALER, many streams.

Started by the bridge server (``python -m engine.worker --connect ... --identity ...``).
Single-threaded on purpose: each process owns one core's worth of compute and
the server spreads streams over processes. Exits when the server says STOP or
when its parent process goes away.
"""
from __future__ import annotations

import argparse
import gc
import os
import logging
import time

import zmq

from engine.logjson import setup_logging
from engine.expression.registry import DEFAULT_ENGINE, ENGINES, describe_engines, load_engine
from engine.worker import protocol as p
from engine.worker.capture_session import CAPTURE_ENGINE_INFO, ImageSession, VideoSession
from engine.worker.errors import error_reply
from engine.worker.handler import Replies, Session
from engine.worker.link import WorkerLink
from engine.worker.session import ClipSession, LiveSession
from engine.worker.speak_session import SpeakSession
from engine.worker.specs import (CaptureSpec, ClipSpec, Hush, SpeakSpec, StreamSpec, VoiceInfo,
                                 WorkerConfig, WorkerInfo)
from engine.tts.registry import load_backends

log = logging.getLogger("engine.worker")
MAX_BATCH = 256  # live-stream audio chunks pushed through an engine together
FIRST_AUDIO_S = 0.15  # Speak: when a new stream's first sentence is due (its time-to-first-audio budget)
_NOBLOCK = int(zmq.NOBLOCK)  # a plain int: enum flag arithmetic costs per call


class Worker:
    def __init__(self, endpoint: str, identity: bytes, config: WorkerConfig):
        self.link = WorkerLink(endpoint, identity)
        self.sock = self.link.sock
        self.engines = {name: load_engine(name, config.learned_weights) for name in ENGINES}
        self.sessions: dict[int, Session] = {}
        # Speak: built-in + tts_plugins backends (ValueError names a bad plugin)
        self.tts = load_backends(config.tts_plugins, config.piper_voices)
        self.voices = {v.id: (b, v) for b in self.tts for v in b.voices()}
        if config.tts_prewarm:  # load Festival's voice now, not on the first call
            for b in self.tts:
                getattr(b, "prewarm", lambda: None)()
        self._out: list[bytes] = []  # replies not yet sent (see _flush)
        # How long audio that arrived may wait for other live streams' chunks to join its batch (see _collect).
        self.batch_window_s = config.batch_window_ms / 1000.0
        self._chunks = 0  # audio chunks received since the last heartbeat
        self._chunk_rate = 0.0  # per second, measured over the last heartbeat interval
        self._deferred: list[tuple[int, int]] = []  # Speak NEXTs (sid, seq), done one at a time between drains
        # One opener per session kind: the spec it reads and how it becomes a session (see handler.py).
        self.openers = {p.OPEN: self._open_live, p.CLIP: self._open_clip, p.CAPTURE: self._open_capture,
                        p.VIDEO: self._open_video, p.SPEAK: self._open_speak}

    def run(self) -> None:
        # Engines, voices and modules live as long as the worker: out of the collector's sight, so that a full
        # collection under load walks only what the streams made, not the ~40,000 start-up objects (10-20 ms,
        # a stall of every stream of this worker at once).
        gc.collect()
        gc.freeze()
        self.link.ready(WorkerInfo(
            pid=os.getpid(), engines=describe_engines(self.engines),
            capture_engine=CAPTURE_ENGINE_INFO, voices=[VoiceInfo.from_dict(v.as_dict()) for _, v in self.voices.values()]))
        while True:
            # Deferred Speak sentences (see _collect) are work to do now: no waiting for a message then.
            if (self.sock.poll(0 if self._deferred else int(self.link.interval_s * 1000)) or self._deferred) \
                    and not self._collect(self.link.last_beat):
                return
            now = time.monotonic()
            if self.link.beat_due(now):
                self._chunk_rate, self._chunks = self._chunks / (now - self.link.last_beat), 0
                if not self.link.beat(now):
                    return
                for b in self.tts:
                    getattr(b, "idle", lambda now: None)(now)  # Festival exits when unused for a while

    def _beat_if_due(self) -> None:
        """A heartbeat from inside one long computation (a clip's forced alignment takes ~0.1 s per second of
        audio): at most one per heartbeat interval, so the server's watchdog does not take a busy worker for a hung
        one and kill it with every stream it serves."""
        now = time.monotonic()
        if self.link.beat_due(now):
            self.link.beat(now)

    def _collect(self, last_beat: float) -> bool:
        """Drain what is queued (coming up for a heartbeat at least every second); audio chunks of different
        live streams go through their engine as one batch. False after STOP.

        Dynamic batching: a batch of an engine that batches (learned-v1) waits up to batch_window_s from its
        first chunk for chunks of the worker's other live streams, unless every one of them has sent
        already, and only while chunks arrive fast enough for the wait to gather two or more. A learned-v1
        push costs a fixed ~1 ms plus ~0.15 ms per stream, so at 50 streams a worker that ran each chunk as it
        came spent most of a core on the fixed part (docs/benchmarks.md); at a few streams nothing waits."""
        batch: dict[int, tuple[int, bytes, float]] = {}  # sid -> (seq, body, received), one chunk per stream
        ends: dict[int, int] = {}  # sid -> seq: live streams whose END came, finished together after the batch
        first = 0.0  # when the batch's first chunk arrived
        live = 0  # live streams of this worker that could still join the batch (0: do not wait)
        worth_waiting = self._chunk_rate * self.batch_window_s >= 2.0
        while time.monotonic() - last_beat < self.link.interval_s:
            try:
                parts = self.sock.recv_multipart(_NOBLOCK)  # the server may send several messages at once
                received = time.monotonic()
            except zmq.Again:
                wait = first + self.batch_window_s - time.monotonic() if batch and len(batch) < live else 0.0
                if wait > 0 and self.sock.poll(max(1, round(wait * 1000))):
                    continue
                if self._deferred:  # one later Speak sentence, then look at the socket again
                    self._batches(batch, ends)
                    batch, ends = {}, {}
                    self._speak_next(*self._next_deferred())
                    self._flush()
                    continue
                break
            for msg in parts:
                if msg[:1] == p.STOP:
                    self._batches(batch, ends)
                    return False
                kind, sid, seq, body = p.unpack(msg)
                if kind == p.END and isinstance(self.sessions.get(sid), LiveSession):
                    ends[sid] = seq  # after its audio in the batch: no later message of the stream can come
                    continue
                if kind == p.OPEN and sid not in batch and sid not in ends:
                    # A new live stream has nothing in the batch, so it opens now without cutting the batch
                    # short: when many streams start together their OPENs interleave with the others' audio,
                    # and each one ending the batch left engine passes of one or two streams (~1 ms fixed
                    # cost each) just when the worker is busiest.
                    self.handle(kind, sid, seq, body)
                    self._flush()
                    continue
                if kind != p.AUDIO or sid in batch or len(batch) >= MAX_BATCH:
                    self._batches(batch, ends)  # first, so each stream's messages keep their order
                    batch, ends = {}, {}
                if kind == p.NEXT and getattr(self.sessions.get(sid), "scheduled", False):
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
                    batch[sid] = (seq, body, received)
                else:
                    self.handle(kind, sid, seq, body)
                    self._flush()
        self._batches(batch, ends)
        return True

    def handle(self, kind: bytes, sid: int, seq: int, body: bytes) -> None:
        """Every message but AUDIO (those go through _audio_batch): open a session, or hand the message to its
        session (handler.py); an exception ends only this stream, with the status error_reply maps it to."""
        out = Replies(self._out, sid, seq)
        try:
            opener = self.openers.get(kind)
            if opener is not None:
                s = self.sessions[sid] = opener(body)
                out.opened(s.opened())
                if s.scheduled:
                    self._flush()  # the header leaves before the first step is computed
                    self._deferred.append((sid, seq))  # run by deadline with the others (_next_deferred)
                else:
                    s.begin(out)
            elif kind == p.CLOSE:
                self._forget(sid)
                return
            elif kind == p.NEXT:
                s = self.sessions.get(sid)
                if s is None:
                    return  # the stream ended (or was closed) while its credit was on the way
                s.next(out)
            elif kind == p.HUSH:
                s = self.sessions.get(sid)
                if s is None:
                    return  # it finished speaking before the barge-in arrived
                s.hush(out, Hush.from_json(body).at_time)
            else:
                s = self.sessions.get(sid)
                if s is None:
                    raise KeyError(f"no stream {sid} in this worker")
                if kind == p.END:
                    s.end(out)
                elif kind == p.IMAGE:
                    s.image(out, body)
                elif kind == p.PHONES:
                    s.phones(p.loads(body))
            if s.finished:
                self.sessions.pop(sid, None)
        except Exception as exc:  # bad input or an engine bug ends this stream, not the worker
            self._forget(sid)
            out.error(error_reply(exc, sid))

    # -- openers: a spec in, a session out -----------------------------------------------------------------
    def _open_live(self, body) -> Session:
        spec = StreamSpec.from_json(body)
        return LiveSession(self._engine(spec.engine), spec)

    def _open_clip(self, body) -> Session:
        spec, data = p.unpack_clip(body, ClipSpec)
        return ClipSession(self._engine(spec.engine), spec, data, tick=self._beat_if_due)

    def _open_capture(self, body) -> Session:
        return ImageSession(CaptureSpec.from_json(body))

    def _open_video(self, body) -> Session:
        spec, data = p.unpack_clip(body, CaptureSpec)
        return VideoSession(spec, data)

    def _open_speak(self, body) -> Session:
        spec = SpeakSpec.from_json(body)
        backend, voice = self.voices[spec.voice]
        return SpeakSession(self._engine(spec.engine), backend, voice, spec)

    def _batches(self, batch: dict[int, tuple[int, bytes, float]], ends: dict[int, int]) -> None:
        self._audio_batch(batch)
        if ends:
            self._end_batch(ends)

    def _end_batch(self, ends: dict[int, int]) -> None:
        """ENDs of live streams: each stream's last samples and the engine's finish, one push_many and one
        finish_many per engine (a scene's streams often end together, and one at a time that cost ~1.5 ms of
        engine work each, a stall of every other stream of this worker), then each stream's last block + DONE."""
        groups: dict[object, list] = {}
        for sid, seq in ends.items():
            try:
                s = self._live(sid)
                groups.setdefault(s.engine, []).append((sid, seq, s, s.end_audio()))
            except Exception as exc:
                self._fail(sid, seq, exc)
        for engine, items in groups.items():
            try:
                streams = [it[2].stream for it in items]
                tails = engine.push_many(streams, [it[3] for it in items])
                rests = engine.finish_many(streams)
            except Exception as exc:  # an engine bug ends these streams, not the worker
                for sid, seq, *_ in items:
                    self._fail(sid, seq, exc)
                continue
            for (sid, seq, s, _), tail, rest in zip(items, tails, rests):
                try:
                    s.ended(Replies(self._out, sid, seq), tail, rest)
                except Exception as exc:
                    self._fail(sid, seq, exc)
                    continue
                self.sessions.pop(sid, None)  # finished (its DONE is queued)
        self._flush()

    def _audio_batch(self, batch: dict[int, tuple[int, bytes, float]]) -> None:
        """AUDIO messages of distinct live streams: decoded one by one (a bad chunk fails only its stream),
        then one push_many per engine (engines batch their compute across streams), frames sent in order, each
        with when its chunk arrived here and when the engine call returned (the front's latency stages)."""
        groups: dict[object, list] = {}
        for sid, (seq, body, received) in batch.items():
            try:
                s = self._live(sid)
                groups.setdefault(s.engine, []).append((sid, seq, s, s.decode(body), received))
            except Exception as exc:  # a bad chunk (AudioError) or a bug ends only its stream
                self._fail(sid, seq, exc)
        for engine, items in groups.items():
            try:
                frames = engine.push_many([it[2].stream for it in items], [it[3] for it in items])
            except Exception as exc:  # an engine bug ends these streams, not the worker
                for sid, seq, *_ in items:
                    self._fail(sid, seq, exc)
                continue
            done = time.monotonic()
            for (sid, seq, s, _, received), f in zip(items, frames):
                Replies(self._out, sid, seq).frames(s, s.deliver(f), False, (received, done))
        self._flush()

    def _flush(self) -> None:
        """Every queued reply in one multipart message: one wake-up of ZeroMQ's I/O thread per batch, not one
        per stream (that hand-off cost about a fifth of a busy worker's time)."""
        if self._out:
            self.sock.send_multipart(self._out)
            self._out = []

    def _fail(self, sid: int, seq: int, exc: Exception) -> None:
        self._forget(sid)
        Replies(self._out, sid, seq).error(error_reply(exc, sid))

    def _forget(self, sid: int) -> None:
        s = self.sessions.pop(sid, None)
        if s is not None:
            s.close()

    def _next_deferred(self) -> tuple[int, int]:
        """Earliest deadline first: a stream's next sentence is due when the audio it was sent finishes
        playing (its first audio left at s.started); a new stream's first one FIRST_AUDIO_S after it opened."""
        def due(item: tuple[int, int]) -> float:
            s = self.sessions.get(item[0])
            if not isinstance(s, SpeakSession):
                return -1.0  # gone: drop it first
            return s.opened_at + FIRST_AUDIO_S if s.started is None else s.started + s.audio_seconds
        i = min(range(len(self._deferred)), key=lambda j: due(self._deferred[j]))
        return self._deferred.pop(i)

    def _speak_next(self, sid: int, seq: int) -> None:
        """A deferred NEXT; the stream may have been closed or stopped since."""
        if sid in self.sessions:
            self.handle(p.NEXT, sid, seq, b"")

    def _engine(self, name: str):
        return self.engines[name or DEFAULT_ENGINE]

    def _live(self, sid: int) -> LiveSession:
        s = self.sessions.get(sid)
        if not isinstance(s, LiveSession):
            raise KeyError(f"no live stream {sid} in this worker")
        return s


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
