"""Fuzz the request validation (bridge_server/validation.py) with protobuf bytes off the wire.

Input: byte 0 picks the message (0 ExpressionRequest, 1 AnimateClipRequest, 2 CaptureRequest,
3 CaptureVideoRequest), the rest is its serialized bytes. Bytes protobuf cannot parse are rejected by gRPC
before any handler runs, so a DecodeError is a clean rejection. A parsed message goes through what the
service calls first: stream_config / clip_config (fps, engine, style, transcript, language, phones) /
capture_config.

Clean rejection: StreamError with INVALID_ARGUMENT and a message. Anything else is a crash; an accepted
config is checked for the ranges the workers rely on.
"""
import math
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench.fuzz import harness  # noqa: E402,F401  (sets sys.path)

import atheris  # noqa: E402
import grpc  # noqa: E402
from google.protobuf.message import DecodeError  # noqa: E402

with atheris.instrument_imports(include=["bridge_server.validation"]):
    from bridge_server import validation

from avatarbridge.v1 import bridge_pb2 as pb  # noqa: E402
from bridge_server.workers import StreamError  # noqa: E402
from engine.worker.specs import EngineInfo  # noqa: E402

ENGINES = [EngineInfo(name="learned-v2", kind="expression", is_default=True),
           EngineInfo(name="learned-v1", kind="expression"), EngineInfo(name="dsp-v1", kind="expression")]
SERVER = types.SimpleNamespace(face_landmarker="/nonexistent/face_landmarker.task", max_image_pixels=4096 * 4096)
KINDS = (pb.ExpressionRequest, pb.AnimateClipRequest, pb.CaptureRequest, pb.CaptureVideoRequest)


def check_style(st) -> None:
    assert st.emotion in validation.EMOTIONS.values()
    for k, hi in (("emotion_strength", 1), ("intensity", 2), ("head_motion", 2)):
        v = getattr(st, k)
        assert 0 <= v <= hi and math.isfinite(v), (k, v)


def one_input(data: bytes) -> None:
    if not data:
        return
    msg = KINDS[data[0] % len(KINDS)]()
    try:
        msg.ParseFromString(data[1:])
    except DecodeError:
        return
    try:
        if isinstance(msg, pb.ExpressionRequest):
            spec = validation.stream_config(msg.header, ENGINES)
            assert spec.encoding in ("pcm16", "float32") and 8000 <= spec.sample_rate <= 48000
            assert spec.channels in (1, 2) and spec.fps in (30, 60)
            assert spec.frame_bytes in (2, 4, 8)
            check_style(spec.style)
            assert type(spec).from_json(spec.to_json()) == spec  # crosses the seam unchanged
        elif isinstance(msg, pb.AnimateClipRequest):
            spec = validation.clip_config(msg, ENGINES, 600.0)
            assert spec.fps in (30, 60)
            check_style(spec.style)
            assert len(spec.transcript.encode("utf-8")) <= validation.MAX_TRANSCRIPT_BYTES
            for start, end, label in spec.phones:
                assert 0 <= start < end and math.isfinite(end) and len(label) <= 16
        else:
            spec = validation.capture_config(msg.header, "header", SERVER)
            s = spec.settings
            assert 1 <= s.max_faces <= 4 and -1 <= s.face_index < s.max_faces
            assert type(spec).from_json(spec.to_json()) == spec
    except StreamError as exc:
        assert exc.code == grpc.StatusCode.INVALID_ARGUMENT and exc.message, (exc.code, exc.message)


if __name__ == "__main__":
    harness.main("validation", one_input, max_len=4096)
