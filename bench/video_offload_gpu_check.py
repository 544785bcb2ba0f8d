"""Streamed vs resident DiT on CUDA (tiny released-layout checkpoint, bf16, speed path eager): is a difference
between the two the streaming logic or only where the weights sit? Runs the same LiveAvatar block loop with
  A  resident weights (their own allocations),
  B  resident weights re-pointed into one flat device buffer per layer, laid out exactly as the streamer's slots,
  C  weights streamed through the two slots (engine/video/offload.py),
  D  C + KV caches in pinned host memory,
and prints the per-block relative errors between them and run-to-run repeats.

  python bench/video_offload_gpu_check.py
"""
from __future__ import annotations

import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import video_ckpt as vc  # noqa: E402
from engine.video.loader import load_dit  # noqa: E402
from engine.video.offload import LayerStreamer, _Unit, layer_units  # noqa: E402
from engine.video.speed import SpeedOptions, causal_latents, rel_err  # noqa: E402


def flat_resident(dit, device):
    """Every layer's tensors copied into one device buffer at the streamer's offsets, and left there."""
    for mods in layer_units(dit):
        u = _Unit(mods)
        flat = torch.empty(u.nbytes, dtype=torch.uint8, device=device)
        for t, (shape, dtype, off, nb) in zip(list(u.tensors()), u.specs):
            flat[off:off + nb].view(dtype).view(shape).copy_(t)
        u.point(flat)


def main() -> int:
    ck = vc.write_all("/tmp/video_tiny_ckpt")
    dev, dt = os.environ.get("DEV", "cuda"), torch.bfloat16
    g = torch.Generator().manual_seed(0)
    dit = load_dit(ck, dev, dt, rope_max_pos=45000)
    cfg = dit.config
    hl, wl, blocks = 16, 16, 5
    with torch.no_grad():
        ctx = dit.embed_text(torch.randn(1, 5, cfg.text_dim, generator=g).to(dev, dt))
    inputs = dict(context=ctx, ref=torch.randn(1, 16, 1, hl, wl, generator=g).to(dev, dt),
                  motion=torch.randn(1, 16, 4, hl, wl, generator=g).to(dev, dt),
                  audio=torch.randn(1, 25, cfg.audio_dim, 12 * blocks, generator=g).to(dev),
                  noises=[torch.randn(1, 16, 3, hl, wl, generator=g).to(dev, dt) for _ in range(blocks)])
    fast = SpeedOptions(fast=True)
    runs = {"A": causal_latents(dit, fast, **inputs)[0], "A again": causal_latents(dit, fast, **inputs)[0]}
    b = load_dit(ck, dev, dt, rope_max_pos=45000)
    flat_resident(b, dev)
    runs["B"] = causal_latents(b, fast, **inputs)[0]
    c = load_dit(ck, dev, dt, rope_max_pos=45000)
    LayerStreamer(c, dev, check_memory=False)
    runs["C"] = causal_latents(c, SpeedOptions(fast=True, offload="weights"), **inputs)[0]
    runs["C again"] = causal_latents(c, SpeedOptions(fast=True, offload="weights"), **inputs)[0]
    runs["D"] = causal_latents(c, SpeedOptions(fast=True, offload="weights+kv"), **inputs)[0]
    print("| pair | max rel. error over blocks | bit-equal |")
    print("|---|---|---|")
    for x, y in (("A", "A again"), ("A", "B"), ("B", "C"), ("A", "C"), ("C", "C again"), ("C", "D"), ("B", "D")):
        errs = [rel_err(p, q) for p, q in zip(runs[x], runs[y])]
        eq = all(torch.equal(p, q) for p, q in zip(runs[x], runs[y]))
        print(f"| {x} vs {y} | {max(errs):.2e} | {eq} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
