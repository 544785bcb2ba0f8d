"""Speak: time to the first audio and its frames, real-time factor, and concurrent streams vs real time.

    python bench/speak_bench.py                       # server on all cores (here: 2), client beside it
    python bench/speak_bench.py --server-cpus 0,1 --client-cpus 2-7   # server alone on 2 cores
    python bench/speak_bench.py --piper-voices DIR    # also every Piper voice in DIR (engine/tts/piper.py)

1. First chunk: sequential Speak calls of one 10-word sentence per voice; time from the call to the first
   SpeakAudio and to the first FrameBatch (client side, over loopback gRPC). p50 / p95 over --repeats.
2. Real-time factor: the worker's TTS time / audio seconds (SpeakStatus.synthesis_seconds), and the whole
   call's wall time / audio seconds (TTS + frames + transport), on a 6-sentence paragraph.
3. Concurrency: --streams Speak calls at once, each saying the paragraph, staggered over 1 s; each client
   "plays" its audio in real time from the moment its first chunk arrived, and every later chunk (audio and
   the frames of its sentence) must arrive before its playback time. Reported: late chunks, the worst margin.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
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

SENTENCES = {  # 10 words each (CJK: about as long spoken)
    "festival:us-slt-hts": "The quick brown fox jumps over the lazy dog today.",
    "espeak:en-us": "The quick brown fox jumps over the lazy dog today.",
    "festival:kal": "The quick brown fox jumps over the lazy dog today.",
    "espeak:de": "Wir fahren morgen mit dem Zug nach Berlin, sagt sie.",
    "espeak:fr": "Nous partons en vacances la semaine prochaine avec nos amis.",
    "espeak:es": "Mañana vamos a la playa con mis amigos y familia.",
    "espeak:cmn": "明天我们去北京看看我的老朋友们。",
    "espeak:ja": "あしたはやまにいきます、そしてうみもみます。",
}
PARAGRAPH = ("Welcome back to the station. The next train leaves in five minutes from platform two. "
             "Please keep your ticket ready for inspection. Food and drinks are sold in the middle of the train. "
             "We wish you a pleasant journey. Thank you for travelling with us today.")


def start_server(workers: int, cpus: str | None, piper_voices: str | None = None) -> tuple[subprocess.Popen, str, str]:
    tmp = tempfile.mkdtemp()
    ready = os.path.join(tmp, "ready.json")
    cmd = [sys.executable, "-m", "bridge_server.cli", "serve", "--port", "0", "--metrics-port", "-1",
           "--workers", str(workers), "--ready-file", ready, "--log-level", "warning"]
    if piper_voices:
        cmd += ["--piper-voices", piper_voices]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    # A warm server: every worker loads Festival's voice at start (by default the first call in each does).
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "AVATAR_BRIDGE_TTS_PREWARM": "1"})
    deadline = time.monotonic() + 120
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.05)
    with open(ready) as fh:
        return proc, f"127.0.0.1:{json.load(fh)['port']}", tmp


def start(text: str, voice: str, i: int) -> pb.SpeakRequest:
    return pb.SpeakRequest(start=pb.SpeakStart(text=text, voice=voice, fps=30, stream_id=f"b{i}"))


async def one_call(stub, text: str, voice: str, i: int) -> dict:
    t0 = time.perf_counter()
    first_audio = first_frames = None
    chunks = []  # (arrival of the chunk's audio, arrival of its frames, chunk start time on the audio clock)
    rate = 0
    status = None
    async for r in stub.Speak(iter([start(text, voice, i)])):
        now = time.perf_counter()
        which = r.WhichOneof("msg")
        if which == "header":
            rate = r.header.sample_rate
        elif which == "audio":
            first_audio = first_audio or now - t0
            chunks.append([now, None, r.audio.time])
        elif which == "frames":
            first_frames = first_frames or now - t0
            if chunks and chunks[-1][1] is None:
                chunks[-1][1] = now
        elif which == "status":
            status = r.status
    wall = time.perf_counter() - t0
    play0 = chunks[0][0]  # playback of the first chunk starts as it arrives
    margins = [play0 + start_t - max(a, f or a) for a, f, start_t in chunks[1:]]
    return {"first_audio": first_audio, "first_frames": first_frames, "wall": wall, "rate": rate,
            "audio_s": status.audio_seconds, "tts_s": status.synthesis_seconds, "margins": margins}


async def run(target: str, args) -> dict:
    async with grpc.aio.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        stub = pb_grpc.AvatarBridgeStub(ch)
        caps = await stub.GetCapabilities(pb.GetCapabilitiesRequest())
        have = {v.id for v in caps.voices if not v.missing}
        out: dict = {"first_chunk": {}, "rtf": {}, "concurrent": {}}
        sentences = dict(SENTENCES)
        for v in sorted(have):  # Piper voices in --piper-voices: English ones say the English sentence
            if v.startswith("piper:") and v.split(":")[1].startswith("en"):
                sentences[v] = SENTENCES["espeak:en-us"]
        for voice, text in sentences.items():
            if voice not in have or args.only_concurrent:
                continue
            for w in range(3):  # warm: the worker's first call of a voice loads it
                await one_call(stub, text, voice, w)
            fa, ff = [], []
            for i in range(args.repeats):
                r = await one_call(stub, text, voice, i)
                fa.append(r["first_audio"] * 1000)
                ff.append(r["first_frames"] * 1000)
            out["first_chunk"][voice] = {
                "audio_ms_p50": round(float(np.percentile(fa, 50)), 1),
                "audio_ms_p95": round(float(np.percentile(fa, 95)), 1),
                "frames_ms_p50": round(float(np.percentile(ff, 50)), 1),
                "frames_ms_p95": round(float(np.percentile(ff, 95)), 1), "n": args.repeats}
            r = await one_call(stub, PARAGRAPH if voice.startswith(("festival", "espeak:en", "piper:en")) else text * 3,
                               voice, 0)
            out["rtf"][voice] = {"tts_rtf": round(r["tts_s"] / r["audio_s"], 4),
                                 "call_rtf": round(r["wall"] / r["audio_s"], 4), "audio_s": round(r["audio_s"], 2),
                                 "sample_rate": r["rate"]}
            print(voice, out["first_chunk"][voice], out["rtf"][voice], flush=True)
        for voice in args.concurrent_voices:
            if voice not in have:
                continue
            for n in args.streams:
                async def staggered(i):
                    await asyncio.sleep(i / n)
                    return await one_call(stub, PARAGRAPH, voice, i)
                t0 = time.perf_counter()
                res = await asyncio.gather(*(staggered(i) for i in range(n)))
                margins = [m for r in res for m in r["margins"]]
                late_at: dict[int, int] = {}  # sentence number (2 = the second) -> late chunks
                for r in res:
                    for k, m in enumerate(r["margins"]):
                        if m < 0:
                            late_at[k + 2] = late_at.get(k + 2, 0) + 1
                fa = [r["first_audio"] * 1000 for r in res]
                out["concurrent"][f"{voice} x{n}"] = {
                    "late_chunks": sum(1 for m in margins if m < 0), "chunks": len(margins),
                    "late_at_sentence": dict(sorted(late_at.items())),
                    "worst_margin_s": round(min(margins), 3), "first_audio_ms_p50": round(float(np.percentile(fa, 50)), 1),
                    "first_audio_ms_p95": round(float(np.percentile(fa, 95)), 1),
                    "first_audio_ms_max": round(max(fa), 1), "audio_s_each": round(res[0]["audio_s"], 2),
                    "wall_s": round(time.perf_counter() - t0, 2)}
                print(voice, n, out["concurrent"][f"{voice} x{n}"], flush=True)
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--server-cpus", help="taskset CPU list for the server and its workers")
    ap.add_argument("--client-cpus", help="taskset CPU list for this client")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--streams", type=int, nargs="+", default=[20])
    ap.add_argument("--concurrent-voices", nargs="+", default=["festival:us-slt-hts", "espeak:en-us"])
    ap.add_argument("--only-concurrent", action="store_true", help="skip parts 1 and 2")
    ap.add_argument("--piper-voices", help="folder of Piper voices for the server (its setting piper_voices)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    if args.client_cpus:
        os.sched_setaffinity(0, {int(c) for part in args.client_cpus.split(",")
                                 for c in (range(int(part.split("-")[0]), int(part.split("-")[-1]) + 1))})
    proc, target, _ = start_server(args.workers, args.server_cpus, args.piper_voices)
    try:
        out = asyncio.run(run(target, args))
    finally:
        proc.terminate()
        proc.wait(20)
    out["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor(),
                      "server_cpus": args.server_cpus or "all", "client_cpus": args.client_cpus or "all",
                      "workers": args.workers, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
