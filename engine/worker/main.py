"""An engine worker: one process, one ZeroMQ DEALER, many streams.

Started by the bridge server (``python -m engine.worker --connect ... --identity ...``).
Single-threaded on purpose: each process owns one core's worth of compute and
the server spreads streams over processes. Exits when the server says STOP or
when its parent process goes away.
"""
from __future__ import annotations

import argparse
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
from engine.worker.capture_session import ImageSession, VideoSession
from engine.worker.session import ClipSession, LiveSession, frame_sample_indices

log = logging.getLogger("engine.worker")
CAPTURE_ENGINE = "mediapipe-face-landmarker"
HEARTBEAT_S = 1.0
MAX_BATCH = 256  # live-stream audio chunks pushed through an engine together
_NOBLOCK = int(zmq.NOBLOCK)  # a plain int: enum flag arithmetic costs per call


class Worker:
    def __init__(self, endpoint: str, identity: bytes, batch_window_s: float = 0.0):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.engines = {name: load_engine(name) for name in ENGINES}
        self.sessions: dict[int, LiveSession | ClipSession | ImageSession | VideoSession] = {}
        self.parent = os.getppid()
        self._out: list[bytes] = []  # replies not yet sent (see _flush)
        # How long audio that arrived may wait for other live streams' chunks to join its batch (see _collect).
        self.batch_window_s = batch_window_s
        self._chunks = 0  # audio chunks received since the last heartbeat
        self._chunk_rate = 0.0  # per second, measured over the last heartbeat interval

    def run(self) -> None:
        info = {"pid": os.getpid(), "engines": describe_engines()}
        self.sock.send(p.pack(p.READY, body=p.dumps(info)))
        beat = p.pack(p.BEAT)
        last_beat = time.monotonic()
        while True:
            if self.sock.poll(int(HEARTBEAT_S * 1000)) and not self._collect(last_beat):
                return
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_S:
                self._chunk_rate, self._chunks = self._chunks / (now - last_beat), 0
                if os.getppid() != self.parent:
                    log.warning("parent process went away; worker exiting")
                    return
                self.sock.send(beat)
                last_beat = now

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
                break
            for msg in parts:
                if msg[:1] == p.STOP:
                    self._audio_batch(batch)
                    return False
                kind, sid, seq, body = p.unpack(msg)
                if kind != p.AUDIO or sid in batch or len(batch) >= MAX_BATCH:
                    self._audio_batch(batch)  # first, so each stream's messages keep their order
                    batch = {}
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
                cfg = p.loads(body)
                s = self.sessions[sid] = LiveSession(self._engine(cfg), cfg)
                self._opened(sid, cfg, s.resampler.delay_s)
            elif kind == p.CAPTURE:
                self.sessions[sid] = ImageSession(p.loads(body))
                self._send_opened(sid, {"engine": CAPTURE_ENGINE, "lookahead_s": 0.0})
            elif kind == p.IMAGE:
                s = self.sessions[sid]
                b = s.image(*p.unpack_image(body))
                self._send_block(sid, seq, s, b, False)
            elif kind == p.VIDEO:
                cfg, data = p.unpack_clip(body)
                s = self.sessions[sid] = VideoSession(cfg, data)
                self._send_opened(sid, {"engine": CAPTURE_ENGINE, "lookahead_s": 0.0, "video": s.info.__dict__})
                self._video_item(sid, seq, s)
            elif kind == p.END and isinstance(self.sessions.get(sid), ImageSession):
                s = self.sessions.pop(sid)
                s.close()
                self._send(p.pack(p.DONE, sid, seq, p.dumps(s.done_meta())))
            elif kind == p.END:
                s = self._live(sid)
                self._send_frames(sid, seq, s, s.end(), True)
                self.sessions.pop(sid, None)
                self._done(sid, seq, s)
            elif kind == p.CLIP:
                cfg, data = p.unpack_clip(body)
                s = ClipSession(self._engine(cfg), cfg, data)
                self.sessions[sid] = s
                self._opened(sid, cfg, 0.0)
                self._clip_block(sid, seq, s)
            elif kind == p.NEXT:
                s = self.sessions.get(sid)
                if isinstance(s, ClipSession):
                    self._clip_block(sid, seq, s)
                elif isinstance(s, VideoSession):
                    self._video_item(sid, seq, s)
            elif kind == p.CLOSE:
                self._forget(sid)
        except (AudioError, ImageError, VideoError) as exc:
            self._forget(sid)
            self._error(sid, seq, "INVALID_ARGUMENT", str(exc))
        except ModelMissing as exc:
            self._forget(sid)
            self._error(sid, seq, "FAILED_PRECONDITION", str(exc))
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

    def _send_opened(self, sid: int, meta: dict) -> None:
        self._send(p.pack(p.OPENED, sid, 0, p.dumps(meta)))

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
            self._send(p.pack(p.DONE, sid, seq, p.dumps(s.done_meta())))

    def _engine(self, cfg: dict):
        return self.engines[cfg.get("engine") or DEFAULT_ENGINE]

    def _opened(self, sid: int, cfg: dict, extra_delay_s: float) -> None:
        eng = self._engine(cfg)
        # The look-ahead a client sees includes the resampler's delay for its rate.
        self._send(p.pack(p.OPENED, sid, 0, p.dumps({"engine": eng.name,
                                                          "lookahead_s": eng.lookahead_s + extra_delay_s,
                                                          "viseme_names": list(eng.viseme_names)})))

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
        self._send(p.pack(p.DONE, sid, seq, p.dumps({"audio_seconds": s.audio_seconds,
                                                         "warnings": s.warnings})))

    def _error(self, sid: int, seq: int, code: str, message: str) -> None:
        self._send(p.pack(p.ERROR, sid, seq, p.dumps({"code": code, "message": message})))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.worker")
    ap.add_argument("--connect", required=True, help="the server's ZeroMQ ROUTER endpoint")
    ap.add_argument("--identity", required=True)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--log-format", default="json", choices=["json", "text"])
    ap.add_argument("--batch-window-ms", type=float, default=0.0,
                    help="how long live-stream audio may wait to be batched with other streams' (server setting)")
    args = ap.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    Worker(args.connect, args.identity.encode(), args.batch_window_ms / 1000.0).run()
    return 0
