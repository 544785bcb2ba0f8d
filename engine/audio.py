"""Audio input: raw PCM chunks (any split) and whole encoded files -> mono float32.

Decoding: libsndfile via ``soundfile`` first (wav/flac/ogg/mp3, exact and
fast), PyAV (ffmpeg) as the fallback for everything else (m4a/aac, opus, ...).
Resampling: soxr, a band-limited resampler, in streaming mode for live audio.
"""
from __future__ import annotations

import io
import re

import numpy as np
import soxr

ENCODINGS = {"pcm16": (np.dtype("<i2"), 2), "float32": (np.dtype("<f4"), 4)}


class AudioError(ValueError):
    """Bad audio from the client. ``field`` names the request field at fault."""

    def __init__(self, message: str, field: str = "audio"):
        super().__init__(message)
        self.field = field


class AudioTooLong(AudioError):
    """decode_file passed its max_seconds."""


MAX_FLOAT_SAMPLE = 1e6  # a float32 stream sample past this is garbage (full scale is 1; int16-scaled is 32768)
DEAD_PEAK = 1e-4  # a channel that never exceeds -80 dBFS carries nothing
LIVE_PEAK = 1e-3  # ... while another passes -60 dBFS


class Downmix:
    """Stereo (or more) -> mono. Channels are averaged, except that a channel that has stayed silent
    while another carries sound is left out (a dead lavalier channel, a one-sided interface): averaging
    it in would halve the level. The choice follows the peaks seen so far, and is reported once."""

    def __init__(self, channels: int):
        self.channels = channels
        self.peaks = np.zeros(channels, np.float32)
        self.warnings: list[str] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """x (n, channels) float32 -> (n,) float32."""
        if self.channels == 1:
            return x[:, 0].copy()
        if x.shape[0]:
            self.peaks = np.maximum(self.peaks, np.abs(x).max(axis=0))
        live = self.peaks > DEAD_PEAK
        if live.any() and not live.all() and self.peaks.max() > LIVE_PEAK:
            if not self.warnings:
                dead = ", ".join(str(i + 1) for i in np.flatnonzero(~live))
                self.warnings.append(
                    f"channel {dead} of {self.channels} is silent; it was left out of the mono mix (an average "
                    "would be 6 dB quieter) — send mono if only one channel carries the voice")
            return x[:, live].mean(axis=1, dtype=np.float32)
        return x.mean(axis=1, dtype=np.float32)


class PcmDecoder:
    """Turns interleaved PCM byte chunks of any size into mono float32.

    Chunks may split a sample or a channel frame; the remainder is carried to
    the next chunk so nothing is lost.
    """

    def __init__(self, encoding: str, channels: int):
        self.dtype, self.width = ENCODINGS[encoding]
        self.channels = channels
        self.frame_bytes = self.width * channels
        self._carry = b""
        self.samples_in = 0  # per channel
        self.downmix = Downmix(channels)

    def decode(self, data: bytes) -> np.ndarray:
        buf = self._carry + data if self._carry else data
        usable = len(buf) - len(buf) % self.frame_bytes
        self._carry = bytes(buf[usable:])
        x = np.frombuffer(buf, self.dtype, count=usable // self.width)
        if self.dtype.kind == "i":
            x = x.astype(np.float32) * np.float32(1.0 / 32768.0)
        else:
            bad = ~np.isfinite(x)
            if bad.any():
                pos = self.samples_in + int(np.argmax(bad)) // self.channels
                raise AudioError(
                    f"audio.data holds a non-finite float32 sample (NaN or Inf) at sample {pos}; "
                    "send finite values in -1..1", field="audio.data")
            huge = np.abs(x) > MAX_FLOAT_SAMPLE  # the stereo mix and the resampler would overflow to Inf
            if huge.any():
                i = int(np.argmax(huge))
                raise AudioError(
                    f"audio.data holds float32 sample {float(x[i]):g} at sample "
                    f"{self.samples_in + i // self.channels}, far outside -1..1; send float32 samples "
                    "scaled to -1..1", field="audio.data")
            x = x.astype(np.float32, copy=False)
        if self.channels > 1:
            x = self.downmix(x.reshape(-1, self.channels))
        self.samples_in += x.shape[0]
        return x

    @property
    def pending_bytes(self) -> int:
        return len(self._carry)


class StreamResampler:
    """Streaming resampler to the engine rate (identity when rates match).

    soxr "LQ" quality: still band-limited (ample for mouth features, which live
    below 8 kHz) with ~6 ms of delay, where "HQ" would add ~21 ms of latency.
    """

    QUALITY = "LQ"

    def __init__(self, in_rate: int, out_rate: int):
        self._rs = None if in_rate == out_rate else soxr.ResampleStream(
            in_rate, out_rate, 1, dtype="float32", quality=self.QUALITY)
        self.delay_s = _resampler_delay_s(in_rate, out_rate)

    def process(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self._rs is None:
            return x
        return self._rs.resample_chunk(x, last=last)


_DELAYS: dict[tuple[int, int], float] = {}


def _resampler_delay_s(in_rate: int, out_rate: int) -> float:
    """Seconds of output a streaming resampler holds back (measured once per rate pair)."""
    if in_rate == out_rate:
        return 0.0
    key = (in_rate, out_rate)
    if key not in _DELAYS:
        rs = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=StreamResampler.QUALITY)
        out = rs.resample_chunk(np.zeros(in_rate, np.float32))
        _DELAYS[key] = max(0.0, (out_rate - out.shape[0]) / out_rate)
    return _DELAYS[key]


MAX_DECODE_SECONDS = 3600.0  # the largest max_audio_seconds default: decoding stops with AudioError past it


def decode_file(data: bytes, format_hint: str = "", max_seconds: float = MAX_DECODE_SECONDS
                ) -> tuple[np.ndarray, int, list[str]]:
    """Decode a whole encoded audio file to (mono float32, sample_rate, warnings).

    A file cut short (a partial upload, a truncated download) is animated as far
    as it decodes, with a warning; a file with nothing decodable is an error.
    Decoding stops with AudioError past ``max_seconds``: a few hundred bytes of mp3 whose header claims
    hours decode to that many hours of padding (a decompression bomb that would take the worker's memory).
    """
    if not data:
        raise AudioError("audio_file is empty; send the bytes of a wav/flac/ogg/mp3 file", "audio_file")
    errors = []
    if _looks_like_mp3(data, format_hint):
        # ffmpeg honours the LAME gapless header (encoder delay/padding); libsndfile here
        # returns ~0.5 s of trailing padding on some files, so the clip would run long.
        try:
            x, sr = _decode_with_pyav(data, max_seconds)
            return x, sr, []
        except AudioError:
            raise
        except Exception as exc:
            errors.append(f"ffmpeg: {exc}")
    try:
        x, sr, warnings = _decode_with_soundfile(data, max_seconds)
        if x.shape[0]:
            return x, sr, warnings
        errors.append("libsndfile: no samples")
    except AudioError:
        raise
    except Exception as exc:  # libsndfile reports format problems as RuntimeError/LibsndfileError
        # It names its input, here an in-memory buffer ("Error opening <_io.BytesIO object at 0x...>: ");
        # that repr means nothing to the sender.
        errors.append("libsndfile: " + re.sub(r"Error opening <[^>]*>: ", "", str(exc)))
    try:
        x, sr = _decode_with_pyav(data, max_seconds)
        return x, sr, []
    except AudioError:
        raise
    except Exception as exc:
        errors.append(f"ffmpeg: {exc}")
    hint = f" (format_hint={format_hint!r})" if format_hint else ""
    raise AudioError(
        f"audio_file ({len(data)} bytes){hint} is not a decodable audio file; "
        f"send a complete wav/flac/ogg/mp3 file ({'; '.join(errors)})", "audio_file")


def _looks_like_mp3(data: bytes, format_hint: str) -> bool:
    return (format_hint.lower().lstrip(".") == "mp3" or data[:3] == b"ID3"
            or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0))


def _too_long(data: bytes, max_seconds: float) -> AudioError:
    return AudioTooLong(f"audio_file ({len(data)} bytes) decodes to more than {max_seconds:.0f} s of audio, the "
                      "decoder's limit (a damaged header can also claim far more audio than the file holds); "
                      "split the file, or send the audio as a StreamExpression stream", "audio_file")


def _decode_with_soundfile(data: bytes, max_seconds: float = MAX_DECODE_SECONDS) -> tuple[np.ndarray, int, list[str]]:
    import soundfile as sf

    error = ""
    with sf.SoundFile(io.BytesIO(data)) as f:
        declared, sr, fmt = f.frames, f.samplerate, f.format
        mix, blocks, total = Downmix(f.channels), [], 0
        try:
            for block in f.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                total += block.shape[0]
                if total > max_seconds * sr:
                    raise _too_long(data, max_seconds)
                blocks.append(block.copy())
        except RuntimeError as exc:  # e.g. "flac decoder lost sync" at the cut
            if not blocks:
                raise
            error = str(exc)
    # Peaks of the whole file first, so it gets one mix (no level step where a channel turns out dead).
    for block in blocks:
        if block.shape[0]:
            mix.peaks = np.maximum(mix.peaks, np.abs(block).max(axis=0))
    parts = [mix(b) for b in blocks]
    x = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if fmt in ("WAV", "WAVEX"):
        declared = max(declared, _wav_declared_frames(data, x.shape[0]))
    warnings = list(mix.warnings)
    if error or x.shape[0] < declared:
        warnings.append(f"audio_file looks truncated: its header declares {declared / sr:.2f} s but only "
                        f"{x.shape[0] / sr:.2f} s could be decoded; the rest was not animated")
    return x, int(sr), warnings


def _wav_declared_frames(data: bytes, decoded: int) -> int:
    """Frames the RIFF 'data' chunk claims (libsndfile silently trims it to the bytes present)."""
    import struct

    pos, block_align = 12, 0
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == b"fmt " and pos + 22 <= len(data):
            block_align = struct.unpack("<H", data[pos + 20:pos + 22])[0]
        if cid == b"data":
            return size // block_align if block_align else decoded
        pos += 8 + size + (size & 1)
    return decoded


def _decode_with_pyav(data: bytes, max_seconds: float = MAX_DECODE_SECONDS) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(data), mode="r", metadata_errors="replace") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="mono")
        parts, rate, total = [], stream.codec_context.sample_rate or stream.rate, 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray()[0])
                rate = out.sample_rate
                total += out.samples
                if total > max_seconds * rate:
                    raise _too_long(data, max_seconds)
        for out in resampler.resample(None):
            parts.append(out.to_ndarray()[0])
    if not parts:
        raise ValueError("audio stream holds no samples")
    return np.concatenate(parts).astype(np.float32), int(rate)


def resample(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    if in_rate == out_rate:
        return x.astype(np.float32, copy=False)
    return soxr.resample(x, in_rate, out_rate).astype(np.float32, copy=False)
