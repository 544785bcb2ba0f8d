"""How many Python function calls one StreamExpression chunk costs between the gRPC read and the engine call.

Counted with a profile hook (sys.setprofile / threading.setprofile: every entry into a Python function, a
coroutine resume included; functions written in C, such as gRPC's Cython core, protobuf's upb and pyzmq's
socket calls, are not Python calls and are not counted):
  front:  from the resume of the request reader (rpc/expression.pump_audio's `read`, the reader task's outermost
          frame) that got the chunk, to
          the pool's flush that hands it to ZeroMQ (WorkerPool._flush_sends), in the server's event-loop thread;
  worker: from the worker loop's drain (Worker._collect) that received it, to the engine's push_many.
One live stream of 40 ms PCM16 chunks paced at real time; the median over the chunks is reported.

    python bench/seam_calls.py [--chunks 150]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


class PathCounter:
    """Counts Python calls between a start marker (a function entered, by qualified name) and an end marker."""

    def __init__(self, start: str, end: str):
        self.start, self.end = start, end
        self.count, self.open, self.samples = 0, False, []

    def __call__(self, frame, event, arg):
        if event != "call":
            return
        name = frame.f_code.co_qualname
        if name == self.start:
            self.open, self.count = True, 0
        elif self.open and name == self.end:
            self.samples.append(self.count)
            self.open = False
        if self.open:
            self.count += 1


def worker_path(chunks: int) -> list[int]:
    import numpy as np
    import zmq

    from engine.worker import protocol as p
    from engine.worker.main import Worker
    from engine.worker.specs import StreamSpec, WorkerConfig

    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.bind("tcp://127.0.0.1:*")
    counter = PathCounter("Worker._collect", "LearnedExpressionEngine.push_many")
    w = Worker(router.getsockopt_string(zmq.LAST_ENDPOINT), b"w-count", WorkerConfig())
    threading.setprofile(counter)
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    threading.setprofile(None)
    ident, _ = router.recv_multipart()
    spec = StreamSpec(encoding="pcm16", sample_rate=16000, channels=1, fps=30)
    router.send_multipart([ident, p.pack(p.OPEN, 1, 0, spec.to_json())])
    router.recv_multipart()  # OPENED
    pcm = (np.sin(np.arange(640) / 7.0) * 8000).astype("<i2").tobytes()
    for seq in range(1, chunks + 1):
        router.send_multipart([ident, p.pack(p.AUDIO, 1, seq, pcm)])
        router.recv_multipart()  # its FRAMES
        time.sleep(0.005)
    router.send_multipart([ident, p.pack(p.STOP)])
    t.join(10)
    return counter.samples


def front_path(chunks: int) -> list[int]:
    import grpc

    from avatarbridge.v1 import bridge_pb2 as pb, bridge_pb2_grpc as pbg
    from bridge_server.config import ServerConfig
    from bridge_server.server import serve

    port_file = os.path.join(ROOT, "out", f"seam_calls_{os.getpid()}.ready")
    os.makedirs(os.path.dirname(port_file), exist_ok=True)
    cfg = ServerConfig(port=0, metrics_port=0, workers=1, ready_file=port_file, log_level="warning")
    counter = PathCounter("pump_audio.<locals>.read", "WorkerPool._flush_sends")
    result: dict = {}

    def client() -> None:
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            time.sleep(0.05)
        import json
        port = json.loads(open(port_file).read())["port"]
        pcm = b"\x10\x00" * 640

        def reqs():
            yield pb.ExpressionRequest(header=pb.StreamHeader(sample_rate=16000, channels=1, fps=30,
                                                              encoding=pb.AUDIO_ENCODING_PCM16))
            for _ in range(chunks):
                yield pb.ExpressionRequest(audio=pb.AudioChunk(data=pcm))
                time.sleep(0.04)
            yield pb.ExpressionRequest(end=pb.EndOfAudio())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            result["responses"] = sum(1 for _ in pbg.AvatarBridgeStub(ch).StreamExpression(reqs()))
        os.kill(os.getpid(), __import__("signal").SIGTERM)

    threading.Thread(target=client, daemon=True).start()
    sys.setprofile(counter)
    try:
        asyncio.run(serve(cfg))
    finally:
        sys.setprofile(None)
        if os.path.exists(port_file):
            os.remove(port_file)
    return counter.samples


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=150)
    args = ap.parse_args()
    w = worker_path(args.chunks)
    f = front_path(args.chunks)
    fm, wm = statistics.median(f), statistics.median(w)
    print(f"front  (gRPC read -> ZeroMQ send):  median {fm:.0f} Python calls per chunk over {len(f)} chunks "
          f"(min {min(f)}, max {max(f)})")
    print(f"worker (ZeroMQ recv -> engine call): median {wm:.0f} Python calls per chunk over {len(w)} chunks "
          f"(min {min(w)}, max {max(w)})")
    print(f"total: {fm + wm:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
