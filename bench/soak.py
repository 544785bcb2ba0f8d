"""Soak: N concurrent StreamExpression streams for M minutes against a real server on loopback.

Every stream slot opens a stream, sends real speech paced at real time (chunks of --chunk-ms, the last one
partial), ends it, checks the frame count, and at once opens the next: streams open and close all the time.
Each stream draws its length (--min-seconds..--max-seconds plus an odd number of samples, so the count is
never a whole number of frames), its sample rate (16000 / 44100 / 48000) and fps (30 / 60) at random from
--seed; about --cancel-share of them are cancelled by the client half way (they exercise clean-up and are
left out of the count check).

Reported every --sample-s seconds: RSS of the server and of each worker, open file descriptors, live
streams, frames received, and the p50/p99 frame latency of the frames received in that window (latency as
bench/stream_bench.py measures it: frame received - sent time of the chunk that completes the frame's
look-ahead). At the end: RSS growth after warm-up (median of the first minute after --warmup-s vs the last
minute), frames lost (a stream that ended normally must have received exactly ceil(samples * fps / rate)
frames, and its StreamStatus.frames_sent must say the same), and errors.

    python bench/soak.py --streams 100 --minutes 10 --json bench/results/soak.json

Exit status 1 when a frame was lost, a stream failed, or a process grew more than --max-growth (5 %).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time

import grpc
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from avatarbridge.v1 import bridge_pb2 as pb  # noqa: E402
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc  # noqa: E402
from bench.stream_bench import ChunkClock, cpu_model, cpu_seconds, load_speech  # noqa: E402

RATES = (16000, 44100, 48000)


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


class Stats:
    def __init__(self):
        self.lat: list[tuple[float, float, int]] = []  # (time since soak start, latency s, sample rate)
        self.started = self.completed = self.cancelled = 0
        self.frames = 0
        self.lost: list[str] = []  # streams whose count differs
        self.errors: list[str] = []
        self.live = 0


async def one_stream(stub, pcms: dict, rng: random.Random, args, stats: Stats, t_start: float) -> None:
    rate = rng.choice(RATES)
    fps = rng.choice((30, 60))
    pcm = pcms[rate]
    seconds = rng.uniform(args.min_seconds, args.max_seconds)
    n = int(seconds * rate) | 1  # odd: never a whole number of frames at 30/60 fps
    offset = 2 * rng.randrange(0, len(pcm) // 2 - n)
    data = pcm[offset:offset + 2 * n]
    step = 2 * int(rate * args.chunk_ms / 1000)
    cancel_at = n // 2 if rng.random() < args.cancel_share else None
    clock = ChunkClock(rate)
    frames = 0
    status = None
    call = stub.StreamExpression()
    stats.started += 1
    stats.live += 1

    async def writer():
        await call.write(pb.ExpressionRequest(header=pb.StreamHeader(
            encoding=pb.AUDIO_ENCODING_PCM16, sample_rate=rate, channels=1, fps=fps, engine=args.engine)))
        t0 = time.monotonic()
        total, i = 0, 0
        for pos in range(0, len(data), step):
            wait = t0 + i * args.chunk_ms / 1000 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            chunk = data[pos:pos + step]
            await call.write(pb.ExpressionRequest(audio=pb.AudioChunk(data=chunk)))
            total += len(chunk) // 2
            clock.chunk_sent(total)
            i += 1
            if cancel_at is not None and total >= cancel_at:
                call.cancel()
                return
        await call.write(pb.ExpressionRequest(end=pb.EndOfAudio()))
        await call.done_writing()

    w = asyncio.create_task(writer())
    try:
        async for resp in call:
            now = time.monotonic()
            kind = resp.WhichOneof("msg")
            if kind == "header":
                clock.lookahead_s = resp.header.lookahead_ms / 1000
            elif kind == "frames":
                for f in resp.frames.frames:
                    frames += 1
                    got = clock.latency(f.sample_index, now)
                    if got:
                        stats.lat.append((now - t_start, got[0], rate))
            elif kind == "status":
                status = resp.status
        await w
    except (grpc.RpcError, asyncio.CancelledError) as err:
        if cancel_at is not None and isinstance(err, (asyncio.CancelledError, grpc.aio.AioRpcError)) and (
                isinstance(err, asyncio.CancelledError) or err.code() == grpc.StatusCode.CANCELLED):
            stats.cancelled += 1
            stats.frames += frames
            stats.live -= 1
            if not w.done():
                w.cancel()
            return
        stats.errors.append(f"{err.code().name}: {err.details()}" if isinstance(err, grpc.RpcError) else repr(err))
        stats.live -= 1
        return
    finally:
        if not w.done():
            w.cancel()
    stats.live -= 1
    stats.frames += frames  # (a cancel that lost the race with the stream's end is checked like any stream)
    expect = math.ceil(n * fps / rate)
    stats.completed += 1
    if frames != expect or status is None or status.frames_sent != expect:
        stats.lost.append(f"rate {rate} fps {fps} samples {n}: received {frames}, status.frames_sent "
                          f"{status.frames_sent if status else None}, expected {expect}")


async def slot(stub, pcms, rng, args, stats, t_start, deadline, delay):
    await asyncio.sleep(delay)
    while time.monotonic() < deadline:
        await one_stream(stub, pcms, rng, args, stats, t_start)


def sample(server_pid: int) -> dict:
    workers = children(server_pid)
    return {"server_rss_mb": proc_rss_mb(server_pid), "server_fds": proc_fds(server_pid),
            "workers": {str(p): {"rss_mb": proc_rss_mb(p), "fds": proc_fds(p)} for p in workers}}


async def soak(target: str, pcms: dict, args, server_pid: int) -> tuple[Stats, list[dict]]:
    stats = Stats()
    rows: list[dict] = []
    t_start = time.monotonic()
    deadline = t_start + args.minutes * 60
    async with grpc.aio.insecure_channel(target) as ch:
        stub = pb_grpc.AvatarBridgeStub(ch)
        rngs = [random.Random(args.seed * 100003 + i) for i in range(args.streams)]
        tasks = [asyncio.create_task(slot(stub, pcms, rngs[i], args, stats, t_start, deadline,
                                          i * args.ramp_s / args.streams)) for i in range(args.streams)]
        last_lat, cpu0 = 0, None
        while not all(t.done() for t in tasks):
            await asyncio.sleep(args.sample_s)
            now = time.monotonic() - t_start
            pids = [server_pid, *children(server_pid)]
            cpu = cpu_seconds(pids)
            window = np.array([x[1] for x in stats.lat[last_lat:]]) * 1000
            last_lat = len(stats.lat)
            row = {"t_s": round(now, 1), **sample(server_pid), "live": stats.live, "started": stats.started,
                   "frames": stats.frames, "errors": len(stats.errors), "lost": len(stats.lost),
                   "p50_ms": float(np.percentile(window, 50)) if len(window) else None,
                   "p99_ms": float(np.percentile(window, 99)) if len(window) else None,
                   "server_cores": None if cpu0 is None else (cpu - cpu0[0]) / (now - cpu0[1])}
            cpu0 = (cpu, now)
            rows.append(row)
            print(json.dumps(row), flush=True)
        await asyncio.gather(*tasks)
    return stats, rows


def growth(rows: list[dict], key, warmup_s: float) -> tuple[float, float, float] | None:
    """(median of the first minute after warm-up, median of the last minute, growth %)."""
    vals = [(r["t_s"], key(r)) for r in rows if key(r) is not None]
    end = rows[-1]["t_s"]
    a = [v for t, v in vals if warmup_s <= t < warmup_s + 60]
    b = [v for t, v in vals if t >= end - 60]
    if not a or not b:
        return None
    ma, mb = float(np.median(a)), float(np.median(b))
    return ma, mb, 100 * (mb - ma) / ma


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--min-seconds", type=float, default=3.0, help="shortest stream (audio seconds)")
    ap.add_argument("--max-seconds", type=float, default=30.0, help="longest stream (audio seconds)")
    ap.add_argument("--chunk-ms", type=float, default=40.0)
    ap.add_argument("--cancel-share", type=float, default=0.1, help="share of streams the client cancels")
    ap.add_argument("--ramp-s", type=float, default=5.0, help="streams start spread over this many seconds")
    ap.add_argument("--warmup-s", type=float, default=120.0)
    ap.add_argument("--sample-s", type=float, default=10.0)
    ap.add_argument("--max-growth", type=float, default=5.0, help="RSS growth after warm-up that fails, %%")
    ap.add_argument("--workers", type=int, default=0, help="0 = one per core")
    ap.add_argument("--engine", default="", help="expression engine (default: the server's default)")
    ap.add_argument("--audio", default=os.path.join(ROOT, "examples", "hello.wav"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the samples and summary here")
    args = ap.parse_args()

    pcms = {r: load_speech(args.audio, r) for r in RATES}
    for r, p in pcms.items():  # loop the clip until it covers the longest stream
        need = 2 * int((args.max_seconds + 1) * r)
        pcms[r] = (p * (need // len(p) + 2))[:need + 2 * r]
    tmp = tempfile.mkdtemp()
    ready = os.path.join(tmp, "ready.json")
    server = subprocess.Popen([sys.executable, "-m", "bridge_server.cli", "serve", "--port", "0",
                               "--metrics-port", "-1", "--workers", str(args.workers), "--ready-file", ready,
                               "--log-level", "warning"], cwd=ROOT)
    try:
        while not os.path.exists(ready):
            if server.poll() is not None:
                raise SystemExit("server failed to start")
            time.sleep(0.05)
        info = json.load(open(ready))
        stats, rows = asyncio.run(soak(f"127.0.0.1:{info['port']}", pcms, args, info["pid"]))
    finally:
        server.terminate()
        server.wait(60)

    ok = True
    summary = {"streams_started": stats.started, "completed": stats.completed, "cancelled": stats.cancelled,
               "frames": stats.frames, "frames_lost_streams": len(stats.lost), "lost": stats.lost[:10],
               "errors": len(stats.errors), "first_errors": stats.errors[:10]}
    series = {"server RSS MB": lambda r: r["server_rss_mb"],
              "workers RSS MB (sum)": lambda r: sum(w["rss_mb"] for w in r["workers"].values()) or None,
              "server fds": lambda r: r["server_fds"],
              "workers fds (sum)": lambda r: sum(w["fds"] for w in r["workers"].values()) or None}
    for pid in rows[0]["workers"] if rows else []:
        series[f"worker {pid} RSS MB"] = lambda r, pid=pid: r["workers"].get(pid, {}).get("rss_mb")
    summary["growth"] = {}
    for name, key in series.items():
        g = growth(rows, key, args.warmup_s)
        if g is None:
            continue
        summary["growth"][name] = {"after_warmup": round(g[0], 1), "end": round(g[1], 1), "growth_pct": round(g[2], 2)}
        if "RSS" in name and g[2] > args.max_growth:
            ok = False
    lat = np.array([x[1] for x in stats.lat]) * 1000
    steady = np.array([x[1] for x in stats.lat if x[0] >= args.warmup_s]) * 1000
    summary["p50_ms"] = float(np.percentile(lat, 50)) if len(lat) else None
    summary["p99_ms"] = float(np.percentile(lat, 99)) if len(lat) else None
    summary["p99_after_warmup_ms"] = float(np.percentile(steady, 99)) if len(steady) else None
    for rate in RATES:  # the resampler's delay (44.1/48 kHz) can move a frame's completion into the next chunk
        r_lat = np.array([x[1] for x in stats.lat if x[0] >= args.warmup_s and x[2] == rate]) * 1000
        summary[f"p99_after_warmup_ms_{rate}"] = float(np.percentile(r_lat, 99)) if len(r_lat) else None
    summary["p99_windows_ms"] = [r["p99_ms"] for r in rows]
    if stats.lost or stats.errors or not stats.completed:
        ok = False
    summary["ok"] = ok
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.node()} {os.cpu_count()} CPUs (affinity {len(os.sched_getaffinity(0))})",
            "cpu": cpu_model(), "python": platform.python_version(), "command": " ".join(sys.argv),
            "args": vars(args)}
    print(json.dumps({"meta": meta, "summary": summary}, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "summary": summary, "samples": rows}, fh, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
