"""Wire format between the bridge server (ROUTER) and engine workers (DEALER).

One ZeroMQ frame per message (plus the ROUTER's identity frame): a 13-byte
header ``<kind:1s><stream id:u64><seq:u32>`` and a body. Single frames keep the
per-message cost low; at 200 streams x 25 chunks/s that cost is what limits a
2-core box. Small metadata is JSON (the typed specs of specs.py); frame arrays travel as raw little-endian.

server -> worker                      body
  OPEN    b"O"  open a live stream      specs.StreamSpec
  AUDIO   b"A"  PCM chunk, any split    bytes in the client's encoding
  END     b"E"  end of audio: flush     -
  CLIP    b"F"  decode a whole file     u32 json length, specs.ClipSpec, file bytes (video worker: VideoSpec,
                                        portrait + audio file bytes)
  NEXT    b"N"  next block of a clip    -
  CLOSE   b"C"  forget the stream       -   (no reply)
  STOP    b"S"  exit cleanly            -
  CAPTURE b"P"  open a capture stream   specs.CaptureSpec
  IMAGE   b"I"  one camera image        see pack_image
  VIDEO   b"V"  capture a video file    u32 json length, specs.CaptureSpec, file bytes (as CLIP)
  SPEAK   b"K"  text -> speech + frames specs.SpeakSpec; replies OPENED, then per sentence TRACK + FRAMES
  HUSH    b"X"  barge-in on a Speak     specs.Hush; replies FRAMES (easing to rest, last) + DONE
  PHONES  b"T"  live stream phones      json([[start, end, label], ...])   (no reply)

worker -> server
  READY   b"R"  after loading engines   specs.WorkerInfo
  OPENED  b"o"  reply to OPEN / CLIP    specs.Opened
  BEAT    b"H"  heartbeat, every second -
  FRAMES  b"f"  frames (reply to AUDIO / END / CLIP / NEXT / IMAGE), see pack_frames: expression frames, or
                rendered video frames (the video worker's reply to CLIP / NEXT)
  TRACK   b"a"  a video's audio chunk   <d start><I rate><I channels> + PCM16 (reply to VIDEO / SPEAK / NEXT)
  DONE    b"d"  after END / last block  specs.Done
  ERROR   b"e"  the stream is over      specs.ErrorReply
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

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
_TIMING = struct.Struct("<dd")  # worker received, worker computed (CLOCK_MONOTONIC, shared by the host's processes)
HAS_TRANSLATION, LAST_BLOCK, HAS_QUALITY, HAS_VISEMES, HAS_RIG, HAS_IMAGES, HAS_STATS = 1, 2, 4, 8, 16, 32, 64
HAS_TIMING = 128


def pack(kind: bytes, sid: int = 0, seq: int = 0, body: bytes = b"") -> bytes:
    return _HEAD.pack(kind, sid, seq) + body


def unpack(buf: bytes) -> tuple[bytes, int, int, memoryview]:
    kind, sid, seq = _HEAD.unpack_from(buf)
    return kind, sid, seq, memoryview(buf)[_HEAD.size:]


def pack_clip(spec, data: bytes) -> bytes:
    """A spec (specs.Spec) followed by file bytes: CLIP and VIDEO."""
    js = spec.to_json()
    return _U32.pack(len(js)) + js + data


def unpack_clip(body: memoryview, spec_type):
    """(spec_type instance, file bytes)."""
    (n,) = _U32.unpack_from(body)
    return spec_type.from_json(body[4:4 + n]), bytes(body[4 + n:])


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
    """The one frame type between engine and front: a block of consecutive frames of one stream.

    Expression frames carry the rig (weights, rotations, ...); rendered video frames carry encoded images
    instead. Both are timed by sample_index on the stream's audio clock (sample_rate)."""

    first_index: int
    sample_index: np.ndarray  # (n,) uint64, on the input audio's clock
    weights: np.ndarray | None  # (n, 52) float32; None for rendered video
    rotations: np.ndarray | None  # (n, bones * 4) float32; None for rendered video
    translation: np.ndarray | None  # (n, 3) float32
    audio_seconds: float
    sample_rate: int
    last: bool
    warnings: list[str] = field(default_factory=list)
    confidence: np.ndarray | None = None  # (n,) float32; None = 1.0 for every frame
    face_lost: np.ndarray | None = None  # (n,) bool; capture only
    visemes: np.ndarray | None = None  # (n, V) float32
    images: list[bytes] | None = None  # rendered video: one encoded image (JPEG or raw RGB) per frame
    stats: dict | None = None  # rendered video: the block's timings (engine.video.pipeline.VideoChunk.stats)
    # Live audio: (when the worker received the chunk, when its engine call returned), time.monotonic() seconds;
    # the front splits each chunk's latency into stages with them (metrics.LATENCY_STAGE).
    timing: tuple[float, float] | None = None

    def __len__(self) -> int:
        return int(self.sample_index.shape[0])

    @property
    def times(self) -> np.ndarray:
        """Each frame's time in seconds on the stream's clock."""
        return self.sample_index / float(self.sample_rate)


def pack_frames(b: FrameBlock) -> bytes:
    """The FRAMES body: a fixed header, the JSON warnings (and stats), then raw little-endian arrays."""
    n = len(b)
    has_vis = b.visemes is not None and n > 0
    flags = ((HAS_TRANSLATION if b.translation is not None else 0) | (LAST_BLOCK if b.last else 0)
             | (HAS_QUALITY if b.confidence is not None else 0) | (HAS_VISEMES if has_vis else 0)
             | (HAS_RIG if b.weights is not None else 0) | (HAS_IMAGES if b.images is not None else 0)
             | (HAS_STATS if b.stats else 0) | (HAS_TIMING if b.timing else 0))
    warn = dumps([b.warnings, b.stats] if b.stats else b.warnings) if (b.warnings or b.stats) else b""
    parts = [_FRAMES.pack(b.first_index, n, flags, b.audio_seconds, b.sample_rate, len(warn)), warn,
             np.ascontiguousarray(b.sample_index, "<u8").tobytes()]
    if b.weights is not None:
        parts += [np.ascontiguousarray(b.weights, "<f4").tobytes(), np.ascontiguousarray(b.rotations, "<f4").tobytes()]
    if b.translation is not None:
        parts.append(np.ascontiguousarray(b.translation, "<f4").tobytes())
    if b.confidence is not None:
        lost = np.zeros(n, bool) if b.face_lost is None else b.face_lost
        parts += [np.ascontiguousarray(b.confidence, "<f4").tobytes(), np.ascontiguousarray(lost, "u1").tobytes()]
    if has_vis:
        parts.append(_U32.pack(b.visemes.shape[1]))
        parts.append(np.ascontiguousarray(b.visemes, "<f4").tobytes())
    if b.images is not None:
        parts.append(np.asarray([len(im) for im in b.images], "<u4").tobytes())
        parts += b.images
    if b.timing:
        parts.append(_TIMING.pack(*b.timing))
    return b"".join(parts)


def unpack_frames(body: memoryview, num_blendshapes: int, num_bones: int) -> FrameBlock:
    first, n, flags, seconds, rate, wlen = _FRAMES.unpack_from(body)
    pos = _FRAMES.size
    warnings, stats = [], None
    if wlen:
        extra = loads(body[pos:pos + wlen])
        warnings, stats = extra if flags & HAS_STATS else (extra, None)
    pos += wlen

    def take(dtype: str, count: int) -> np.ndarray:
        nonlocal pos
        arr = np.frombuffer(body, dtype, count, pos)
        pos += arr.nbytes
        return arr

    idx = take("<u8", n)
    weights = rots = None
    if flags & HAS_RIG:
        weights = take("<f4", n * num_blendshapes).reshape(n, num_blendshapes)
        rots = take("<f4", n * num_bones * 4).reshape(n, num_bones * 4)
    trans = take("<f4", n * 3).reshape(n, 3) if flags & HAS_TRANSLATION else None
    conf = lost = None
    if flags & HAS_QUALITY:
        conf = take("<f4", n)
        lost = take("u1", n).astype(bool)
    vis = None
    if flags & HAS_VISEMES:
        (nv,) = _U32.unpack_from(body, pos)
        pos += 4
        vis = take("<f4", n * nv).reshape(n, nv)
    images = None
    if flags & HAS_IMAGES:
        images = []
        for size in take("<u4", n).tolist():
            images.append(bytes(body[pos:pos + size]))
            pos += size
    timing = _TIMING.unpack_from(body, pos) if flags & HAS_TIMING else None
    return FrameBlock(first, idx, weights, rots, trans, seconds, rate, bool(flags & LAST_BLOCK), warnings, conf, lost,
                      vis, images, stats, timing)


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def loads(b) -> object:
    return json.loads(bytes(b))
