"""The one place that turns what a worker sent (frame blocks, opened / done metadata) into protobuf messages."""
from __future__ import annotations

import struct

import numpy as np

from avatarbridge.v1 import bridge_pb2 as pb
from engine.rig import ARKIT_NAMES, BONE_NAMES
from engine.worker.specs import Done, Opened

API_VERSION = "avatarbridge.v1"
MICROS = 1_000_000  # capture time codes: sample_index = timestamp in microseconds


def frame_batch(block, sample_rate: int) -> pb.FrameBatch:
    """A worker's frame block -> FrameBatch; times are sample_index / sample_rate on the input's clock.

    Encoded straight from the block's arrays into protobuf's wire format, then parsed once: building a Frame
    message per frame from Python lists cost ~14 µs a frame, the largest piece of the front's work per live chunk
    (tests/test_stream.py checks this against the message built field by field)."""
    return pb.FrameBatch.FromString(encode_frame_batch(block, sample_rate))


def frames_response(response_type, field: int, block, sample_rate: int):
    """A response message (e.g. ExpressionResponse) whose FrameBatch field number ``field`` holds the block, parsed
    from wire bytes in one pass (wrapping a FrameBatch message in its response copied it once more)."""
    batch = encode_frame_batch(block, sample_rate)
    return response_type.FromString(_varint(field << 3 | 2) + _varint(len(batch)) + batch)


_BYTE = [bytes((i,)) for i in range(128)]


def _varint(v: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int (the short forms unrolled: most are frame indices and
    sample positions below 2^21)."""
    if v < 0x80:
        return _BYTE[v]
    if v < 0x4000:
        return bytes(((v & 0x7F) | 0x80, v >> 7))
    if v < 0x200000:
        return bytes(((v & 0x7F) | 0x80, ((v >> 7) & 0x7F) | 0x80, v >> 14))
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


_F64 = struct.Struct("<d")
_VEC3 = struct.Struct("<BfBfBf")
_ONE_F32 = struct.pack("<f", 1.0)


def _rows(tag: bytes, arr) -> tuple[bytes, bytes, int]:
    """A 2-D array as packed repeated floats, one row per frame: (field header, all rows' bytes, row size)."""
    a = np.ascontiguousarray(arr, "<f4")
    size = a.shape[1] * 4 if a.ndim == 2 else 0
    return (tag + _varint(size) if size else b""), a.tobytes(), size


def encode_frame_batch(block, sample_rate: int) -> bytes:
    """FrameBatch wire bytes (proto field numbers in proto/avatarbridge/v1/bridge.proto, messages Frame and
    FrameBatch): index 1, time 2, sample_index 3, weights 4, rotations 5, head_translation 6, confidence 7,
    face_lost 8, visemes 9; FrameBatch.frames 1. Each array is converted once and sliced per frame."""
    n = len(block)
    idx = block.sample_index.tolist()
    rig = block.weights is not None  # rendered video frames carry images instead
    wh, wb, ws = _rows(b"\x22", block.weights) if rig else (b"", b"", 0)
    rh, rb, rs = _rows(b"\x2a", block.rotations) if rig else (b"", b"", 0)
    vh, vb, vs = _rows(b"\x4a", block.visemes) if block.visemes is not None else (b"", b"", 0)
    trans = block.translation.tolist() if block.translation is not None else None
    conf = (np.ascontiguousarray(block.confidence, "<f4").tobytes() if block.confidence is not None
            else _ONE_F32 * n)
    lost = block.face_lost.tolist() if block.face_lost is not None else None
    out = []
    for i in range(n):
        frame = b"".join((
            b"\x08", _varint(block.first_index + i), b"\x11", _F64.pack(idx[i] / sample_rate), b"\x18", _varint(idx[i]),
            wh, wb[i * ws:(i + 1) * ws], rh, rb[i * rs:(i + 1) * rs],
            b"\x32\x0f" + _VEC3.pack(0x0D, trans[i][0], 0x15, trans[i][1], 0x1D, trans[i][2]) if trans else b"",
            b"\x3d", conf[4 * i:4 * i + 4], b"\x40\x01" if lost is not None and lost[i] else b"",
            vh, vb[i * vs:(i + 1) * vs]))
        out.append(b"\x0a" + _varint(len(frame)) + frame)
    return b"".join(out)


def expression_header(stream_id: str, fps: int, sample_rate: int, opened: Opened) -> pb.ExpressionHeader:
    """The header of every stream of frames (expression, capture, Speak), from the worker's OPENED reply."""
    return pb.ExpressionHeader(
        stream_id=stream_id, blendshape_names=ARKIT_NAMES, bone_names=BONE_NAMES, fps=fps,
        lookahead_ms=opened.lookahead_s * 1000.0, sample_rate=sample_rate, engine=opened.engine,
        api_version=API_VERSION, unmeasured_blendshapes=opened.unmeasured_blendshapes,
        viseme_names=opened.viseme_names)


def stream_status(sent: int, done: Done, opened: Opened) -> pb.StreamStatus:
    """The final status of a stream of frames, from the worker's DONE reply."""
    return pb.StreamStatus(frames_sent=sent, audio_seconds=done.audio_seconds, warnings=done.warnings,
                           engine=opened.engine, face_lost_frames=done.face_lost_frames)


def video_header(stream_id: str, opened: Opened, encoding: int) -> pb.VideoHeader:
    """The video worker's OPENED: engine = the model it runs, video = the size, rate and frames to expect."""
    v = opened.video
    return pb.VideoHeader(stream_id=stream_id, width=v.width, height=v.height, fps=v.fps, model=opened.engine,
                          frame_encoding=encoding, expected_frames=v.frame_count, warnings=opened.warnings)


def video_frame_batches(block, max_bytes: int):
    """A block of rendered video frames -> lists of VideoFrame, each list under the gRPC send limit."""
    batch, size = [], 0
    times = block.times.tolist()
    for i, data in enumerate(block.images):
        if batch and size + len(data) + 64 > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(pb.VideoFrame(index=block.first_index + i, time=times[i], data=data))
        size += len(data) + 64
    if batch:
        yield batch
