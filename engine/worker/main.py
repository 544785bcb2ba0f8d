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

import numpy as np
import zmq

from engine.audio import AudioError
from engine.logjson import setup_logging
from engine.expression.base import Frames
from engine.expression.registry import DEFAULT_ENGINE, ENGINES, describe_engines, load_engine
from engine.worker import protocol as p
from engine.worker.session import ClipSession, LiveSession, frame_sample_indices

log = logging.getLogger("engine.worker")
HEARTBEAT_S = 1.0


class Worker:
    def __init__(self, endpoint: str, identity: bytes):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.engines = {name: load_engine(name) for name in ENGINES}
        self.sessions: dict[int, LiveSession | ClipSession] = {}
        self.parent = os.getppid()

    def run(self) -> None:
        info = {"pid": os.getpid(), "engines": describe_engines()}
        self.sock.send_multipart([p.READY, p.dumps(info)])
        last_beat = time.monotonic()
        while True:
            if self.sock.poll(int(HEARTBEAT_S * 1000)):
                # Drain everything queued before the next heartbeat check.
                while True:
                    try:
                        msg = self.sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if msg[0] == p.STOP:
                        return
                    self.handle(msg)
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_S:
                if os.getppid() != self.parent:
                    log.warning("parent process went away; worker exiting")
                    return
                self.sock.send_multipart([p.BEAT])
                last_beat = now

    def handle(self, msg: list[bytes]) -> None:
        kind, sid_b = msg[0], msg[1]
        sid = p.sid_int(sid_b)
        seq_b = p.seq_bytes(0)
        try:
            if kind == p.OPEN:
                cfg = p.loads(msg[2])
                s = self.sessions[sid] = LiveSession(self._engine(cfg), cfg)
                self._opened(sid_b, cfg, s.resampler.delay_s)
            elif kind == p.AUDIO:
                seq_b = msg[2]
                s = self._live(sid)
                self._send_frames(sid_b, seq_b, s, s.audio(msg[3]), {"audio_seconds": s.audio_seconds})
            elif kind == p.END:
                seq_b = msg[2]
                s = self._live(sid)
                self._send_frames(sid_b, seq_b, s, s.end(), {"audio_seconds": s.audio_seconds})
                self.sessions.pop(sid, None)
                self.sock.send_multipart([p.DONE, sid_b, seq_b, p.dumps(
                    {"audio_seconds": s.audio_seconds, "warnings": s.warnings})])
            elif kind == p.CLIP:
                cfg = p.loads(msg[2])
                s = ClipSession(self._engine(cfg), cfg, msg[3])
                self.sessions[sid] = s
                self._opened(sid_b, cfg, 0.0)
                self._clip_block(sid, sid_b, seq_b, s)
            elif kind == p.NEXT:
                seq_b = msg[2]
                s = self.sessions.get(sid)
                if isinstance(s, ClipSession):
                    self._clip_block(sid, sid_b, seq_b, s)
            elif kind == p.CLOSE:
                self.sessions.pop(sid, None)
        except AudioError as exc:
            self.sessions.pop(sid, None)
            self._error(sid_b, seq_b, "INVALID_ARGUMENT", str(exc))
        except Exception as exc:  # an engine bug must end this stream, not the worker
            self.sessions.pop(sid, None)
            log.error("stream %d failed: %s", sid, traceback.format_exc())
            self._error(sid_b, seq_b, "INTERNAL", f"engine error: {type(exc).__name__}: {exc}")

    def _engine(self, cfg: dict):
        return self.engines[cfg.get("engine") or DEFAULT_ENGINE]

    def _opened(self, sid_b: bytes, cfg: dict, extra_delay_s: float) -> None:
        eng = self._engine(cfg)
        # The look-ahead a client sees includes the resampler's delay for its rate.
        self.sock.send_multipart([p.OPENED, sid_b, p.dumps(
            {"engine": eng.name, "lookahead_s": eng.lookahead_s + extra_delay_s})])

    def _live(self, sid: int) -> LiveSession:
        s = self.sessions.get(sid)
        if not isinstance(s, LiveSession):
            raise KeyError(f"no live stream {sid} in this worker")
        return s

    def _clip_block(self, sid: int, sid_b: bytes, seq_b: bytes, s: ClipSession) -> None:
        frames, last = s.next_block()
        self._send_frames(sid_b, seq_b, s, frames, {"audio_seconds": s.audio_seconds, "last": last,
                                                       "sample_rate": s.sample_rate})
        if last:
            self.sessions.pop(sid, None)
            self.sock.send_multipart([p.DONE, sid_b, seq_b, p.dumps(
                {"audio_seconds": s.audio_seconds, "warnings": s.warnings})])

    def _send_frames(self, sid_b, seq_b, s, frames: Frames, meta: dict) -> None:
        n = len(frames)
        meta.update(first_index=frames.first_index, n=n, warnings=frames.warnings)
        idx = frame_sample_indices(frames.first_index, n, s.sample_rate, s.fps)
        tr = b"" if frames.translation is None else np.ascontiguousarray(frames.translation, "<f4").tobytes()
        self.sock.send_multipart([
            p.FRAMES, sid_b, seq_b, p.dumps(meta), idx.astype("<u8").tobytes(),
            np.ascontiguousarray(frames.weights, "<f4").tobytes(),
            np.ascontiguousarray(frames.rotations, "<f4").tobytes(), tr])

    def _error(self, sid_b, seq_b, code: str, message: str) -> None:
        self.sock.send_multipart([p.ERROR, sid_b, seq_b, p.dumps({"code": code, "message": message})])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.worker")
    ap.add_argument("--connect", required=True, help="the server's ZeroMQ ROUTER endpoint")
    ap.add_argument("--identity", required=True)
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--log-format", default="json", choices=["json", "text"])
    args = ap.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    Worker(args.connect, args.identity.encode()).run()
    return 0
