"""Talking video on several GPUs (issue 20): fps, time to first frames and per-GPU peak memory of the rank
group at 704*384, 4 steps, with the REAL DiT / VAE shapes and RANDOM weights, for 1 GPU and for each layout
asked for, in one run (the 1-GPU figure goes through the same rank harness, so the numbers compare):

  python bench/video_multi_gpu_bench.py --gpus 1 2 4 [--vae-parallel] [--blocks 8] [--compile] [--fp8] [--out DIR]
  python bench/video_multi_gpu_bench.py --gpus 1 4 8 --vae-parallel        # 4 steps x 2-way Ulysses on 8 GPUs
  python bench/video_multi_gpu_bench.py --cpu-dry-run --gpus 1 2 4          # the harness on CPU ranks, tiny sizes

NOT RUN ON GPUs YET: written in a session without a multi-GPU machine (docs/multi_gpu.md says so); only the
--cpu-dry-run (tiny random model, gloo CPU ranks, 64*64) was run, to check the harness; its numbers mean nothing.

Each layout: the group is started (random weights materialised on every rank), then one request of
``--blocks`` 12-frame blocks runs twice; the second run is reported. fps = frames / time between the first and
the last chunk's arrival at the caller (steady state, DiT + VAE, frames already uint8 in the caller's
process); TTFF = request sent -> first frames in the caller (reference/motion VAE encode, sink prefill, block 0
through every stage, its decode). umT5 and wav2vec2 are replaced by random features of the real shapes (their
cost is per request, outside the block loop). Peak memory: torch.cuda.max_memory_allocated per rank.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT]

from engine.video.parallel.engine import ParallelVideoEngine  # noqa: E402
from engine.video.parallel.group import ParallelConfig  # noqa: E402
from engine.video.pipeline import GenParams, VideoEngine  # noqa: E402


TINY = os.environ.get("AVATAR_BENCH_TINY") == "1"  # --cpu-dry-run (inherited by the spawned ranks)


def dit_config():
    from engine.video.config import S2VConfig
    if TINY:
        return S2VConfig.from_dict(dict(dim=64, ffn_dim=128, freq_dim=32, text_dim=32, text_len=16, num_heads=4,
                                        num_layers=4, audio_dim=32, num_audio_token=4, audio_inject_layers=[0, 2, 3],
                                        motion_frames=[13, 4], rope_max_pos=45000))
    return S2VConfig(rope_max_pos=45000)


class RandomEngine(VideoEngine):
    """``VideoEngine`` with random weights at the released sizes (no checkpoint needed)."""

    def check_files(self) -> None:
        pass

    def load(self) -> None:
        if self.dit is not None:
            return
        from bench.video_bench import init_random
        from engine.video.dit import WanS2VTransformer
        cfg = dit_config()
        with torch.device("meta"):
            self.dit = WanS2VTransformer(cfg)
        init_random(self.dit, self.device, self.dtype)
        self.load_vae_only()
        g = torch.Generator("cpu").manual_seed(1)
        self.text = lambda prompt: torch.randn(1, cfg.text_len, cfg.text_dim, generator=g).mul(0.1).to(
            self.device, self.dtype)
        self._apply_speed()

    def load_vae_only(self) -> None:
        from diffusers import AutoencoderKLWan
        torch.manual_seed(0)
        vae = AutoencoderKLWan(base_dim=4) if TINY else AutoencoderKLWan()
        self.vae = vae.to(self.device, self.dtype).eval().requires_grad_(False)

    def prepare(self, image, audio16k, params):
        from engine.video.inputs import choose_size, crop_resize, parse_size
        oh, ow = choose_size(image.shape[0], image.shape[1], parse_size(params.size))
        frames = int(np.ceil(audio16k.size / 16000 * params.fps))
        clips = -(-frames // params.infer_frames)
        g = torch.Generator("cpu").manual_seed(2)
        feats = torch.randn(1, 25, dit_config().audio_dim, clips * params.infer_frames, generator=g)
        return crop_resize(image, oh, ow), feats.to(self.device), clips


class RandomGroup(ParallelVideoEngine):
    def check_files(self) -> None:
        pass

    def num_heads(self) -> int:
        return dit_config().num_heads


def one_layout(n: int, vae: bool, args, img, audio, p) -> dict:
    from engine.video.speed import SpeedOptions
    dev = "cpu" if TINY else "cuda"
    pc = ParallelConfig(num_gpus_dit=n, enable_vae_parallel=vae, device=dev, timeout_s=300, stall_timeout_s=600)
    speed = SpeedOptions(compile=args.compile, quant="fp8" if args.fp8 else "none", fast=args.compile or args.fp8)
    with tempfile.TemporaryDirectory() as tmp:
        dit_config().save(tmp)  # the VAE rank reads the motion length from it
        eng = RandomGroup(tmp, lora="random", device=dev, speed=speed, parallel=pc,
                          engine_class="bench.video_multi_gpu_bench:RandomEngine")
        r = {"num_gpus_dit": n, "vae_parallel": vae, "world_size": pc.world_size}
        try:
            lay = eng.layout(p)
            r["layout"] = {"stages": lay.stages, "ulysses": lay.sp, "output_rank": lay.output_rank}
            t0 = time.perf_counter()
            eng.load()
            r["start_s"] = round(time.perf_counter() - t0, 1)
            for run in ("warm", "measured"):
                t0 = time.perf_counter()
                arrivals, frames = [], []
                for chunk in eng.stream(img, audio, "", p):
                    arrivals.append(time.perf_counter())
                    frames.append(len(chunk.frames))
                r[run] = {"ttff_s": round(arrivals[0] - t0, 3), "total_s": round(arrivals[-1] - t0, 2),
                          "frames": sum(frames),
                          "fps": round(sum(frames[1:]) / (arrivals[-1] - arrivals[0]), 2) if len(frames) > 1 else None}
                print(f"{n} GPU(s){' + VAE' if vae else ''} {run}: {r[run]}", flush=True)
            r["ranks"] = {str(k): v for k, v in sorted(eng.stats.items())}
        except Exception as exc:  # noqa: BLE001 - one layout's failure is a result, the others still run
            r["error"] = f"{type(exc).__name__}: {exc}"
            print(f"{n} GPU(s): {r['error']}", flush=True)
        finally:
            eng.close()
    return r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 2], help="DiT GPUs per layout (1 = the baseline)")
    ap.add_argument("--vae-parallel", action="store_true", help="one more GPU decodes (layouts with > 1 DiT GPU)")
    ap.add_argument("--blocks", type=int, default=8, help="12-frame blocks per request")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--fp8", action="store_true")
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny random model on CPU ranks: checks the harness")
    args = ap.parse_args()
    global TINY
    if args.cpu_dry_run:
        os.environ["AVATAR_BENCH_TINY"] = "1"
        TINY = True
    visible = torch.cuda.device_count()
    res = {"device": "cpu (dry run)" if TINY else torch.cuda.get_device_name() if visible else "none",
           "visible_gpus": visible,
           "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": "python bench/video_multi_gpu_bench.py " + " ".join(sys.argv[1:]),
           "shape": f"704*384, 12 frames per block, {args.steps} steps, random weights", "layouts": []}
    p = GenParams(mode="liveavatar", size="64*64" if TINY else "704*384", infer_frames=48, sample_steps=args.steps,
                  seed=0, rolling_sink=True)
    img = np.stack(list(np.meshgrid(np.arange(704) % 256, np.arange(384) % 256)) + [np.full((384, 704), 128)], -1)
    img = img.astype(np.uint8)
    audio = np.zeros(int(16000 * (args.blocks * 12 - 3) / 25), np.float32)
    for n in args.gpus:
        res["layouts"].append(one_layout(n, args.vae_parallel and n > 1, args, img, audio, p))
        with open(os.path.join(args.out, "video_multi_gpu_bench.json"), "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
