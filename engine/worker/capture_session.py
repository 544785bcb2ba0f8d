"""Capture streams inside a worker: images or a video file -> frames (engine.capture)."""
from __future__ import annotations

import dataclasses

import numpy as np

from engine.capture import UNMEASURED, CaptureSettings, FaceCapture, models
from engine.capture.images import ImageError, decode_image
from engine.rig import NUM_BLENDSHAPES
from engine.capture.video import VideoReader
from engine.rig import NUM_BONES
from engine.worker import protocol as p
from engine.worker.handler import Replies, Session
from engine.worker.specs import CaptureSpec, Done, EngineInfo, Opened, VideoInfoSpec

CAPTURE_ENGINE = "mediapipe-face-landmarker"
# What the worker tells the front about the capture engine (its READY info and each capture stream's OPENED).
CAPTURE_ENGINE_INFO = EngineInfo(name=CAPTURE_ENGINE, kind="capture", is_default=True, lookahead_s=0.0,
                                 description="MediaPipe Face Landmarker: images/video -> 51 measured ARKit weights "
                                             "(tongueOut unmeasured), head pose, eye rotations")
CAPTURE_OPENED = Opened(engine=CAPTURE_ENGINE, lookahead_s=0.0, unmeasured_blendshapes=list(UNMEASURED))

MICROS = 1_000_000  # capture time codes are microseconds: sample_rate = 1e6
_model_cache: dict[str, bytes] = {}


def load_model(spec: CaptureSpec) -> bytes:
    """The verified Face Landmarker bundle, read once per worker (ModelMissing names where it looked)."""
    path = models.locate(models.FACE_LANDMARKER, spec.model_path or None)
    key = str(path)
    if key not in _model_cache:
        _model_cache[key] = path.read_bytes()
    return _model_cache[key]


def settings_from(spec: CaptureSpec) -> CaptureSettings:
    """The validated settings of a spec as the capture engine's CaptureSettings (the same fields)."""
    return CaptureSettings(**spec.settings.as_dict())


def capture_block(first: int, frames: list, times_us: list[int], audio_seconds: float, last: bool) -> p.FrameBlock:
    """Captured frames (engine.capture) as the one frame type of the seam, timed in microseconds."""
    n = len(frames)
    return p.FrameBlock(
        first, np.array(times_us, np.uint64),
        np.array([f.weights for f in frames], np.float32).reshape(n, NUM_BLENDSHAPES),
        np.array([f.rotations.reshape(-1) for f in frames], np.float32).reshape(n, NUM_BONES * 4),
        np.array([f.translation for f in frames], np.float32).reshape(n, 3), audio_seconds, MICROS, last, [],
        confidence=np.array([f.confidence for f in frames], np.float32),
        face_lost=np.array([f.face_lost for f in frames], bool))


class ImageSession(Session):
    """CaptureStream: one image in, one frame out."""

    sample_rate = MICROS
    audio_seconds = 0.0

    def __init__(self, spec: CaptureSpec):
        self.capture = FaceCapture(load_model(spec), settings_from(spec))
        self.max_pixels = spec.max_image_pixels
        self.count = 0
        self.lost = 0
        self.last_us: int | None = None
        self.warnings: list[str] = []

    def opened(self) -> Opened:
        return CAPTURE_OPENED

    def image(self, out: Replies, body) -> None:
        out.block(self.process(*p.unpack_image(body)))

    def end(self, out: Replies) -> None:
        self.close()
        self.finish(out, self.done())

    def process(self, ts_us: int, width: int, height: int, encoding: int, data: bytes) -> p.FrameBlock:
        if ts_us < 0 or (self.last_us is not None and ts_us <= self.last_us):
            raise ImageError(f"image.timestamp_us={ts_us} must be >= 0 and after the previous image's "
                             f"({self.last_us}); timestamps must strictly increase", "image.timestamp_us")
        self.last_us = ts_us
        rgb = decode_image(data, encoding, width, height, self.max_pixels)
        frame = self.capture.process(rgb, ts_us)
        block = capture_block(self.count, [frame], [ts_us], 0.0, False)
        self.count += 1
        self.lost += int(frame.face_lost)
        return block

    def done(self) -> Done:
        if self.count and self.lost == self.count:
            self.warnings.append(f"no face was found in any of the {self.count} images; check lighting, framing "
                                 "and that the face is at least ~80 px tall")
        return Done(audio_seconds=0.0, warnings=self.warnings, face_lost_frames=self.lost)

    def close(self) -> None:
        self.capture.close()


class VideoSession(Session):
    """CaptureVideo: the audio track in 1 s chunks, then frames in small blocks, on demand (NEXT)."""

    sample_rate = MICROS
    BLOCK_FRAMES = 10
    AUDIO_CHUNK_S = 1.0

    def __init__(self, spec: CaptureSpec, data: bytes):
        max_pixels = spec.max_image_pixels
        self.reader = VideoReader(data, max_pixels)
        self.capture = FaceCapture(load_model(spec), settings_from(spec))
        self.info = self.reader.info
        self.track: list[tuple[float, int, int, bytes]] = []
        if self.info.has_audio and not spec.skip_audio:
            pcm, rate, start = self.reader.audio()
            step = int(rate * self.AUDIO_CHUNK_S)
            for i in range(0, len(pcm), step):
                self.track.append((start + i / rate, rate, pcm.shape[1], pcm[i:i + step].astype("<i2").tobytes()))
            self.audio_seconds = len(pcm) / rate if rate else 0.0
        else:
            self.audio_seconds = 0.0
        self.frames = self.reader.frames()
        self.count = 0
        self.lost = 0
        self.warnings: list[str] = []
        if not self.info.has_audio:
            self.warnings.append("the video has no audio track")

    def opened(self) -> Opened:
        return dataclasses.replace(CAPTURE_OPENED, video=VideoInfoSpec(**vars(self.info)))

    def begin(self, out: Replies) -> None:
        self.next(out)

    def next(self, out: Replies) -> None:
        """One audio chunk of the file while there are any, then one block of frames."""
        if self.track:
            out.track(*self.track.pop(0))
            return
        block = self.next_block()
        out.block(block)
        if block.last:
            self.finish(out, self.done())

    def next_block(self) -> p.FrameBlock:
        frames, times = [], []
        for rgb, t in self.frames:
            f = self.capture.process(rgb, int(round(t * MICROS)))
            frames.append(f)
            times.append(int(round(t * MICROS)))
            if len(frames) == self.BLOCK_FRAMES:
                break
        last = len(frames) < self.BLOCK_FRAMES
        if last:  # a full final block is followed by an empty last one; cheap and simple
            self.close()
        block = capture_block(self.count, frames, times, self.audio_seconds, last)
        self.count += len(frames)
        self.lost += int(block.face_lost.sum())
        return block

    def done(self) -> Done:
        if self.count == 0:
            self.warnings.append("the video stream holds no decodable frames")
        elif self.lost / self.count > 0.05:
            self.warnings.append(f"no face in {self.lost} of {self.count} frames; those frames hold or ease to rest "
                                 "(face_lost)")
        return Done(audio_seconds=self.audio_seconds, warnings=self.warnings, face_lost_frames=self.lost)

    def close(self) -> None:
        self.capture.close()
        self.reader.close()
