"""Output of a rendered track: PNG sequences and H.264 MP4 (yuv420p) with the speech muxed as AAC, via PyAV."""
from __future__ import annotations

import fractions
import pathlib

import numpy as np


def frame_schedule(times: np.ndarray, fps: float) -> np.ndarray:
    """For each output frame k (shown at k / fps), the index of the input frame to show. Each input frame is placed
    in the nearest output slot, floor(time * fps + 1/2), so time codes a sample off k / fps still land on k; a slot
    shows the last frame placed at or before it (a gap repeats the previous frame, two frames in one slot keep the
    later). Output length: the last frame's slot + 1 (= N for a track at that fps)."""
    slots = np.floor(np.asarray(times, np.float64) * fps + 0.5).astype(np.int64)
    k = np.arange(int(slots[-1]) + 1)
    return np.maximum(np.searchsorted(slots, k, side="right") - 1, 0)


def _rate(fps: float) -> fractions.Fraction:
    return fractions.Fraction(fps).limit_denominator(1001)


class PngSequenceWriter:
    """frame_000000.png, frame_000001.png, ...: output frame k shows time k / fps."""

    def __init__(self, directory: str | pathlib.Path, compress_level: int = 3):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.compress_level = compress_level
        self._last: tuple[int, bytes] | None = None

    def write(self, rgb: np.ndarray, key: int | None = None) -> pathlib.Path:
        """Write one frame; `key` identifies its content so a repeated frame reuses the encoded bytes."""
        import io

        from PIL import Image

        path = self.dir / f"frame_{self.count:06d}.png"
        if key is not None and self._last is not None and self._last[0] == key:
            data = self._last[1]
        else:
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="PNG", compress_level=self.compress_level)
            data = buf.getvalue()
            self._last = (key, data) if key is not None else None
        path.write_bytes(data)
        self.count += 1
        return path

    def close(self) -> None:
        pass


class Mp4Writer:
    """H.264 (libx264, yuv420p, CRF 18) at a constant frame rate; with `audio`, that file's first audio stream is
    decoded and muxed as AAC starting at time 0, the clock the frames' time codes are on."""

    def __init__(self, path: str | pathlib.Path, width: int, height: int, fps: float,
                 audio: str | pathlib.Path | None = None, crf: int = 18):
        import av

        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even image sides, got {width}x{height}")
        self.path = pathlib.Path(path)
        self.audio = pathlib.Path(audio) if audio else None
        rate, layout = self._probe_audio(self.audio) if self.audio is not None else (0, "")
        self.container = av.open(str(self.path), mode="w")
        self.stream = self.container.add_stream("libx264", rate=_rate(fps))
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.stream.codec_context.time_base = 1 / _rate(fps)
        if self.audio is not None:  # every stream must exist before the first packet is muxed
            self.audio_stream = self.container.add_stream("aac", rate=rate, layout=layout)
            self.audio_stream.bit_rate = 128000
            self.audio_layout = layout
        self.count = 0

    @staticmethod
    def _probe_audio(path: pathlib.Path) -> tuple[int, str]:
        import av

        if not path.is_file():
            raise ValueError(f"audio file {path} does not exist")
        try:
            with av.open(str(path)) as c:
                if not c.streams.audio:
                    raise ValueError(f"audio file {path} has no audio stream")
                cc = c.streams.audio[0].codec_context
                return cc.sample_rate or 48000, ("mono" if (cc.channels or 1) == 1 else "stereo")
        except av.FFmpegError as exc:
            raise ValueError(f"audio file {path} cannot be read: {exc}") from exc

    def write(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.count
        self.count += 1
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        if self.audio is not None:
            import av

            try:
                self._mux_audio()
            except av.FFmpegError as exc:
                raise ValueError(f"audio file {self.audio} could not be decoded: {exc}") from exc
        self.container.close()

    def abort(self) -> None:
        """Stop after an error: close the file and remove it rather than leave a truncated video behind."""
        try:
            self.container.close()
        except Exception:  # the container may already be in a failed state
            pass
        self.path.unlink(missing_ok=True)

    def _mux_audio(self) -> None:
        import av

        with av.open(str(self.audio)) as src:
            ain = src.streams.audio[0]
            out = self.audio_stream
            resampler = av.AudioResampler(format="fltp", layout=self.audio_layout, rate=out.codec_context.sample_rate)
            for frame in src.decode(ain):
                frame.pts = None
                for rs in resampler.resample(frame):
                    for packet in out.encode(rs):
                        self.container.mux(packet)
            for rs in resampler.resample(None):
                for packet in out.encode(rs):
                    self.container.mux(packet)
            for packet in out.encode(None):
                self.container.mux(packet)
