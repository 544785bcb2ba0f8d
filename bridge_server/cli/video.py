"""`avatar-bridge generate` / `generate-batch`: talking video from portrait + speech + prompt, in-process
(like Wan2.2's and LiveAvatar's generate.py). Knob names follow Wan2.2 / LiveAvatar's CLIs."""
from __future__ import annotations

import glob
import json
import os
import sys
import time

from bridge_server.video_presets import PRESETS

KNOBS = ("model", "size", "num_clip", "infer_frames", "sample_steps", "sample_guide_scale", "sample_solver",
         "sample_shift", "seed", "offload_model", "enable_online_decode")


def add_video_commands(sub) -> None:
    ap = sub.add_parser("generate", help="portrait + speech (+ prompt) -> talking-video MP4 (Wan2.2-S2V / LiveAvatar)",
                        description="Runs the video engine in this process. See docs/video.md.")
    ap.set_defaults(run=run_video_command)
    _common(ap)
    ap.add_argument("--image", required=True, help="portrait PNG/JPEG")
    ap.add_argument("--audio", required=True, help="speech file (any format ffmpeg/libsndfile reads)")
    ap.add_argument("--prompt", default="", help="text prompt")
    ap.add_argument("--out", default="out.mp4")
    bp = sub.add_parser("generate-batch", help="run several profiles/*.json (name, image, audio, prompt, overrides)")
    bp.set_defaults(run=run_video_command)
    _common(bp)
    bp.add_argument("profiles", nargs="+", help="JSON files or globs")
    bp.add_argument("--out-dir", default="out", help="MP4s and runs.jsonl (every run's parameters) go here")
    bp.add_argument("--ray", metavar="ADDRESS", help="run each profile as a task on this Ray cluster (HOST:PORT of "
                    "the head, or auto); docs/scaling.md")
    bp.add_argument("--gpus-per-job", type=float, default=1.0, help="with --ray: GPUs each job holds (0 = CPU)")


def _common(ap) -> None:
    ap.add_argument("--ckpt_dir", "--ckpt-dir", required=True, help="Wan2.2-S2V-14B folder (models fetch s2v-14b)")
    ap.add_argument("--lora", "--lora_path_dmd", dest="lora", default=None,
                    help="LiveAvatar LoRA (liveavatar.safetensors or its folder); implies --load_lora")
    ap.add_argument("--load_lora", action="store_true", help="merge the LiveAvatar LoRA (default: <ckpt_dir>/../"
                    "Live-Avatar or <ckpt_dir>/liveavatar.safetensors) and run the causal 4-step mode")
    ap.add_argument("--preset", choices=sorted(PRESETS), help="preset knobs; explicit flags win")
    ap.add_argument("--model", choices=["liveavatar", "s2v"], default=None)
    ap.add_argument("--size", default=None, help="max area W*H, e.g. 704*384")
    ap.add_argument("--num_clip", type=int, default=None, help="clips to generate (0 = cover the audio)")
    ap.add_argument("--infer_frames", type=int, default=None, help="frames per clip (48 LiveAvatar, 80 S2V)")
    ap.add_argument("--sample_steps", type=int, default=None)
    ap.add_argument("--sample_guide_scale", type=float, default=None, help="S2V CFG scale (LiveAvatar: none)")
    ap.add_argument("--sample_solver", choices=["unipc", "dpm++", "euler"], default=None)
    ap.add_argument("--sample_shift", type=float, default=None, help="S2V only (LiveAvatar hard-codes 3)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--offload_model", action="store_true", default=None, help="keep umT5 on the CPU")
    ap.add_argument("--enable_online_decode", action="store_true", default=None,
                    help="LiveAvatar: roll the sink frame after the first clip (frames are always decoded and "
                         "written block by block)")
    ap.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    sp = ap.add_argument_group("speed path (LiveAvatar mode; docs/video.md \"Speed path\"; defaults from "
                               "AVATAR_VIDEO_FAST / _COMPILE / _QUANT / _COMPILE_VAE)")
    sp.add_argument("--compile", action="store_true", default=None,
                    help="regional torch.compile of the DiT layers (+ the VAE decoder); eager fallback on failure")
    sp.add_argument("--quant", choices=["none", "fp8"], default=None,
                    help="fp8: FP8 rowwise linears (Hopper GPUs, compute capability >= 9.0; an error elsewhere)")
    sp.add_argument("--fast_eager", action="store_true", default=None,
                    help="the speed path's eager refactors only (fp32 RoPE tables, sink K/V in the cache, text K/V "
                         "once); implied by --compile / --quant fp8")
    sp.add_argument("--no_compile_vae", action="store_true", default=None,
                    help="with --compile: keep the VAE decoder eager")
    sp.add_argument("--kv_cache", choices=["model", "fp8"], default=None,
                    help="fp8: KV caches in FP8 e4m3 with per-token scales (half their memory; any device)")
    sp.add_argument("--attention", choices=["sdpa", "fa3", "fa3-fp8"], default=None,
                    help="window self-attention kernel: sdpa (default), fa3 = FlashAttention-3 bf16, fa3-fp8 = "
                         "FlashAttention-3 on FP8 operands with FP8 KV caches (Hopper; the flash_attn_3 wheel, "
                         "docs/video.md)")
    sp.add_argument("--offload_dit", choices=["none", "weights", "weights+kv"], default=None,
                    help="stream the DiT layers' weights (and with weights+kv the KV caches) from pinned host "
                         "memory; implies --offload_model; for GPUs of 24 GB or less")
    mg = ap.add_argument_group("several GPUs (docs/multi_gpu.md)")
    mg.add_argument("--num_gpus_dit", type=int, default=1,
                    help="ranks for the DiT: LiveAvatar = timestep pipeline (one denoising step per GPU, steps cycle "
                         "when there are more), S2V = sequence parallel; launched here (one process per rank)")
    mg.add_argument("--ulysses_size", type=int, default=0,
                    help="ranks per sequence-parallel group inside a pipeline stage (0 = GPUs / steps when more GPUs "
                         "than steps, else 1)")
    mg.add_argument("--enable_vae_parallel", action="store_true", help="one extra rank (GPU) decodes the VAE")
    mg.add_argument("--master_port", type=int, default=None,
                    help="rendezvous port (default: MASTER_PORT, else a free one); an error if it is taken")
    mg.add_argument("--dist_timeout", type=float, default=120.0,
                    help="seconds a collective may wait for a peer; the run also stops if no frames come for "
                         "2x this long (a hung rank)")
    mg.add_argument("--nccl_debug", action="store_true", help="NCCL_DEBUG=INFO + TORCH_DISTRIBUTED_DEBUG=DETAIL")
    ap.add_argument("--no-progress", action="store_true")


def resolve(args, overrides: dict | None = None) -> dict:
    """Defaults < preset < flags < per-profile overrides."""
    lora = args.lora
    if args.load_lora and not lora:
        for cand in (os.path.join(args.ckpt_dir, "liveavatar.safetensors"),
                     os.path.join(os.path.dirname(os.path.abspath(args.ckpt_dir)), "Live-Avatar")):
            if os.path.exists(cand):
                lora = cand
                break
        else:
            raise SystemExit("--load_lora: no liveavatar.safetensors in the checkpoint dir or ../Live-Avatar; "
                             "pass --lora PATH (fetch: avatar-bridge models fetch liveavatar)")
    k = {"model": "liveavatar" if lora else "s2v", "offload_model": False, "enable_online_decode": False}
    k.update(PRESETS.get(args.preset or "", {}))
    k.update({n: getattr(args, n) for n in KNOBS if getattr(args, n, None) is not None})
    k.update(overrides or {})
    if k["model"] == "liveavatar" and not lora:
        raise SystemExit("model liveavatar needs the LoRA: --lora PATH or --load_lora")
    from engine.video.pipeline import GenParams
    params = GenParams.for_mode(k["model"], **{n: k.get(n) for n in KNOBS if n not in (
        "model", "offload_model", "enable_online_decode")})  # the defaults GenerateVideo uses too
    k.update({n: getattr(params, n) for n in ("size", "seed", "num_clip", "infer_frames", "sample_steps",
                                              "sample_solver", "sample_guide_scale", "sample_shift")})
    k["lora"] = lora
    return k


def run_video_command(args) -> int:
    from engine.video.checkpoints import CheckpointError
    from engine.video.inputs import InputError
    from engine.video.parallel.engine import RankFailure
    try:
        if args.cmd == "generate":
            k = resolve(args)
            eng = _engine(args, k)
            try:
                info = generate_one(eng, args.image, args.audio, args.prompt, k, args.out, not args.no_progress)
            finally:
                getattr(eng, "close", lambda: None)()  # a rank group stops with the command
            print(f"{info['frames']} frames {info['width']}x{info['height']} at {info['fps']} fps "
                  f"in {info['seconds']:.1f} s -> {args.out}" + "".join(f"\nwarning: {w}" for w in info["warnings"]))
            return 0
        return _batch(args)
    except (InputError, CheckpointError, ValueError, OSError) as exc:
        field = f"{exc.field}: " if isinstance(exc, InputError) else ""
        print(f"avatar-bridge {args.cmd}: {field}{exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        if type(exc).__name__ != "OutOfMemoryError":
            raise
        first = str(exc).splitlines()[0] if str(exc) else "CUDA out of memory"
        print(f"avatar-bridge {args.cmd}: GPU out of memory ({first}); lower --size or --infer_frames, or use "
              f"--quant fp8, --kv_cache fp8, --offload_dit weights+kv (docs/video.md)", file=sys.stderr)
        return 2
    except RankFailure as exc:
        print(f"avatar-bridge {args.cmd}: {exc}", file=sys.stderr)
        return 3


def speed_options(args):
    """Flags over the AVATAR_VIDEO_* settings (engine/video/speed.py)."""
    from engine.video.speed import SpeedOptions
    return SpeedOptions.from_env(fast=getattr(args, "fast_eager", None), compile=getattr(args, "compile", None),
                                 quant=getattr(args, "quant", None),
                                 compile_vae=False if getattr(args, "no_compile_vae", None) else None,
                                 kv_cache=getattr(args, "kv_cache", None), offload=getattr(args, "offload_dit", None),
                                 attention=getattr(args, "attention", None))


def parallel_config(args, k):
    """The rank-group knobs, or None for the one-process engine."""
    n, vae = getattr(args, "num_gpus_dit", 1), bool(getattr(args, "enable_vae_parallel", False))
    if n == 1 and not vae:
        return None
    from engine.video.parallel.group import ParallelConfig
    dev = args.device or "cuda"
    port = args.master_port if args.master_port is not None else int(os.environ.get("MASTER_PORT", 0) or 0)
    return ParallelConfig(num_gpus_dit=n, ulysses_size=args.ulysses_size, enable_vae_parallel=vae,
                          device="cuda" if dev.startswith("cuda") else dev, master_port=port,
                          timeout_s=args.dist_timeout, stall_timeout_s=2 * args.dist_timeout,
                          nccl_debug=args.nccl_debug)


def _engine(args, k):
    from engine.video.pipeline import VideoEngine
    pc = parallel_config(args, k)
    if pc is not None:
        from engine.video.parallel.engine import ParallelVideoEngine
        from engine.video.parallel.group import check_devices, check_port
        from engine.video.pipeline import GenParams
        eng = ParallelVideoEngine(args.ckpt_dir, lora=k["lora"] if k["model"] == "liveavatar" else None,
                                  offload_model=bool(k["offload_model"]), speed=speed_options(args), parallel=pc)
        eng.check_files()
        eng.layout(GenParams(mode=k["model"], sample_steps=k["sample_steps"]))  # bad splits: before any work
        check_devices(pc)
        if pc.master_port:
            check_port(pc.master_addr, pc.master_port)
        if pc.device == "cpu":
            print(f"note: --device cpu runs {pc.world_size} CPU processes (gloo) in place of GPUs: a test mode",
                  file=sys.stderr)
        return eng
    return VideoEngine(args.ckpt_dir, lora=k["lora"] if k["model"] == "liveavatar" else None,
                       device=args.device, offload_model=bool(k["offload_model"]), speed=speed_options(args))


def generate_one(eng, image: str, audio: str, prompt: str, k: dict, out: str, progress: bool) -> dict:
    from engine.video.inputs import check_image, choose_size, decode_image, load_audio, parse_size
    from engine.video.mp4 import Mp4Writer
    from engine.video.pipeline import GenParams
    t0 = time.monotonic()
    img = decode_image(open(image, "rb").read())
    warnings = check_image(img)
    aud, aw = load_audio(open(audio, "rb").read())
    warnings += aw
    p = GenParams(mode=k["model"], size=k["size"], seed=k["seed"], sample_steps=k["sample_steps"],
                  sample_shift=k["sample_shift"], sample_guide_scale=k["sample_guide_scale"],
                  sample_solver=k["sample_solver"], infer_frames=k["infer_frames"], num_clip=k["num_clip"],
                  rolling_sink=bool(k["enable_online_decode"]))
    oh, ow = choose_size(img.shape[0], img.shape[1], parse_size(p.size))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=1, unit="step", desc=os.path.basename(out))

    def tick(done, total):
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()
    writer = None
    frames = 0
    try:
        for chunk in eng.stream(img, aud, prompt, p, progress=tick):
            if writer is None:
                os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
                writer = Mp4Writer(out, ow, oh, p.fps, aud)
            writer.write(chunk.frames, chunk.times_s)
            frames += len(chunk.frames)
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()
    return {"frames": frames, "width": ow, "height": oh, "fps": p.fps, "seconds": time.monotonic() - t0,
            "warnings": warnings}


def _batch(args) -> int:
    files = sorted({f for pat in args.profiles for f in (glob.glob(pat) or [pat])})
    if args.ray:  # one Ray task per profile (bridge_server/cli/ray_batch.py)
        from bridge_server.cli.ray_batch import RayBatchError, run_batch_on_ray
        try:
            return run_batch_on_ray(args, files)
        except RayBatchError as exc:
            print(f"avatar-bridge generate-batch: {exc}", file=sys.stderr)
            return 2
    os.makedirs(args.out_dir, exist_ok=True)
    log_path = os.path.join(args.out_dir, "runs.jsonl")
    engines: dict = {}
    failed = 0
    for path in files:
        with open(path) as fh:
            prof = json.load(fh)
        name = prof.get("name") or os.path.splitext(os.path.basename(path))[0]
        base = os.path.dirname(os.path.abspath(path))
        rel = lambda f: f if os.path.isabs(f) else os.path.join(base, f)  # noqa: E731
        k = resolve(args, prof.get("overrides"))
        out = os.path.join(args.out_dir, f"{name}.mp4")
        key = (k["model"], k["lora"], bool(k["offload_model"]))
        record = {"name": name, "profile": path, "image": rel(prof["image"]), "audio": rel(prof["audio"]),
                  "prompt": prof.get("prompt", ""), "params": k, "out": out,
                  "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            if key not in engines:
                for e in engines.values():
                    getattr(e, "close", lambda: None)()
                engines.clear()  # one model in memory at a time
                engines[key] = _engine(args, k)
            record.update(generate_one(engines[key], record["image"], record["audio"], record["prompt"], k, out,
                                       not args.no_progress), status="ok")
        except Exception as exc:  # one bad profile must not stop the batch; the log says why
            failed += 1
            record.update(status="error", error=f"{type(exc).__name__}: {exc}")
            print(f"avatar-bridge generate-batch: {name}: {exc}", file=sys.stderr)
        with open(log_path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
    for e in engines.values():
        getattr(e, "close", lambda: None)()
    print(f"{len(files) - failed}/{len(files)} runs ok; log: {log_path}")
    return 1 if failed else 0
