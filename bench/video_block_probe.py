"""Where the compile + FP8 block's time goes, and what the last levers buy (issue 17), on one GPU:

  python bench/video_block_probe.py [--out DIR] [--blocks 5] [--skip-vae]

Same model, shapes and seed as bench/video_speed_bench.py (random weights, 704*384, 3-latent blocks, 4 steps,
4 KV caches, window 4 blocks). Parts, each timed against the same run's compile + FP8 baseline:
  profile     kernel time per category (attention / GEMM / fused Triton / copies / other) over one timed pass,
              and how busy the GPU was (kernel time / wall time)
  attn-fp8    the window self-attention through cuDNN's FP8 SDPA (per-tensor scales, quantised per call):
              end-to-end latent error against the bf16 reference, and its time
  vae         streaming decode per block: eager, eager + cudnn.benchmark, channels_last_3d + benchmark,
              compiled, compiled + benchmark
  overlap     the DiT pass with VAE decodes running beside it on a second CUDA stream (from a second thread):
              the pass's slowdown against the decodes it finished, vs running the two one after the other
  pipelined   each block's (compiled) VAE decode queued on a second CUDA stream from the same thread right after
              the block's DiT steps, while the next block's steps queue on the first: the whole pass's wall
              time against decoding each block in line, and the frames compared
Prints a short table last; full numbers in DIR/video_block_probe.json.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT]

from bench.video_speed_bench import LATENT_HW, decode_all, real_shape_model, vae_timing  # noqa: E402
from engine.video import speed as sp  # noqa: E402
from engine.video.dit import make_regions, sdpa  # noqa: E402

T0 = time.perf_counter()
CATEGORIES = (("attention", ("fmha", "flash", "sdpa", "attn", "cudnn")),
              ("gemm", ("gemm", "xmma", "cutlass", "f8f8", "scaled_mm", "sm90", "nvjet", "cublas")),
              ("fused triton", ("triton",)),
              ("copies", ("memcpy", "memset", "copy", "cat")))


def category(name: str) -> str:
    low = name.lower()
    for cat, keys in CATEGORIES:
        if any(k in low for k in keys):
            return cat
    return "other"


def steady(secs: list[float]) -> float:
    tail = secs[3:] or secs
    return sum(tail) / len(tail)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--skip-vae", action="store_true")
    ap.add_argument("--budget-s", type=float, default=480)
    ap.add_argument("--parts", default="variants,profile,attn-fp8,vae,overlap,pipelined",
                    help="comma-separated: variants (ref_rope eager; inductor coordinate-descent tuning), profile, "
                    "attn-fp8, vae, overlap")
    args = ap.parse_args()
    dev, dt = "cuda", torch.bfloat16
    res = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": "python bench/video_block_probe.py " + " ".join(sys.argv[1:])}
    out_json = os.path.join(args.out, "video_block_probe.json")

    def save():
        with open(out_json, "w") as fh:
            json.dump(res, fh, indent=2)

    m, (ctx, ref, motion, audio, noises), g = real_shape_model(dev, dt, args.blocks)
    hl, wl = LATENT_HW
    sync = torch.cuda.synchronize

    def run(opts, regions):
        return sp.causal_latents(m, opts, ctx, ref, motion, audio, noises, regions=regions, sync=sync)

    ref_lat, ref_secs, _ = run(None, None)
    res["reference_s_per_block"] = steady(ref_secs)
    print(f"reference {steady(ref_secs):.3f} s/block", flush=True)

    opts = sp.SpeedOptions(compile=True, quant="fp8")
    sp.check_fp8(dev)
    sp.quantize_dit(m, drop_weights=True)
    gc.collect()
    torch.cuda.empty_cache()
    regions = make_regions(opts)
    run(opts, regions)  # compiles
    base_lat, base_secs, _ = run(opts, regions)
    base = steady(base_secs)
    res["compile_fp8"] = {"s_per_block": base, "dit_fps": 12 / base,
                          "max_rel_err": max(sp.rel_err(a, b) for a, b in zip(base_lat, ref_lat))}
    print("compile+fp8", res["compile_fp8"], flush=True)
    save()
    parts = set(args.parts.split(","))
    if "variants" in parts:
        regions = variants(res, run, opts, regions, base, ref_lat, m)
        save()

    # -- profile: where one pass's GPU time goes -------------------------------------------------------
    try:
        if "profile" in parts:
            profile_pass(res, run, opts, regions, sync)
    except Exception as exc:  # keep the other parts
        res["profile_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    save()

    # -- FP8 window attention (cuDNN), end to end -------------------------------------------------------
    try:
        if "attn-fp8" not in parts:
            raise LookupError("not asked for (--parts)")
        from engine.video.fp8_attention import CudnnFp8Attention
        m.window_attention = CudnnFp8Attention()
        run(opts, regions)  # builds the cuDNN graphs
        a_lat, a_secs, _ = run(opts, regions)
        regions.assert_no_recompiles()
        res["attn_fp8"] = {"s_per_block_eager_quant": steady(a_secs),
                           "max_rel_err_vs_reference": max(sp.rel_err(a, b) for a, b in zip(a_lat, ref_lat)),
                           "max_rel_err_vs_compile_fp8": max(sp.rel_err(a, b) for a, b in zip(a_lat, base_lat)),
                           "rel_err_per_block": [sp.rel_err(a, b) for a, b in zip(a_lat, ref_lat)],
                           "guard_failures": sp.check_numerics([sp.rel_err(a, b) for a, b in zip(a_lat, ref_lat)],
                                                               opts, "bf16")}
        del a_lat
    except Exception as exc:  # keep the other parts
        res["attn_fp8"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
    m.window_attention = sdpa
    print("attn_fp8", res["attn_fp8"], flush=True)
    save()

    if args.skip_vae or "vae" not in parts or time.perf_counter() - T0 > args.budget_s:
        return finish(res, save)
    try:
        from diffusers import AutoencoderKLWan
        torch.manual_seed(0)
        vae = AutoencoderKLWan().to(dev, dt).eval().requires_grad_(False)
        warm_motion = torch.randn(1, 16, 7, hl, wl, device=dev, generator=g)
        z = noises[0].float()
        v = res["vae"] = {}
        with torch.no_grad():
            eager_frames = decode_all(vae, noises[:2], warm_motion)
            torch.backends.cudnn.benchmark = False
            v["eager"] = vae_timing(vae, z, warm_motion)[0]
            torch.backends.cudnn.benchmark = True
            v["eager+benchmark"] = vae_timing(vae, z, warm_motion)[0]
            v["eager+benchmark psnr"] = sp.psnr(decode_all(vae, noises[:2], warm_motion), eager_frames)
            try:
                vae.to(memory_format=torch.channels_last_3d)
                v["channels_last+benchmark"] = vae_timing(vae, z, warm_motion)[0]
            except Exception as exc:
                v["channels_last+benchmark"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            vae.to(memory_format=torch.contiguous_format)
            print("vae", v, flush=True)
            save()
            torch.backends.cudnn.benchmark = False
            sp.compile_vae_decoder(vae)
            v["compiled"], v["compiled warm s"] = vae_timing(vae, z, warm_motion)
            torch.backends.cudnn.benchmark = True
            v["compiled+benchmark"], v["compiled+benchmark warm s"] = vae_timing(vae, z, warm_motion)
            v["compiled+benchmark psnr"] = sp.psnr(decode_all(vae, noises[:2], warm_motion), eager_frames)
            v["compiled fallback"] = not vae.decoder._speed_state["ok"]
        print("vae", v, flush=True)
        save()
        if "pipelined" in parts:
            pipelined(res, save, m, opts, regions, vae, warm_motion, (ctx, ref, motion, audio, noises))
        if "overlap" not in parts or time.perf_counter() - T0 > args.budget_s:
            return finish(res, save)

        # -- overlap: VAE decodes on a side stream while the DiT pass runs --------------------------------------
        from engine.video.vae import StreamingDecoder
        side = torch.cuda.Stream()
        stop = threading.Event()
        done = [0]

        def decoder():
            dec = StreamingDecoder(vae)
            with torch.no_grad(), torch.cuda.stream(side):
                dec.decode(warm_motion)
                while not stop.is_set():
                    dec.decode(z)
                    side.synchronize()
                    done[0] += 1

        vae_s = v["compiled+benchmark"] if isinstance(v.get("compiled+benchmark"), float) else v["eager"]
        _, alone, _ = run(opts, regions)
        th = threading.Thread(target=decoder, daemon=True)
        th.start()
        time.sleep(2.0)  # the decoder's first calls (its own warm-up) out of the timed pass
        done[0] = 0
        sync()
        t = time.perf_counter()
        _, beside, _ = run(opts, regions)
        wall = time.perf_counter() - t
        n_dec = done[0]
        stop.set()
        th.join()
        seq_equiv = sum(alone) + n_dec * vae_s  # the same work one after the other
        res["overlap"] = {"dit_pass_alone_s": sum(alone), "dit_pass_beside_vae_s": sum(beside), "pass_wall_s": wall,
                          "vae_decodes_during_pass": n_dec, "vae_s_per_decode_alone": vae_s,
                          "sequential_equivalent_s": seq_equiv, "saving": 1 - wall / seq_equiv if seq_equiv else 0}
        print("overlap", res["overlap"], flush=True)
    except Exception as exc:  # keep what was measured
        import traceback
        traceback.print_exc()
        res["vae_or_overlap_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return finish(res, save)


def pipelined(res, save, m, opts, regions, vae, warm_motion, data) -> None:
    """Decode in line vs decode of block b on a side stream while block b+1's DiT steps run (same thread)."""
    from engine.video.vae import StreamingDecoder
    ctx, ref, motion, audio, noises = data
    main = torch.cuda.current_stream()
    side = torch.cuda.Stream()

    def one_pass(mode: str):
        dec = StreamingDecoder(vae)
        frames = []
        with torch.no_grad():
            dec.decode(warm_motion)

            def on_block(b, x):
                if mode == "none":
                    return
                if mode == "inline":
                    frames.append(dec.decode(x))
                    return
                ev = torch.cuda.Event()
                ev.record(main)
                with torch.cuda.stream(side):
                    side.wait_event(ev)
                    x.record_stream(side)
                    frames.append(dec.decode(x))
            torch.cuda.synchronize()
            t = time.perf_counter()
            _, _, prefill = sp.causal_latents(m, opts, ctx, ref, motion, audio, noises, regions=regions,
                                              sync=lambda: None, on_block=on_block)
            torch.cuda.synchronize()
            wall = time.perf_counter() - t
        return wall, frames

    try:
        r = res["pipelined"] = {"blocks": len(noises)}
        one_pass("side")  # warm: the side stream's first decodes
        for rnd in range(2):
            for mode in ("none", "inline", "side"):
                wall, frames = one_pass(mode)
                r.setdefault(f"{mode}_wall_s", []).append(wall)
                if mode == "inline":
                    inline = torch.cat(frames, 2)
                elif mode == "side":
                    r.setdefault("side_vs_inline_max_abs", []).append(float((torch.cat(frames, 2) - inline).abs().max()))
                del frames
        n = len(noises)
        for mode in ("none", "inline", "side"):
            w = min(r[f"{mode}_wall_s"])
            r[f"{mode}_fps"] = 12 * n / w
        r["side_saving_vs_inline"] = 1 - min(r["side_wall_s"]) / min(r["inline_wall_s"])
        print("pipelined", r, flush=True)
    except Exception as exc:  # keep the other parts
        import traceback
        traceback.print_exc()
        res["pipelined"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    save()


def variants(res, run, opts, regions, base: float, ref_lat, m):
    """The same run's compile + FP8 block with the reference keys roped eager (before the ref_rope region), with
    the audio tokens and the no-pose term recomputed every step (before they were kept), then recompiled with inductor's coordinate-descent tuning of every kernel's launch config. Returns the
    regions to go on with (the faster)."""
    import torch._dynamo
    import torch._inductor.config as ic
    comp = regions.compiled.pop("ref_rope")
    _, secs, _ = run(opts, regions)
    regions.compiled["ref_rope"] = comp
    res["ref_rope_eager"] = {"s_per_block": steady(secs), "dit_fps": 12 / steady(secs)}
    print("ref_rope eager", res["ref_rope_eager"], flush=True)
    # audio tokens and the no-pose term recomputed every step, as before they were kept per block / shape
    m._audio_tokens_once, m._noisy_tokens_fast = m.audio_tokens, m.noisy_tokens
    _, secs, _ = run(opts, regions)
    del m._audio_tokens_once, m._noisy_tokens_fast
    res["per_step_audio_and_pose"] = {"s_per_block": steady(secs), "dit_fps": 12 / steady(secs)}
    print("per-step audio and pose", res["per_step_audio_and_pose"], flush=True)
    best, best_s = None, base
    for name, cfg in (("coordinate_descent", {"coordinate_descent_tuning": True}),
                      ("multi_kernel", {"triton.multi_kernel": 1})):
        try:
            torch._dynamo.reset()
            with ic.patch(cfg):
                cand = make_regions(opts)
                t = time.perf_counter()
                run(opts, cand)
                warm = time.perf_counter() - t
            lat, secs, _ = run(opts, cand)
            cand.assert_no_recompiles()
            res[name] = {"s_per_block": steady(secs), "dit_fps": 12 / steady(secs), "first_pass_s": warm,
                         "max_rel_err": max(sp.rel_err(a, b) for a, b in zip(lat, ref_lat))}
            if steady(secs) < best_s:
                best, best_s = cand, steady(secs)
        except Exception as exc:
            res[name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        print(name, res[name], flush=True)
    if best is not None:
        return best
    torch._dynamo.reset()
    regions = make_regions(opts)
    run(opts, regions)
    return regions


def profile_pass(res, run, opts, regions, sync) -> None:
    from torch.profiler import ProfilerActivity, profile
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        t = time.perf_counter()
        _, p_secs, _ = run(opts, regions)
        wall = time.perf_counter() - t
    cats: dict[str, float] = {}
    kernels: dict[str, list] = {}
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            us = ev.time_range.elapsed_us()
            c = category(ev.name)
            cats[c] = cats.get(c, 0.0) + us / 1e6
            k = kernels.setdefault(ev.name[:90], [0, 0.0])
            k[0] += 1
            k[1] += us / 1e6
    busy = sum(cats.values())
    n_blocks = len(p_secs)
    res["profile"] = {"wall_s_pass": wall, "blocks": n_blocks, "kernel_s_pass": busy, "gpu_busy": busy / wall,
                      "category_s_per_block": {c: v / n_blocks for c, v in sorted(cats.items(), key=lambda x: -x[1])},
                      "top_kernels": sorted(([n, c, s / n_blocks] for n, (c, s) in kernels.items()),
                                            key=lambda x: -x[2])[:25]}
    print(json.dumps(res["profile"], indent=1), flush=True)
    del prof


def finish(res: dict, save) -> int:
    res["total_s"] = time.perf_counter() - T0
    save()
    b = res["compile_fp8"]["s_per_block"]
    print("\n| part | s per block | DiT fps | note |\n|---|---|---|---|")
    r0 = res["reference_s_per_block"]
    print(f"| reference (eager bf16) | {r0:.3f} | {12 / r0:.1f} | |")
    print(f"| compile + FP8 | {b:.3f} | {12 / b:.1f} | rel err {res['compile_fp8']['max_rel_err']:.2e} |")
    for k, label in (("ref_rope_eager", "compile + FP8, reference keys roped eager (before)"),
                     ("per_step_audio_and_pose", "compile + FP8, audio tokens and no-pose term every step (before)"),
                     ("coordinate_descent", "compile + FP8, coordinate-descent tuning"),
                     ("multi_kernel", "compile + FP8, inductor multi-kernel reductions")):
        r = res.get(k, {})
        if "s_per_block" in r:
            print(f"| {label} | {r['s_per_block']:.3f} | {r['dit_fps']:.1f} | {r.get('max_rel_err', '')} |")
    p = res.get("profile", {})
    if p:
        cats = ", ".join(f"{c} {s:.3f}" for c, s in p["category_s_per_block"].items())
        print(f"| profile (kernel s per block) | {p['kernel_s_pass'] / p['blocks']:.3f} | | GPU busy "
              f"{p['gpu_busy']:.0%}: {cats} |")
    a = res.get("attn_fp8", {})
    if "s_per_block_eager_quant" in a:
        print(f"| + cuDNN FP8 window attention (quant per call) | {a['s_per_block_eager_quant']:.3f} | "
              f"{12 / a['s_per_block_eager_quant']:.1f} | rel err vs ref {a['max_rel_err_vs_reference']:.2e}, "
              f"guard {a['guard_failures'] or 'ok'} |")
    elif a:
        print(f"| cuDNN FP8 window attention | | | {a.get('error')} |")
    for k, val in res.get("vae", {}).items():
        if isinstance(val, float) and "psnr" not in k and "warm" not in k:
            print(f"| VAE {k} | {val:.3f} | | |")
    o = res.get("overlap")
    if o:
        print(f"| overlap: DiT pass {o['dit_pass_alone_s']:.2f} s alone, {o['pass_wall_s']:.2f} s with "
              f"{o['vae_decodes_during_pass']} VAE decodes beside | | | saving {o['saving']:.1%} vs sequential |")
    pl = res.get("pipelined", {})
    if "side_fps" in pl:
        print(f"| pipelined VAE: {pl['blocks']} blocks, DiT only {min(pl['none_wall_s']):.2f} s, decode in line "
              f"{min(pl['inline_wall_s']):.2f} s, on a side stream {min(pl['side_wall_s']):.2f} s | | "
              f"{pl['none_fps']:.1f} / {pl['inline_fps']:.1f} / {pl['side_fps']:.1f} | saving "
              f"{pl['side_saving_vs_inline']:.1%}, frames max abs diff {max(pl['side_vs_inline_max_abs']):.1e} |")
    elif pl:
        print(f"| pipelined VAE | | | {pl.get('error')} |")
    print(f"total {res['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
