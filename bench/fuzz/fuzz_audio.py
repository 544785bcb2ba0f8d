"""Fuzz whole-file audio decoding (engine/audio.py decode_file: libsndfile, then PyAV/ffmpeg), as AnimateClip
uses it.

Input: byte 0 picks AnimateClipRequest.format_hint ("", "mp3", "wav", "ogg", "flac", "m4a", ".MP3", "bogus"),
the rest is audio_file.

Clean rejection: AudioError (a ValueError naming audio_file, with what libsndfile and ffmpeg said). A file
that decodes must give 1-D finite-or-not float32 samples and a positive integer sample rate (the worker
rejects zero samples and non-finite samples itself, with AudioError), and warnings as strings.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench.fuzz import harness  # noqa: E402

import atheris  # noqa: E402
import numpy as np  # noqa: E402

with atheris.instrument_imports(include=["engine.audio"]):
    from engine.audio import AudioError, decode_file

HINTS = ("", "mp3", "wav", "ogg", "flac", "m4a", ".MP3", "bogus")


def one_input(data: bytes) -> None:
    if not data:
        return
    hint = HINTS[data[0] % len(HINTS)]
    try:
        x, sr, warnings = decode_file(data[1:], hint)
    except AudioError as exc:
        assert exc.field == "audio_file" and str(exc)
        return
    assert isinstance(x, np.ndarray) and x.ndim == 1 and x.dtype == np.float32, (x.dtype, x.shape)
    assert isinstance(sr, int) and sr > 0, sr
    assert all(isinstance(w, str) and w for w in warnings)


if __name__ == "__main__":
    harness.main("audio", one_input, max_len=16384)
