"""Capture streams inside a worker: images or a video file -> frames (engine.capture)."""
from __future__ import annotations

import numpy as np

from engine.capture import UNMEASURED, CaptureSettings, FaceCapture, models
from engine.capture.images import ImageError, decode_image
from engine.rig import NUM_BLENDSHAPES
from engine.capture.video import VideoReader
from engine.rig import NUM_BONES
from engine.worker.specs import CaptureSpec, Done, Opened

CAPTURE_ENGINE = "mediapipe-face-landmarker"
# What the worker tells the front about the capture engine (its READY info and each capture stream's OPENED).
CAPTURE_ENGINE_INFO = {"name": CAPTURE_ENGINE, "kind": "capture", "is_default": True, "lookahead_s": 0.0,
                       "description": "MediaPipe Face Landmarker: images/video -> 51 measured ARKit weights "
                                      "(tongueOut unmeasured), head pose, eye rotations"}
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


class Block:
    """Frames in worker-protocol shape (what pack_frames needs)."""

    def __init__(self, first: int, frames: list, times_us: list[int]):
        n = len(frames)
        self.first_index = first
        self.sample_index = np.array(times_us, np.uint64)
        self.weights = np.array([f.weights for f in frames], np.float32).reshape(n, NUM_BLENDSHAPES)
        self.rotations = np.array([f.rotations.reshape(-1) for f in frames], np.float32).reshape(n, NUM_BONES * 4)
        self.translation = np.array([f.translation for f in frames], np.float32).reshape(n, 3)
        self.confidence = np.array([f.confidence for f in frames], np.float32)
        self.face_lost = np.array([f.face_lost for f in frames], bool)


class ImageSession:
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

    def image(self, ts_us: int, width: int, height: int, encoding: int, data: bytes) -> Block:
        if ts_us < 0 or (self.last_us is not None and ts_us <= self.last_us):
            raise ImageError(f"image.timestamp_us={ts_us} must be >= 0 and after the previous image's "
                             f"({self.last_us}); timestamps must strictly increase", "image.timestamp_us")
        self.last_us = ts_us
        rgb = decode_image(data, encoding, width, height, self.max_pixels)
        frame = self.capture.process(rgb, ts_us)
        block = Block(self.count, [frame], [ts_us])
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


class VideoSession:
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

    def next_item(self):
        """('track', tuple) or ('frames', Block, last)."""
        if self.track:
            return ("track", self.track.pop(0))
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
        block = Block(self.count, frames, times)
        self.count += len(frames)
        self.lost += int(block.face_lost.sum())
        return ("frames", block, last)

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
