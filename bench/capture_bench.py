"""Capture throughput at 640x480: frames per second on one core.

Two measurements on real video frames (../shared/data/video, re-sized to 640x480, JPEG q90):
  * pipeline: what a worker does per image, in this process pinned to one core —
    JPEG decode + FaceLandmarker (blendshapes + matrix) + One Euro + frame packing;
  * grpc: one CaptureStream against `avatar-bridge serve --workers 1` (the worker pinned to one
    core), the client sending images as fast as the stream's credit allows, frames/s end to end.

    python bench/capture_bench.py --frames 300
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data")
MODEL = os.path.join(SHARED, "models", "face_landmarker.task")


def jpeg_frames(n: int) -> list[bytes]:
    import av

    out = []
    with av.open(os.path.join(SHARED, "video", "videoretalking_face4.mp4")) as c:
        for f in c.decode(video=0):
            img = f.to_image().resize((480, 480)).crop((-80, 0, 560, 480))  # 640x480, face centred
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=90)
            out.append(buf.getvalue())
            if len(out) == n:
                break
    return out


def bench_pipeline(jpegs: list[bytes], rounds: int) -> dict:
    from engine.worker import protocol as p
    from engine.worker.capture_session import ImageSession
    from engine.worker.specs import CaptureSpec

    os.sched_setaffinity(0, {0})
    s = ImageSession(CaptureSpec(model_path=MODEL))
    ts, times = 0, []
    for r in range(rounds):
        for data in jpegs:
            ts += 33_333
            t0 = time.perf_counter()
            p.pack_frames(s.process(ts, 0, 0, 0, data))
            times.append(time.perf_counter() - t0)
    s.close()
    t = np.array(times[len(jpegs) // 10:])  # skip warm-up (first detection)
    return {"fps": 1 / t.mean(), "p50_ms": 1e3 * np.median(t), "p99_ms": 1e3 * np.percentile(t, 99)}


def bench_grpc(jpegs: list[bytes], rounds: int) -> dict:
    import grpc

    from avatarbridge.v1 import bridge_pb2 as pb
    from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc

    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready.json")
        proc = subprocess.Popen([sys.executable, "-m", "bridge_server.cli", "serve", "--port", "0", "--workers", "1",
                                 "--metrics-port", "-1", "--ready-file", ready, "--face-landmarker", MODEL,
                                 "--log-level", "warning"], cwd=ROOT, stderr=subprocess.DEVNULL)
        try:
            while not os.path.exists(ready):
                time.sleep(0.05)
            info = json.load(open(ready))
            for pid in info["worker_pids"]:  # every thread of the worker (MediaPipe's inherit it later)
                for tid in os.listdir(f"/proc/{pid}/task"):
                    os.sched_setaffinity(int(tid), {1})
            stub = pb_grpc.AvatarBridgeStub(grpc.insecure_channel(f"127.0.0.1:{info['port']}"))

            def reqs():
                yield pb.CaptureRequest(header=pb.CaptureHeader(stream_id="bench", fps=30))
                ts = 0
                for _ in range(rounds):
                    for data in jpegs:
                        ts += 33_333
                        yield pb.CaptureRequest(image=pb.CaptureImage(data=data, timestamp_us=ts))
            n = 0
            t0 = time.perf_counter()
            for r in stub.CaptureStream(reqs(), timeout=600):
                if r.WhichOneof("msg") == "frames":
                    n += len(r.frames.frames)
            dt = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(10)
    return {"fps": n / dt, "frames": n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=150, help="distinct frames (looped --rounds times)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    jpegs = jpeg_frames(args.frames)
    pipe = bench_pipeline(jpegs, args.rounds)
    grpc_ = bench_grpc(jpegs, args.rounds)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python "
          f"{platform.python_version()}")
    print("| measurement | frames/s | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    print(f"| pipeline, 1 core (decode+landmarker+filter+pack) | {pipe['fps']:.1f} | {pipe['p50_ms']:.1f} | "
          f"{pipe['p99_ms']:.1f} |")
    print(f"| CaptureStream over gRPC, worker on 1 core | {grpc_['fps']:.1f} | - | - |")


if __name__ == "__main__":
    main()
