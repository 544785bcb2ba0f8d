"""The whole pipeline (loaders -> DiT -> VAE) on CUDA in bf16 vs CPU fp32, on a tiny checkpoint written in the
released layout (tests/video_ckpt.py), synthetic portrait and audio. Prints the frame difference per mode."""
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


def main() -> int:
    ck = vc.write_all("/tmp/video_tiny_ckpt")
    img, audio = vc.sample_inputs(2)
    lora = os.path.join(ck, "liveavatar.safetensors")
    for mode, params in (("liveavatar", GenParams(size="128*128", seed=1)),
                         ("s2v", GenParams(mode="s2v", size="128*128", seed=1, sample_steps=4, infer_frames=16,
                                           sample_solver="unipc", sample_guide_scale=4.5, num_clip=2))):
        outs = {}
        for dev in ("cpu", "cuda"):
            eng = VideoEngine(ck, lora=lora if mode == "liveavatar" else None, device=dev)
            t0 = time.perf_counter()
            outs[dev] = np.concatenate([c.frames for c in eng.stream(img, audio, "a woman is talking", params)])
            print(f"{mode} {dev}: {outs[dev].shape} in {time.perf_counter() - t0:.1f} s "
                  f"(dtype {eng.dtype})", flush=True)
        a, b = outs["cpu"].astype(np.float64), outs["cuda"].astype(np.float64)
        print(f"{mode}: frames equal count {a.shape == b.shape}; mean |cpu fp32 - cuda bf16| = "
              f"{np.abs(a - b).mean():.2f} / 255; rel L2 (centred) = "
              f"{np.linalg.norm(a - b) / np.linalg.norm(a - a.mean()):.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
