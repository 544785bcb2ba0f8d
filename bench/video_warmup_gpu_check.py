"""Time to first frames of the LiveAvatar pipeline on CUDA (tiny released-layout checkpoint, compile + FP8 +
compiled VAE), cold vs after ``VideoEngine.warmup`` (what ``serve --video-warmup`` runs at start): the first
request of a cold engine pays loading and compilation, a warmed one only its own work. Each row: seconds from
``stream()`` to the first chunk, and the graphs compiled during that request.

  python bench/video_warmup_gpu_check.py
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import video_ckpt as vc  # noqa: E402
from engine.video.pipeline import GenParams, VideoEngine  # noqa: E402
from engine.video.speed import SpeedOptions  # noqa: E402


def first_chunk(eng, img, audio, p):
    t0 = time.perf_counter()
    g0 = eng.regions.graphs if eng.regions is not None else 0
    it = eng.stream(img, audio, "a woman is talking", p)
    next(it)
    ttff = time.perf_counter() - t0
    for _ in it:
        pass
    return ttff, eng.regions.graphs - g0


def main() -> int:
    ck = vc.write_all("/tmp/video_tiny_ckpt")
    img, audio = vc.sample_inputs(2)
    lora = os.path.join(ck, "liveavatar.safetensors")
    p = GenParams(size="128*128", seed=1, infer_frames=24, num_clip=1)
    opts = SpeedOptions(compile=True, quant="fp8")
    rows = []
    cold = VideoEngine(ck, lora=lora, device="cuda", speed=opts)
    rows.append(("cold engine, first request",) + first_chunk(cold, img, audio, p))
    rows.append(("cold engine, second request (same portrait: encodes cached)",) + first_chunk(cold, img, audio, p))
    del cold
    torch.cuda.empty_cache()
    torch._dynamo.reset()
    warm = VideoEngine(ck, lora=lora, device="cuda", speed=opts)
    t0 = time.perf_counter()
    warm.load()
    secs = warm.warmup("128*128")
    rows.append((f"warm-up at start (load + warmup: {time.perf_counter() - t0:.1f} s)", secs, warm.regions.graphs))
    rows.append(("warmed engine, first request",) + first_chunk(warm, img, audio, p))
    img2 = np.ascontiguousarray(img[::-1])
    rows.append(("warmed engine, a new portrait",) + first_chunk(warm, img2, audio, p))
    print("| case | s to first chunk | graphs compiled |")
    print("|---|---|---|")
    for name, s, g in rows:
        print(f"| {name} | {s:.2f} | {g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
