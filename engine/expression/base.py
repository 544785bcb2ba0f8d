"""The interface every audio -> expression engine implements.

An engine turns a stream of mono float32 audio at ``SAMPLE_RATE`` into frames
at a fixed fps. Frame ``k`` describes the face at time ``k / fps`` seconds on
that audio's clock. The engine may emit frame ``k`` only once it has received
audio up to ``k / fps + lookahead_s`` (or when the stream is finished), so the
caller can bound latency by ``lookahead_s``. After ``finish()``, frames exist
for every ``k`` with ``k / fps < duration`` (duration = samples / SAMPLE_RATE),
and at least one frame when any audio was pushed.

Rotations follow docs/conventions.md: unit quaternions (x, y, z, w) local to
the bone's rest pose, right-handed Y-up space, the subject faces +Z and its own
left is +X; +yaw (about +Y) turns the head to the subject's left.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.rig import NUM_BLENDSHAPES, NUM_BONES
# The session knobs (ExpressionStyle in the contract): the seam's typed spec is the engines' style, so one table
# holds the defaults and a validated style reaches an engine unchanged.
from engine.worker.specs import StyleSpec as Style  # noqa: F401  (re-exported)

SAMPLE_RATE = 16000


@dataclass
class Frames:
    """A block of consecutive frames."""

    first_index: int
    weights: np.ndarray  # (n, 52) float32 in 0..1, ARKIT_NAMES order
    rotations: np.ndarray  # (n, NUM_BONES, 4) float32 unit quaternions xyzw, BONE_NAMES order
    translation: np.ndarray | None = None  # (n, 3) float32 metres, or None
    warnings: list[str] = field(default_factory=list)  # new quality warnings (e.g. clipping)
    # (n, 15) float32 OVR viseme weights (engine.expression.visemes.VISEMES order), or None
    visemes: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.weights.shape[0])

    @staticmethod
    def empty(first_index: int) -> "Frames":
        return Frames(
            first_index,
            np.zeros((0, NUM_BLENDSHAPES), np.float32),
            np.zeros((0, NUM_BONES, 4), np.float32),
        )


class ExpressionStream:
    """Per-stream state of an engine. Not thread-safe; one per stream."""

    def push(self, audio: np.ndarray) -> Frames:
        """Feed new mono float32 samples at SAMPLE_RATE; return the frames they complete."""
        raise NotImplementedError

    def finish(self) -> Frames:
        """No more audio: return every remaining frame."""
        raise NotImplementedError


class ExpressionEngine:
    """A stateless factory of streams; loaded once per worker process."""

    name: str = ""
    description: str = ""
    lookahead_s: float = 0.0
    viseme_names: tuple[str, ...] = ()  # order of Frames.visemes; () when the engine gives none
    # True when push_many on many streams costs much less per stream than separate pushes (a worker then
    # lets busy streams' chunks wait a few ms to share one call).
    batches: bool = False

    def open(self, fps: int, style: Style) -> ExpressionStream:
        raise NotImplementedError

    def push_many(self, streams: list[ExpressionStream], audio: list[np.ndarray]) -> list[Frames]:
        """push() on many of this engine's streams at once (a worker's pending chunks); engines that can
        batch their compute across streams override this. Results are the same as separate pushes."""
        return [s.push(a) for s, a in zip(streams, audio)]

    def finish_many(self, streams: list[ExpressionStream]) -> list[Frames]:
        """finish() on many of this engine's streams at once (live streams that ended together); engines that
        batch override this. Results are the same as separate finishes."""
        return [s.finish() for s in streams]
