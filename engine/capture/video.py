"""Video files -> RGB frames with time codes, plus the audio track (PyAV)."""
from __future__ import annotations

import io
import pathlib
from dataclasses import dataclass

import numpy as np

from engine.capture.landmarker import CaptureSettings, FaceCapture


class VideoError(ValueError):
    pass


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    duration: float
    frame_count: int  # from the container; 0 when unknown
    codec: str
    has_audio: bool
    audio_sample_rate: int
    audio_channels: int


class VideoReader:
    """Decodes a whole file held in memory (bytes) or on disk. Time codes start at the
    container's earliest start time, so video and audio share one clock from 0."""

    def __init__(self, source: bytes | str | pathlib.Path, max_pixels: int = 4096 * 4096):
        import av

        self.max_pixels = max_pixels

        try:
            self.container = av.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else str(source),
                                     metadata_errors="replace")  # a tag that is not UTF-8 must not fail the file
        except av.error.FFmpegError as exc:
            raise VideoError(f"video_file could not be opened as a video ({exc}); send an mp4/mov/mkv/webm file") from None
        if not self.container.streams.video:
            kinds = ", ".join(sorted({s.type for s in self.container.streams})) or "no streams"
            self.container.close()
            raise VideoError(f"video_file has no video stream (it has: {kinds}); send a file with video")
        self.vstream = v = self.container.streams.video[0]
        if v.codec_context is None:  # a codec id ffmpeg has no decoder for
            self.container.close()
            raise VideoError("video_file's video stream uses a codec this server has no decoder for; "
                             "send H.264, HEVC, VP8/9, AV1 or MPEG-4 video")
        v.thread_type = "AUTO"
        a = self.container.streams.audio[0] if self.container.streams.audio else None
        if a is not None and a.codec_context is None:  # an audio track we cannot decode: treated as none
            a = None
        self.astream = a
        rate = v.average_rate or v.guessed_rate or 0
        dur = float(self.container.duration / 1e6) if self.container.duration else 0.0
        self.info = VideoInfo(v.codec_context.width, v.codec_context.height, float(rate), dur, int(v.frames or 0),
                              v.codec_context.name, a is not None, a.codec_context.sample_rate if a else 0,
                              a.codec_context.channels if a else 0)
        if self.info.width * self.info.height > max_pixels:
            raise VideoError(f"the video is {self.info.width}x{self.info.height}, over the server's limit of "
                             f"{max_pixels} pixels per frame (max_image_pixels); downscale it")
        starts = [s.start_time * s.time_base for s in self.container.streams if s.start_time is not None and s.time_base]
        self.t0 = float(min(starts)) if starts else 0.0

    def frames(self):
        """Yields (rgb HxWx3 uint8, time in seconds from the shared zero)."""
        import av

        n = 0
        last = -1.0
        try:
            self.container.seek(0)
            for frame in self.container.decode(self.vstream):
                t = (frame.time - self.t0) if frame.time is not None else n / (self.info.fps or 25.0)
                if t <= last:  # broken timestamps: keep the clock strictly increasing
                    t = last + 1e-3
                last = t
                if frame.width * frame.height > self.max_pixels:  # a stream may change size after its header
                    raise VideoError(f"video_file's frame {n} is {frame.width}x{frame.height}, over the server's "
                                     f"limit of {self.max_pixels} pixels per frame (max_image_pixels); downscale it")
                n += 1
                yield frame.to_ndarray(format="rgb24"), t
        except av.error.FFmpegError as exc:
            if n == 0:
                raise VideoError(f"video_file's video stream could not be decoded ({exc})") from None
            raise VideoError(f"video_file is damaged after frame {n} ({exc})") from None

    def audio(self) -> tuple[np.ndarray, int, float]:
        """(interleaved int16 samples (n, channels), sample rate, start time) of the first audio track."""
        import av

        if self.astream is None:
            return np.zeros((0, 1), np.int16), 0, 0.0
        a = self.astream
        ch = 2 if a.codec_context.channels >= 2 else 1  # more than two channels: downmixed to stereo
        res = av.AudioResampler(format="s16", layout="stereo" if ch == 2 else "mono", rate=a.codec_context.sample_rate)
        chunks, start = [], None
        try:
            self.container.seek(0)
            for frame in self.container.decode(a):
                if start is None and frame.time is not None:
                    start = frame.time - self.t0
                chunks += [out.to_ndarray().reshape(-1, ch) for out in res.resample(frame)]  # packed s16: (1, n*ch)
            chunks += [out.to_ndarray().reshape(-1, ch) for out in res.resample(None)]
        except av.error.FFmpegError as exc:
            raise VideoError(f"video_file's audio track is damaged ({exc}); re-encode the file, or set "
                             "skip_audio to capture the video alone") from None
        pcm = np.concatenate(chunks) if chunks else np.zeros((0, ch), np.int16)
        return pcm, a.codec_context.sample_rate, float(max(start or 0.0, 0.0))

    def close(self) -> None:
        self.container.close()


@dataclass
class VideoCapture:
    """Everything measured on one video (for evaluation and offline use)."""
    info: VideoInfo
    times: np.ndarray  # (n,) seconds
    weights: np.ndarray  # (n, 52)
    rotations: np.ndarray  # (n, 16) xyzw per bone
    translation: np.ndarray  # (n, 3) metres
    confidence: np.ndarray  # (n,)
    found: np.ndarray  # (n,) bool
    landmarks: np.ndarray  # (n, 478, 3) normalised image coords, NaN where no face
    audio: np.ndarray  # mono float32 -1..1
    sample_rate: int
    audio_start: float

    @property
    def fps(self) -> float:
        return self.info.fps


def capture_video_file(source, model_path: str | None = None, settings: CaptureSettings | None = None) -> VideoCapture:
    from engine.capture.models import locate

    reader = VideoReader(source)
    cap = FaceCapture(str(locate(explicit=model_path)), settings)
    try:
        rows = []
        for rgb, t in reader.frames():
            f = cap.process(rgb, int(round(t * 1e6)))
            lm = f.landmarks if f.landmarks is not None else np.full((478, 3), np.nan, np.float32)
            rows.append((t, f, lm))
        pcm, sr, start = reader.audio()
    finally:
        cap.close()
        reader.close()
    n = len(rows)
    return VideoCapture(
        reader.info, np.array([r[0] for r in rows]),
        np.array([r[1].weights for r in rows]).reshape(n, -1),
        np.array([r[1].rotations.reshape(-1) for r in rows]).reshape(n, 16),
        np.array([r[1].translation for r in rows]).reshape(n, 3),
        np.array([r[1].confidence for r in rows]), np.array([not r[1].face_lost for r in rows], bool),
        np.array([r[2] for r in rows]).reshape(n, 478, 3),
        (pcm.astype(np.float32).mean(axis=1) / 32768.0) if len(pcm) else np.zeros(0, np.float32), sr, start)
