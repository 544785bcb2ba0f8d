"""A StreamExpression client for tests/test_network_faults.py, run inside the client namespace.

``python tests/netfault_client.py stream|noread TARGET WAV [--keepalive-ms MS] [--repeat N]``

Prints one JSON object per line, each with ``t`` (CLOCK_MONOTONIC, the same clock in every process):
``{"event": "frames"}`` when the first frames arrive, then ``{"event": "done", "frames": N, "frames_sent": N,
"digest": sha256 of the frames}`` or ``{"event": "error", "code": "UNAVAILABLE", "details": ...}``.
``stream`` sends the audio paced at real time and reads as it goes. ``noread`` sends the audio (repeated N
times) as fast as the server takes it and reads nothing until a line arrives on stdin.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

import grpc
import numpy as np

from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc
from bridge_server.client import CHANNEL_OPTIONS, stream_requests
from engine.audio import decode_file


def emit(event: str, **kw) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **kw}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["stream", "noread"])
    ap.add_argument("target")
    ap.add_argument("wav")
    ap.add_argument("--keepalive-ms", type=int, default=0, help="override the shipped client keepalive time")
    ap.add_argument("--keepalive-timeout-ms", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--fast", action="store_true", help="stream: send as fast as the server takes it")
    args = ap.parse_args()
    options = dict(CHANNEL_OPTIONS)
    if args.keepalive_ms:
        options["grpc.keepalive_time_ms"] = args.keepalive_ms
    if args.keepalive_timeout_ms:
        options["grpc.keepalive_timeout_ms"] = args.keepalive_timeout_ms
    if args.mode == "noread":
        # No BDP probing: the receive window stays at HTTP/2's 64 KiB instead of growing to megabytes, so the
        # server's bound on frames waiting for this client is reached with seconds of audio, not hours.
        options["grpc.http2.bdp_probe"] = 0
    channel = grpc.insecure_channel(args.target, options=list(options.items()))
    stub = pb_grpc.AvatarBridgeStub(channel)
    with open(args.wav, "rb") as fh:
        x, sr, _ = decode_file(fh.read())
    pcm = (np.clip(np.tile(x, args.repeat), -1, 1) * 32767).astype("<i2").tobytes()
    reqs = stream_requests(pcm, sr, stream_id=args.mode, realtime=args.mode == "stream" and not args.fast)
    call = stub.StreamExpression(reqs, timeout=120, wait_for_ready=True)
    emit("started")
    if args.mode == "noread":
        sys.stdin.readline()
    digest, frames, sent = hashlib.sha256(), 0, -1
    try:
        for r in call:
            which = r.WhichOneof("msg")
            if which == "frames":
                if frames == 0:
                    emit("frames")
                frames += len(r.frames.frames)
                for f in r.frames.frames:
                    digest.update(f.SerializeToString(deterministic=True))
            elif which == "status":
                sent = r.status.frames_sent
    except grpc.RpcError as err:
        emit("error", code=err.code().name, details=err.details(), frames=frames)
        return
    emit("done", frames=frames, frames_sent=sent, digest=digest.hexdigest(), samples=int(x.shape[0]) * args.repeat,
         rate=sr)


if __name__ == "__main__":
    main()
