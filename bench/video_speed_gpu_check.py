"""The whole LiveAvatar pipeline (loaders -> DiT -> VAE) on CUDA with each speed mode vs the reference path, on
the tiny released-layout checkpoint (tests/video_ckpt.py): real inductor compile, real FP8 ``_scaled_mm``.
Prints frame differences, compiled graph counts and fallbacks per mode.

  python bench/video_speed_gpu_check.py [MODE,MODE,...]   (a subset; the reference always runs)
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


def main() -> int:
    # head dim 128 (dim 256, 2 heads), the released one: FlashAttention-3 is built for it alone
    ck = vc.write_all("/tmp/video_tiny_ckpt_hd128", dit=dict(dim=256, num_heads=2, ffn_dim=512))
    img, audio = vc.sample_inputs(3)
    lora = os.path.join(ck, "liveavatar.safetensors")
    p = GenParams(size="128*128", seed=1, infer_frames=24, num_clip=2)
    frames = {}
    only = set(sys.argv[1].split(",")) | {"reference"} if len(sys.argv) > 1 else None
    for name, opts in (("reference", SpeedOptions()), ("fast", SpeedOptions(fast=True)),
                       ("fast-again", SpeedOptions(fast=True)),
                       ("compile", SpeedOptions(compile=True)),
                       ("compile+fp8", SpeedOptions(compile=True, quant="fp8")),
                       ("fast+offload", SpeedOptions(fast=True, offload="weights+kv")),
                       ("compile+fp8+fp8kv", SpeedOptions(compile=True, quant="fp8", kv_cache="fp8",
                                                          compile_vae=False)),
                       ("compile+fp8+fa3", SpeedOptions(compile=True, quant="fp8", attention="fa3")),
                       ("compile+fp8+fa3-fp8", SpeedOptions(compile=True, quant="fp8", attention="fa3-fp8")),
                       ("fast+fa3-fp8", SpeedOptions(fast=True, attention="fa3-fp8")),
                       ("fast+fa3-fp8+offload", SpeedOptions(fast=True, attention="fa3-fp8", offload="weights+kv")),
                       ("compile+fp8+fp8kv+offload", SpeedOptions(compile=True, quant="fp8", kv_cache="fp8",
                                                                  offload="weights+kv", compile_vae=False))):
        if only and name not in only:
            continue
        eng = VideoEngine(ck, lora=lora, device="cuda", speed=opts)
        t0 = time.perf_counter()
        frames[name] = np.concatenate([c.frames for c in eng.stream(img, audio, "a woman is talking", p)])
        info = ""
        if eng.regions is not None and eng.regions.active or (eng.regions and eng.regions.fallbacks):
            info = f" graphs {eng.regions.graphs} fallbacks {eng.regions.fallbacks}"
        if opts.vae_compiled:
            info += f" vae compiled ok={eng.vae.decoder._speed_state['ok']}"
        a, b = frames["reference"].astype(np.float64), frames[name].astype(np.float64)
        mse = ((a - b) ** 2).mean()
        psnr = float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)
        if name == "fast-again":
            info += f" max |fast-again - fast| = {np.abs(frames['fast'].astype(int) - b.astype(int)).max()}"
        if name.endswith("offload"):  # streaming moves bytes only: equal to the same mode resident
            resident = name[:-len("+offload")]
            base = frames[resident if resident in frames else "fast" if name.startswith("fast") else "compile+fp8+fp8kv"]
            info += f" max |{name} - resident| = {np.abs(base.astype(int) - frames[name].astype(int)).max()}"
        print(f"{name}: {frames[name].shape} in {time.perf_counter() - t0:.1f} s; mean |ref - {name}| = "
              f"{np.abs(a - b).mean():.3f}/255, PSNR {psnr:.1f} dB{info}", flush=True)
        del eng
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
