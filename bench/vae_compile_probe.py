"""The VAE decoder's compile modes on one GPU (issue 17): the streaming decode of one 3-latent block (12 frames,
704*384, bf16 as in LiveAvatar mode, random weights) eager, compiled with torch.compile's default mode, and with
the autotuning modes, each on a fresh decoder; the time per block (median of 5), the compile's warm-up, and the
frames' PSNR against eager.

  python bench/vae_compile_probe.py [--out DIR] [--modes default,max-autotune-no-cudagraphs]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.video_speed_bench import LATENT_HW, decode_all, vae_timing  # noqa: E402
from engine.video import speed as sp  # noqa: E402


def fresh_vae(dev, dt):
    from diffusers import AutoencoderKLWan
    torch.manual_seed(0)
    return AutoencoderKLWan().to(dev, dt).eval().requires_grad_(False)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="out")
    ap.add_argument("--modes", default="default,max-autotune-no-cudagraphs")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    dev, dt = torch.device("cuda"), torch.bfloat16
    hl, wl = LATENT_HW
    g = torch.Generator(device=dev).manual_seed(0)
    warm = torch.randn(1, 16, 7, hl, wl, device=dev, generator=g)
    lats = [torch.randn(1, 16, 3, hl, wl, device=dev, generator=g) for _ in range(2)]
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    with torch.no_grad():
        vae = fresh_vae(dev, dt)
        ref = decode_all(vae, lats, warm)
        res["eager"] = {"s_per_block": vae_timing(vae, lats[0], warm, reps=5)[0]}
        print("eager", res["eager"], flush=True)
        for mode in args.modes.split(","):
            vae = fresh_vae(dev, dt)
            t0 = time.perf_counter()
            sp.compile_vae_decoder(vae, mode=None if mode == "default" else mode)
            s, warm_s = vae_timing(vae, lats[0], warm, reps=5)
            frames = decode_all(vae, lats, warm)
            res[mode] = {"s_per_block": s, "warm_s": warm_s, "psnr_vs_eager": sp.psnr(frames, ref),
                         "fell_back": not vae.decoder._speed_state["ok"], "wall_s": time.perf_counter() - t0}
            print(mode, res[mode], flush=True)
            with open(os.path.join(args.out, "vae_compile_probe.json"), "w") as fh:
                json.dump(res, fh, indent=1)
    print("| variant | s per block | warm-up s | PSNR vs eager dB |\n|---|---|---|---|")
    for k, v in res.items():
        if isinstance(v, dict):
            print(f"| {k} | {v['s_per_block']:.4f} | {v.get('warm_s', 0):.1f} | {v.get('psnr_vs_eager', float('inf')):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
