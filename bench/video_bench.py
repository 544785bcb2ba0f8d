"""GPU checks and timings of the video engine at the REAL Wan2.2-S2V-14B / LiveAvatar shapes with
RANDOM weights (no released weights can be downloaded here): these are speed/memory/numerics
numbers at real sizes, not quality results.

  python bench/video_bench.py [--out DIR] [--skip-parity] [--skip-vae]

1. correctness: a mid-size config (head_dim 128) on CUDA bf16 vs CPU fp32 — offline S2V forward and
   three causal LiveAvatar blocks with KV caches (relative L2 error);
2. the full 14B core vs diffusers' eager WanTransformer3DModel on the SAME weights (shared storage,
   keys renamed per the spec): relative error and seconds per step, 704*384, 48-frame clip (12 latents);
3. our S2V offline step (noisy + ref + motion tokens, audio injection) at the same size;
4. LiveAvatar causal: cond-cache prefill, then seconds per denoising step of one 3-latent block with a
   full 4-block KV window; frames/s of a single GPU running 4 steps per block sequentially;
5. Wan 2.1 VAE (diffusers AutoencoderKLWan, random weights) streaming decode of one block -> 12 frames.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine.video.config import S2VConfig  # noqa: E402
from engine.video.dit import BlockKVCache, Cond, CondCache, WanS2VTransformer  # noqa: E402


def rel(a, b) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm())


@torch.no_grad()
def init_random(model: torch.nn.Module, device, dtype, seed: int = 0) -> None:
    """Materialise a meta-built model on ``device`` with sane random weights (no NaN/overflow at 40 layers)."""
    g = torch.Generator(device).manual_seed(seed)
    for mod in model.modules():
        for name, p in list(mod.named_parameters(recurse=False)):
            t = torch.empty(p.shape, device=device, dtype=dtype)
            if name == "weight" and p.ndim >= 2:
                fan_in = p[0].numel()
                t.normal_(0, fan_in ** -0.5, generator=g)
            elif name in ("modulation",):
                t.normal_(0, p.shape[-1] ** -0.5, generator=g)
            elif name == "weight" or name == "gamma":
                t.fill_(1.0)
            elif name == "weights":
                t.fill_(0.01)
            else:
                t.normal_(0, 0.02, generator=g)
            setattr(mod, name, torch.nn.Parameter(t, requires_grad=False))


def timed(fn, reps: int, warm: int = 1):
    for _ in range(warm):
        out = fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[len(ts) // 2], out


def correctness(res: dict) -> None:
    cfg = S2VConfig(dim=1024, ffn_dim=2816, freq_dim=256, text_dim=256, text_len=64, num_heads=8, num_layers=4,
                    audio_dim=128, audio_inject_layers=(0, 2, 3), rope_max_pos=45000)
    with torch.device("meta"):
        m = WanS2VTransformer(cfg)
    init_random(m, "cpu", torch.float32, seed=1)
    torch.manual_seed(0)
    hl, wl = 16, 32
    x = torch.randn(1, 16, 3, hl, wl)
    t5 = torch.randn(1, 20, cfg.text_dim)
    ref, motion = torch.randn(1, 16, 1, hl, wl), torch.randn(1, 16, 19, hl, wl)
    audio = torch.randn(1, 25, cfg.audio_dim, 12)
    t = torch.tensor([857.69])

    def run(model, dev, dt):
        cast = lambda v: v.to(dev, dt)  # noqa: E731
        ctx = model.embed_text(cast(t5))
        cond = Cond(ctx, cast(ref), cast(motion))
        off = model(cast(x), t.to(dev), cond, audio.to(dev), drop_motion=False)
        cc = CondCache(cfg.num_layers, dt)
        model.prefill_cond(cc, cond)
        kv = BlockKVCache(cfg.num_layers, 1, 6 * (hl // 2) * (wl // 2), cfg.num_heads, cfg.head_dim, dt, dev)
        blocks = [model.forward_block(cast(x), t.to(dev), ctx, audio.to(dev), 3 * b, kv, cc, 10) for b in range(3)]
        return off, torch.stack(blocks)

    with torch.no_grad():
        ref_off, ref_blk = run(m, "cpu", torch.float32)
        m.to("cuda", torch.bfloat16)
        gpu_off, gpu_blk = run(m, "cuda", torch.bfloat16)
    res["correctness_mid"] = {"config": "dim 1024, 8 heads x 128, 4 layers, 16x32 latents",
                              "offline_rel_err_bf16_vs_fp32": rel(gpu_off, ref_off),
                              "causal_3blocks_rel_err_bf16_vs_fp32": rel(gpu_blk, ref_blk)}
    print("correctness", res["correctness_mid"], flush=True)
    del m
    torch.cuda.empty_cache()


def full_size(res: dict, skip_parity: bool) -> None:
    dev, dt = "cuda", torch.bfloat16
    cfg = S2VConfig(rope_max_pos=45000)
    with torch.device("meta"):
        m = WanS2VTransformer(cfg)
    t0 = time.perf_counter()
    init_random(m, dev, dt)
    torch.cuda.synchronize()
    res["weights_gib"] = torch.cuda.memory_allocated() / 2**30
    print(f"full model on GPU: {res['weights_gib']:.1f} GiB in {time.perf_counter() - t0:.0f} s", flush=True)
    H, W = 384, 704  # --size 704*384 (W*H)
    hl, wl, nf = H // 8, W // 8, 12  # 48-frame clip = 12 latent frames
    fsl = (hl // 2) * (wl // 2)
    g = torch.Generator(dev).manual_seed(0)
    x = torch.randn(1, 16, nf, hl, wl, device=dev, dtype=dt, generator=g)
    t5 = torch.randn(1, 512, 4096, device=dev, dtype=dt, generator=g) * 0.1
    t = torch.tensor([857.6923], device=dev)
    with torch.no_grad():
        ctx = m.embed_text(t5)
        if not skip_parity:
            from diffusers import WanTransformer3DModel
            from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

            from engine.video.convert import core_state_to_diffusers, diffusers_config
            with torch.device("meta"):
                d = WanTransformer3DModel(**diffusers_config(cfg))
            d.load_state_dict(core_state_to_diffusers(m.state_dict()), assign=True, strict=True)  # shared storage
            d.rope = WanRotaryPosEmbed(cfg.head_dim, cfg.patch_size, 1024).to(dev)
            d.eval()
            torch.cuda.reset_peak_memory_stats()
            s_diff, out_d = timed(lambda: d(x, t, t5, return_dict=False)[0], reps=3)
            peak_d = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
            s_core, out_m = timed(lambda: m.forward_core(x, t, ctx), reps=3)
            peak_m = torch.cuda.max_memory_allocated() / 2**30
            res["core_vs_diffusers"] = {"tokens": nf * fsl, "rel_err": rel(out_m, out_d),
                                        "diffusers_s_per_step": s_diff, "ours_core_s_per_step": s_core,
                                        "diffusers_peak_gib": peak_d, "ours_peak_gib": peak_m}
            print("core vs diffusers", res["core_vs_diffusers"], flush=True)
            del d, out_d, out_m
        # S2V offline step: noisy + ref + motion tokens, two modulation segments, audio injection.
        ref = torch.randn(1, 16, 1, hl, wl, device=dev, dtype=dt, generator=g)
        motion = torch.randn(1, 16, 19, hl, wl, device=dev, dtype=dt, generator=g)
        audio = torch.randn(1, 25, 1024, 4 * nf, device=dev, generator=g)
        cond = Cond(ctx, ref, motion)
        torch.cuda.reset_peak_memory_stats()
        s_s2v, _ = timed(lambda: m(x, t, cond, audio), reps=2)
        res["s2v_offline"] = {"tokens": int(nf * fsl + 2.5 * fsl), "s_per_step": s_s2v,
                              "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
        print("s2v offline", res["s2v_offline"], flush=True)
        # LiveAvatar causal: prefill + steady-state block step with a full window.
        cc = CondCache(cfg.num_layers, dt)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        m.prefill_cond(cc, cond)
        torch.cuda.synchronize()
        prefill = time.perf_counter() - t0
        kv = BlockKVCache(cfg.num_layers, 1, 12 * fsl, cfg.num_heads, cfg.head_dim, dt, dev)  # one step's cache
        xb = x[:, :, :3]
        ab = audio[..., :12]
        blk_times = []
        torch.cuda.reset_peak_memory_stats()
        for b in range(6):  # blocks 0..3 fill the window; 4, 5 are steady state
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            m.forward_block(xb, t, ctx, ab, 3 * b, kv, cc, 10)
            torch.cuda.synchronize()
            blk_times.append(time.perf_counter() - t0)
        step = min(blk_times[4:])
        res["liveavatar"] = {"block_tokens": 3 * fsl, "kv_tokens_full_window": 12 * fsl + cc.k[0].shape[1],
                             "prefill_s": prefill, "step_s_per_block": blk_times,
                             "steady_step_s": step, "one_step_cache_gib": 12 * fsl * 40 * 2 * 5120 * 2 / 2**30,
                             "peak_gib_one_cache": torch.cuda.max_memory_allocated() / 2**30,
                             "fps_single_gpu_4_steps": 12 / (4 * step),
                             "fps_tpp_4_dit_gpus_ideal": 12 / step}
        print("liveavatar", res["liveavatar"], flush=True)
    del m, kv, cc
    torch.cuda.empty_cache()


def liveavatar_four_caches(res: dict) -> None:
    """Single-GPU LiveAvatar as shipped: full model + 4 per-step KV caches resident; 4 Euler steps per block."""
    from engine.video.schedulers import EulerFlow, liveavatar_schedule
    dev, dt = "cuda", torch.bfloat16
    cfg = S2VConfig(rope_max_pos=45000)
    with torch.device("meta"):
        m = WanS2VTransformer(cfg)
    init_random(m, dev, dt)
    hl, wl = 48, 88
    fsl = (hl // 2) * (wl // 2)
    g = torch.Generator(dev).manual_seed(0)
    with torch.no_grad():
        ctx = m.embed_text(torch.randn(1, 512, 4096, device=dev, dtype=dt, generator=g) * 0.1)
        cond = Cond(ctx, torch.randn(1, 16, 1, hl, wl, device=dev, dtype=dt, generator=g),
                    torch.randn(1, 16, 19, hl, wl, device=dev, dtype=dt, generator=g))
        cc = CondCache(cfg.num_layers, dt)
        m.prefill_cond(cc, cond)
        caches = [BlockKVCache(cfg.num_layers, 1, 12 * fsl, cfg.num_heads, cfg.head_dim, dt, dev) for _ in range(4)]
        ts, sig = liveavatar_schedule(4)
        eu = EulerFlow(sig, ts)
        audio = torch.randn(1, 25, 1024, 12, device=dev, generator=g)
        torch.cuda.reset_peak_memory_stats()
        times = []
        for b in range(6):
            x = torch.randn(1, 16, 3, hl, wl, device=dev, dtype=dt, generator=g)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for i in range(4):
                v = m.forward_block(x, torch.full((1,), ts[i], device=dev), ctx, audio, 3 * b, caches[i], cc, 10)
                x = eu.step(v, i, x)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    res["liveavatar_4_caches"] = {"s_per_block_4_steps": times, "fps_dit_only": 12 / min(times[4:]),
                                  "peak_gib": torch.cuda.max_memory_allocated() / 2**30}
    print("liveavatar 4 caches", res["liveavatar_4_caches"], flush=True)
    del m, caches, cc
    torch.cuda.empty_cache()


def vae_bench(res: dict) -> None:
    from diffusers import AutoencoderKLWan

    from engine.video.vae import StreamingDecoder
    dev, dt = "cuda", torch.bfloat16
    vae = AutoencoderKLWan().to(dev, dt).eval()
    dec = StreamingDecoder(vae)
    g = torch.Generator(dev).manual_seed(0)
    z = torch.randn(1, 16, 3, 48, 88, device=dev, generator=g)
    with torch.no_grad():
        dec.decode(torch.randn(1, 16, 7, 48, 88, device=dev, generator=g))  # warm-up as LiveAvatar does
        torch.cuda.reset_peak_memory_stats()
        ts = []
        for _ in range(4):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = dec.decode(z)
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - t0)
    res["vae_stream_decode"] = {"frames_per_block": int(out.shape[2]), "s_per_block": sorted(ts)[len(ts) // 2],
                                "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "dtype": "bf16"}
    print("vae", res["vae_stream_decode"], flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--skip-parity", action="store_true")
    ap.add_argument("--skip-vae", action="store_true")
    ap.add_argument("--four-caches-only", action="store_true", help="only the 4-cache single-GPU LiveAvatar loop")
    args = ap.parse_args()
    if args.four_caches_only:
        res = {"device": torch.cuda.get_device_name(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        liveavatar_four_caches(res)
        with open(os.path.join(args.out, "video_bench_4caches.json"), "w") as fh:
            json.dump(res, fh, indent=2)
        return 0
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    correctness(res)
    full_size(res, args.skip_parity)
    if not args.skip_vae:
        vae_bench(res)
    la = res["liveavatar"]
    vd = res.get("vae_stream_decode", {}).get("s_per_block", 0.0)
    res["time_to_first_frames_s"] = la["prefill_s"] + 4 * la["step_s_per_block"][0] + vd
    with open(os.path.join(args.out, "video_bench.json"), "w") as fh:
        json.dump(res, fh, indent=2)
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
