"""MP4 output: H.264 frames written block by block (constant memory) with the input audio muxed (PyAV)."""
from __future__ import annotations

import fractions

import numpy as np


class Mp4Writer:
    def __init__(self, path: str, width: int, height: int, fps: int, audio16k: np.ndarray | None = None,
                 crf: int = 18):
        import av
        self.av = av
        self.out = av.open(path, mode="w")
        self.v = self.out.add_stream("libx264", rate=fps)
        self.v.width, self.v.height, self.v.pix_fmt = width, height, "yuv420p"
        self.v.options = {"crf": str(crf)}
        self.v.codec_context.time_base = fractions.Fraction(1, fps)
        self.fps = fps
        self.a = None
        if audio16k is not None:
            self.a = self.out.add_stream("aac", rate=16000)
            self.a.layout = "mono"
            self.audio = audio16k.astype(np.float32)
        self.frames = 0
        self.end_s = 0.0

    def write(self, frames: np.ndarray, times_s: np.ndarray) -> None:
        for f, t in zip(frames, times_s):
            vf = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts = int(round(float(t) * self.fps))  # on the audio's clock: the video may start late
            vf.time_base = fractions.Fraction(1, self.fps)
            for pkt in self.v.encode(vf):
                self.out.mux(pkt)
            self.frames += 1
            self.end_s = float(t) + 1.0 / self.fps

    def close(self) -> None:
        for pkt in self.v.encode():
            self.out.mux(pkt)
        if self.a is not None:
            self.audio = self.audio[:int(round(self.end_s * 16000))]  # no audio past the last frame
            n = 1024
            for i in range(0, self.audio.size, n):
                af = self.av.AudioFrame.from_ndarray(self.audio[None, i:i + n], format="flt", layout="mono")
                af.sample_rate = 16000
                af.pts = i
                af.time_base = fractions.Fraction(1, 16000)
                for pkt in self.a.encode(af):
                    self.out.mux(pkt)
            for pkt in self.a.encode():
                self.out.mux(pkt)
        self.out.close()
