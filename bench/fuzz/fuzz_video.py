"""Fuzz the video container path of CaptureVideo (engine/capture/video.py VideoReader over PyAV/ffmpeg):
open, the audio track (as the worker reads it first), then up to 8 frames.

Input: the whole file. max_pixels is the server's default (4096 x 4096).

Clean rejection: VideoError (a ValueError saying what is wrong with video_file). Checked on success: the
audio is (n, channels) int16 with channels 1 or 2 and, when there are samples, a positive rate (the worker
divides by it); frames are H x W x 3 uint8 with strictly increasing finite times.
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench.fuzz import harness  # noqa: E402

import atheris  # noqa: E402
import numpy as np  # noqa: E402

with atheris.instrument_imports(include=["engine.capture.video"]):
    from engine.capture.video import VideoError, VideoReader

# Leave av.logging alone: av.logging.set_level() installs a Python log callback that deadlocks with
# ffmpeg's frame threads here (each input then "hangs" in native code); the product never sets it.
MAX_FRAMES = 8


def one_input(data: bytes) -> None:
    try:
        reader = VideoReader(data, 4096 * 4096)
    except VideoError as exc:
        assert str(exc)
        return
    try:
        info = reader.info
        assert info.width >= 0 and info.height >= 0 and math.isfinite(info.fps)
        if info.has_audio:
            pcm, rate, start = reader.audio()
            assert pcm.dtype == np.int16 and pcm.ndim == 2 and pcm.shape[1] in (1, 2), (pcm.dtype, pcm.shape)
            assert not len(pcm) or rate > 0, rate
            assert math.isfinite(start) and start >= 0
        last = -math.inf
        for i, (rgb, t) in enumerate(reader.frames()):
            assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
            assert math.isfinite(t) and t > last, (t, last)
            last = t
            if i + 1 >= MAX_FRAMES:
                break
    except VideoError as exc:
        assert str(exc)
    finally:
        reader.close()


if __name__ == "__main__":
    harness.main("video", one_input, max_len=16384)
