"""Wire format between the bridge server (ROUTER) and engine workers (DEALER).

One ZeroMQ frame per message (plus the ROUTER's identity frame): a 13-byte
header ``<kind:1s><stream id:u64><seq:u32>`` and a body. Single frames keep the
per-message cost low; at 200 streams x 25 chunks/s that cost is what limits a
2-core box. Small metadata is JSON; frame arrays travel as raw little-endian.

server -> worker                      body
  OPEN    b"O"  open a live stream      json(config)
  AUDIO   b"A"  PCM chunk, any split    bytes in the client's encoding
  END     b"E"  end of audio: flush     -
  CLIP    b"F"  decode a whole file     u32 json length, json(config), file bytes
  NEXT    b"N"  next block of a clip    -
  CLOSE   b"C"  forget the stream       -   (no reply)
  STOP    b"S"  exit cleanly            -
  CAPTURE b"P"  open a capture stream   json(config)
  IMAGE   b"I"  one camera image        see pack_image
  VIDEO   b"V"  capture a video file    u32 json length, json(config), file bytes (as CLIP)
  SPEAK   b"K"  text -> speech + frames json(config); replies OPENED, then per sentence TRACK + FRAMES
  HUSH    b"X"  barge-in on a Speak     json({at_time}); replies FRAMES (easing to rest, last) + DONE
  PHONES  b"T"  live stream phones      json([[start, end, label], ...])   (no reply)

worker -> server
  READY   b"R"  after loading engines   json(info)
  OPENED  b"o"  reply to OPEN / CLIP    json({engine, lookahead_s})
  BEAT    b"H"  heartbeat, every second -
  FRAMES  b"f"  frames (reply to AUDIO / END / CLIP / NEXT / IMAGE), see pack_frames
  TRACK   b"a"  a video's audio chunk   <d start><I rate><I channels> + PCM16 (reply to VIDEO / SPEAK / NEXT)
  DONE    b"d"  after END / last block  json({audio_seconds, warnings})
  ERROR   b"e"  the stream is over      json({code, message})
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

OPEN, AUDIO, END, CLIP, NEXT, CLOSE, STOP = b"O", b"A", b"E", b"F", b"N", b"C", b"S"
CAPTURE, IMAGE, VIDEO = b"P", b"I", b"V"
SPEAK, HUSH, PHONES = b"K", b"X", b"T"
READY, OPENED, BEAT, FRAMES, DONE, ERROR, TRACK = b"R", b"o", b"H", b"f", b"d", b"e", b"a"

_HEAD = struct.Struct("<cQI")
_FRAMES = struct.Struct("<QIBdII")  # first_index, n, flags, audio_seconds, sample_rate, warnings length
_U32 = struct.Struct("<I")
_IMAGE = struct.Struct("<qIIB")  # timestamp_us, width, height, encoding
_TRACK = struct.Struct("<dII")  # start seconds, sample rate, channels
HAS_TRANSLATION, LAST_BLOCK, HAS_QUALITY, HAS_VISEMES = 1, 2, 4, 8


def pack(kind: bytes, sid: int = 0, seq: int = 0, body: bytes = b"") -> bytes:
    return _HEAD.pack(kind, sid, seq) + body


def unpack(buf: bytes) -> tuple[bytes, int, int, memoryview]:
    kind, sid, seq = _HEAD.unpack_from(buf)
    return kind, sid, seq, memoryview(buf)[_HEAD.size:]


def pack_clip(cfg: dict, data: bytes) -> bytes:
    js = dumps(cfg)
    return _U32.pack(len(js)) + js + data


def unpack_clip(body: memoryview) -> tuple[dict, bytes]:
    (n,) = _U32.unpack_from(body)
    return loads(body[4:4 + n]), bytes(body[4 + n:])


def pack_image(timestamp_us: int, width: int, height: int, encoding: int, data: bytes) -> bytes:
    return _IMAGE.pack(timestamp_us, width, height, encoding) + data


def unpack_image(body: memoryview) -> tuple[int, int, int, int, bytes]:
    ts, w, h, enc = _IMAGE.unpack_from(body)
    return ts, w, h, enc, bytes(body[_IMAGE.size:])


def pack_track(start: float, rate: int, channels: int, pcm16: bytes) -> bytes:
    return _TRACK.pack(start, rate, channels) + pcm16


def unpack_track(body: memoryview) -> tuple[float, int, int, bytes]:
    start, rate, ch = _TRACK.unpack_from(body)
    return start, rate, ch, bytes(body[_TRACK.size:])


@dataclass
class FrameBlock:
    first_index: int
    sample_index: np.ndarray  # (n,) uint64, on the input audio's clock
    weights: np.ndarray  # (n, 52) float32
    rotations: np.ndarray  # (n, bones * 4) float32
    translation: np.ndarray | None  # (n, 3) float32
    audio_seconds: float
    sample_rate: int
    last: bool
    warnings: list[str]
    confidence: np.ndarray | None = None  # (n,) float32; None = 1.0 for every frame
    face_lost: np.ndarray | None = None  # (n,) bool; capture only
    visemes: np.ndarray | None = None  # (n, V) float32

    def __len__(self) -> int:
        return int(self.sample_index.shape[0])


def pack_frames(first_index: int, sample_index: np.ndarray, weights: np.ndarray, rotations: np.ndarray,
                translation: np.ndarray | None, audio_seconds: float, sample_rate: int, last: bool,
                warnings: list[str], confidence: np.ndarray | None = None,
                face_lost: np.ndarray | None = None, visemes: np.ndarray | None = None) -> bytes:
    n = int(sample_index.shape[0])
    has_vis = visemes is not None and n > 0
    flags = ((HAS_TRANSLATION if translation is not None else 0) | (LAST_BLOCK if last else 0)
             | (HAS_QUALITY if confidence is not None else 0) | (HAS_VISEMES if has_vis else 0))
    warn = dumps(warnings) if warnings else b""
    parts = [_FRAMES.pack(first_index, n, flags, audio_seconds, sample_rate, len(warn)), warn,
             np.ascontiguousarray(sample_index, "<u8").tobytes(), np.ascontiguousarray(weights, "<f4").tobytes(),
             np.ascontiguousarray(rotations, "<f4").tobytes()]
    if translation is not None:
        parts.append(np.ascontiguousarray(translation, "<f4").tobytes())
    if confidence is not None:
        lost = np.zeros(n, bool) if face_lost is None else face_lost
        parts += [np.ascontiguousarray(confidence, "<f4").tobytes(), np.ascontiguousarray(lost, "u1").tobytes()]
    if has_vis:
        parts.append(struct.pack("<I", visemes.shape[1]))
        parts.append(np.ascontiguousarray(visemes, "<f4").tobytes())
    return b"".join(parts)


def unpack_frames(body: memoryview, num_blendshapes: int, num_bones: int) -> FrameBlock:
    first, n, flags, seconds, rate, wlen = _FRAMES.unpack_from(body)
    pos = _FRAMES.size
    warnings = loads(body[pos:pos + wlen]) if wlen else []
    pos += wlen

    def take(dtype: str, count: int) -> np.ndarray:
        nonlocal pos
        arr = np.frombuffer(body, dtype, count, pos)
        pos += arr.nbytes
        return arr

    idx = take("<u8", n)
    weights = take("<f4", n * num_blendshapes).reshape(n, num_blendshapes)
    rots = take("<f4", n * num_bones * 4).reshape(n, num_bones * 4)
    trans = take("<f4", n * 3).reshape(n, 3) if flags & HAS_TRANSLATION else None
    conf = lost = None
    if flags & HAS_QUALITY:
        conf = take("<f4", n)
        lost = take("u1", n).astype(bool)
    vis = None
    if flags & HAS_VISEMES:
        (nv,) = struct.unpack_from("<I", body, pos)
        pos += 4
        vis = take("<f4", n * nv).reshape(n, nv)
    return FrameBlock(first, idx, weights, rots, trans, seconds, rate, bool(flags & LAST_BLOCK), warnings, conf, lost,
                      vis)


def pack_video(meta: dict, frames: list[bytes]) -> bytes:
    """The video worker's FRAMES body: u32 json length, json(meta + each frame's size), the encoded frames."""
    meta = dict(meta, sizes=[len(f) for f in frames])
    js = dumps(meta)
    return _U32.pack(len(js)) + js + b"".join(frames)


class VideoBlock:
    """A decoded video FRAMES body: metadata + the encoded frames (JPEG or raw RGB)."""

    def __init__(self, body: memoryview):
        (n,) = _U32.unpack_from(body)
        self.meta = loads(body[4:4 + n])
        pos, self.frames = 4 + n, []
        for size in self.meta["sizes"]:
            self.frames.append(bytes(body[pos:pos + size]))
            pos += size
        self.first_index = self.meta["first_index"]
        self.times = self.meta["times"]
        self.last = self.meta["last"]

    def __len__(self) -> int:
        return len(self.frames)


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def loads(b) -> object:
    return json.loads(bytes(b))
