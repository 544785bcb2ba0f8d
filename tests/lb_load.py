"""Load generator for the load-balancer tests: N real-time StreamExpression streams, one JSON line out.

Run as a process (inside a client network namespace in tests/test_load_balancer.py):

    python tests/lb_load.py --target 10.77.0.2:50051 --streams 9 --seconds 6 --out result.json

Each stream sends 16 kHz PCM16 speech paced at real time in 40 ms chunks and reads every frame. Per stream the
result holds the backend that served it (the `x-avatar-bridge-backend` response header the load balancer adds),
the final gRPC code and details, frames received and expected, and when it ended (wall clock, to compare with
the moment a backend was killed).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from avatarbridge.v1 import bridge_pb2 as pb  # noqa: E402
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc  # noqa: E402

RATE = 16000
BACKEND_HEADER = "x-avatar-bridge-backend"


def speech_pcm(seconds: float) -> bytes:
    """hello.wav at 16 kHz, looped to `seconds`."""
    import soundfile as sf
    import soxr

    x, sr = sf.read(os.path.join(ROOT, "examples", "hello.wav"), dtype="float32", always_2d=True)
    x = soxr.resample(x.mean(axis=1), sr, RATE)
    n = int(seconds * RATE)
    x = np.tile(x, math.ceil(n / len(x)))[:n]
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


class Started:
    """Writes a file once every stream has received frames, so a test can break a backend mid-run."""

    def __init__(self, path: str, streams: int):
        self.path, self.left, self.lock = path, streams, threading.Lock()

    def one(self) -> None:
        with self.lock:
            self.left -= 1
            if self.left == 0 and self.path:
                with open(self.path, "w") as fh:
                    fh.write(str(time.time()))


def requests(pcm: bytes, chunk_s: float):
    yield pb.ExpressionRequest(header=pb.StreamHeader(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate=RATE,
                                                      channels=1, fps=30))
    step = int(RATE * chunk_s) * 2
    t0 = time.monotonic()
    for i, off in enumerate(range(0, len(pcm), step)):
        wait = t0 + i * chunk_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # real-time pacing of the audio, as a microphone would deliver it
        yield pb.ExpressionRequest(audio=pb.AudioChunk(data=pcm[off:off + step]))
    yield pb.ExpressionRequest(end=pb.EndOfAudio())


def one_stream(stub, pcm: bytes, chunk_s: float, delay: float, timeout: float | None, started: Started) -> dict:
    """One stream on the blocking API: its status is the one the call ended with (grpc.aio can report
    INTERNAL "Internal error from Core" instead when a write races a reset)."""
    time.sleep(delay)  # stagger the starts over one chunk
    out = {"backend": "", "code": "OK", "details": "", "frames": 0,
           "expected": math.ceil(len(pcm) // 2 * 30 / RATE), "started": time.time()}
    call = stub.StreamExpression(requests(pcm, chunk_s), timeout=timeout)
    try:
        out["backend"] = dict(call.initial_metadata() or ()).get(BACKEND_HEADER, "")
        for resp in call:
            if resp.WhichOneof("msg") == "frames":
                if not out["frames"]:
                    started.one()
                out["frames"] += len(resp.frames.frames)
    except grpc.RpcError as err:
        out["code"], out["details"] = err.code().name, err.details() or ""
    out["ended"] = time.time()
    return out


def run(target: str, streams: int, seconds: float, chunk_s: float, timeout: float | None,
        channels: int, started_file: str = "") -> list[dict]:
    pcm = speech_pcm(seconds)
    started = Started(started_file, streams)
    # Each channel its own subchannel pool: its own TCP connection (channels to one target share one otherwise).
    chans = [grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(channels)]
    try:
        stubs = [pb_grpc.AvatarBridgeStub(c) for c in chans]
        with ThreadPoolExecutor(streams) as ex:
            futs = [ex.submit(one_stream, stubs[i % channels], pcm, chunk_s, i * chunk_s / streams, timeout, started)
                    for i in range(streams)]
            return [f.result() for f in futs]
    finally:
        for c in chans:
            c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True)
    ap.add_argument("--streams", type=int, default=9)
    ap.add_argument("--seconds", type=float, default=6.0, help="audio per stream, sent in real time")
    ap.add_argument("--chunk-ms", type=float, default=40.0)
    ap.add_argument("--timeout", type=float, default=0.0, help="per-call deadline in seconds (0 = none)")
    ap.add_argument("--channels", type=int, default=1, help="gRPC channels (HTTP/2 connections) to spread over")
    ap.add_argument("--out", help="write the JSON here (default stdout)")
    ap.add_argument("--started", default="", help="write this file once every stream has received frames")
    args = ap.parse_args()
    began = time.time()
    rows = run(args.target, args.streams, args.seconds, args.chunk_ms / 1000,
                           args.timeout or None, args.channels, args.started)
    text = json.dumps({"began": began, "streams": rows})
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, args.out)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
