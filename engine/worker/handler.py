"""The interface every session kind implements, and the replies it writes through.

The worker loop (main.py) owns the socket, heartbeats, batching and error mapping; a session owns one stream's
state. The loop opens a session from its spec, writes its ``opened()`` and calls ``begin(out)``, then turns each
later message of that stream into one call:

  message   call                       session kinds that take it
  NEXT      next(out)                  clip, capture video, speak
  IMAGE     image(out, body)           camera capture
  END       end(out)                   live, camera capture
  PHONES    phones(rows)               live
  HUSH      hush(out, at_time)         speak
  CLOSE     close()                    all

A kind that does not take a message raises ``Unexpected``: the stream ends with an error, the worker goes on.
A session sets ``finished`` when it has written its DONE; the loop then forgets it.
"""
from __future__ import annotations

import numpy as np

from engine.expression.base import Frames
from engine.rig import NUM_BONES
from engine.worker import protocol as p
from engine.worker.specs import Done, ErrorReply, Opened


class Unexpected(Exception):
    """A message this session kind does not take (a front bug, not the client's)."""


class Replies:
    """One stream's replies, queued on the worker's next multipart send (the worker flushes)."""

    __slots__ = ("queue", "sid", "seq")

    def __init__(self, queue: list, sid: int, seq: int):
        self.queue, self.sid, self.seq = queue, sid, seq

    def opened(self, opened: Opened) -> None:
        self.queue.append(p.pack(p.OPENED, self.sid, 0, opened.to_json()))

    def block(self, block: p.FrameBlock) -> None:
        self.queue.append(p.pack(p.FRAMES, self.sid, self.seq, p.pack_frames(block)))

    def frames(self, s: "Session", frames: Frames, last: bool, timing: tuple[float, float] | None = None) -> None:
        """An engine's frames, timed on the session's input clock (timing: see protocol.FrameBlock)."""
        n = len(frames)
        idx = frame_sample_indices(frames.first_index, n, s.sample_rate, s.fps)
        self.block(p.FrameBlock(frames.first_index, idx, frames.weights, frames.rotations.reshape(n, NUM_BONES * 4),
                                frames.translation, s.audio_seconds, s.sample_rate, last, frames.warnings,
                                visemes=frames.visemes, timing=timing))

    def track(self, start_s: float, rate: int, channels: int, pcm16: bytes) -> None:
        self.queue.append(p.pack(p.TRACK, self.sid, self.seq, p.pack_track(start_s, rate, channels, pcm16)))

    def done(self, done: Done) -> None:
        self.queue.append(p.pack(p.DONE, self.sid, self.seq, done.to_json()))

    def error(self, reply: ErrorReply) -> None:
        self.queue.append(p.pack(p.ERROR, self.sid, self.seq, reply.to_json()))


def frame_sample_indices(first: int, n: int, sample_rate: int, fps: int) -> np.ndarray:
    """Input-clock sample index of frames first..first+n-1: round(k * sr / fps)."""
    k = np.arange(first, first + n, dtype=np.uint64)
    return (2 * k * np.uint64(sample_rate) + np.uint64(fps)) // np.uint64(2 * fps)


class Session:
    """One stream inside a worker. Subclasses set sample_rate, fps and audio_seconds (the frames' clock)."""

    sample_rate: int
    fps: int = 0
    audio_seconds: float = 0.0
    finished = False  # DONE written: the worker forgets the session
    scheduled = False  # its NEXTs wait for the worker's deadline scheduler (Speak), not run on arrival

    def opened(self) -> Opened:
        """The OPENED reply: what the stream's header says."""
        raise NotImplementedError

    def begin(self, out: Replies) -> None:
        """Right after OPENED: a session that produces on its own (a clip's first block) starts here."""

    def next(self, out: Replies) -> None:
        raise Unexpected("NEXT")

    def image(self, out: Replies, body) -> None:
        raise Unexpected("IMAGE")

    def end(self, out: Replies) -> None:
        raise Unexpected("END")

    def phones(self, rows: list[list]) -> None:
        raise Unexpected("PHONES")

    def hush(self, out: Replies, at_time: float) -> None:
        raise Unexpected("HUSH")

    def close(self) -> None:
        """Free what the session holds (MediaPipe graphs hold threads and memory)."""

    def finish(self, out: Replies, done: Done) -> None:
        out.done(done)
        self.finished = True
