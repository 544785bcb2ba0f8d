"""Fuzz the streaming PCM path of StreamExpression (engine/audio.py PcmDecoder + StreamResampler), with
chunks split anywhere, as a client may send them.

Input: byte 0 = options (bit 0: float32 else pcm16, bit 1: stereo, bits 2-3: rate 16000/8000/44100/48000),
byte 1 seeds the chunk sizes, the rest is the audio bytes.

Clean rejection: AudioError on field audio.data (a NaN/Inf float32 sample, or one beyond +-1e6). Checked on success: every whole
sample frame is decoded exactly once (samples_in == bytes // frame_bytes, the rest pending), the samples are
finite float32, and the resampler's output stays finite with a length near the rate ratio.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench.fuzz import harness  # noqa: E402

import atheris  # noqa: E402
import numpy as np  # noqa: E402

with atheris.instrument_imports(include=["engine.audio"]):
    from engine.audio import AudioError, PcmDecoder, StreamResampler

RATES = (16000, 8000, 44100, 48000)


def one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    opts, seed, body = data[0], data[1], data[2:]
    enc = "float32" if opts & 1 else "pcm16"
    ch = 2 if opts & 2 else 1
    rate = RATES[(opts >> 2) & 3]
    dec, rs = PcmDecoder(enc, ch), StreamResampler(rate, 16000)
    pos, n_out, k = 0, 0, seed
    try:
        while pos < len(body):
            k = (k * 73 + 41) & 0xFF
            size = k % 97 if k & 1 else k * 5
            chunk = body[pos:pos + size]
            pos += len(chunk)  # size 0: an empty chunk, the next size differs
            x = dec.decode(chunk)
            assert x.dtype == np.float32 and x.ndim == 1 and np.isfinite(x).all()
            y = rs.process(x)
            assert y.dtype == np.float32 and np.isfinite(y).all()
            n_out += y.shape[0]
        y = rs.process(np.zeros(0, np.float32), last=True)
        n_out += y.shape[0]
    except AudioError as exc:
        assert exc.field == "audio.data" and ("non-finite" in str(exc) or "far outside -1..1" in str(exc))
        return
    fb = dec.frame_bytes
    assert dec.samples_in == len(body) // fb and dec.pending_bytes == len(body) % fb, (dec.samples_in, len(body))
    expect = dec.samples_in * 16000 / rate
    assert abs(n_out - expect) <= 2 + 0.01 * expect, (n_out, expect)


if __name__ == "__main__":
    harness.main("pcm", one_input, max_len=16384)
