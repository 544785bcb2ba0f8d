"""Talking-video generation: Wan2.2-S2V clip mode and LiveAvatar causal streaming mode.

Both yield ``VideoChunk``s as soon as their frames are final (per LiveAvatar block, per S2V
clip), so a caller never holds the whole video: long inputs stream in constant memory
(LiveAvatar's "online decode").
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.video import checkpoints as ck
from engine.video import vae as vae_mod
from engine.video import speed as speed_mod
from engine.video.dit import (BlockKVCache, Cond, CondCache, FastKVCache, TextKV, WanS2VTransformer, make_regions,
                              prefill_sink)
from engine.video.inputs import choose_size, crop_resize
from engine.video.loader import load_dit, merge_lora
from engine.video.schedulers import EulerFlow, liveavatar_schedule, make_s2v_solver

log = logging.getLogger("engine.video")

# Wan2.2's default negative prompt (the S2V config's own begins "画面模糊，最差质量"); only used with CFG.
NEGATIVE_PROMPT = ("画面模糊，最差质量，画面模糊，细节模糊不清，情绪激动剧烈，手快速抖动，字幕，丑陋的，残缺的，多余的手指，"
                   "画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，"
                   "三条腿，背景人很多，倒着走")
# Optional, NOT part of the release: lets a directory declare non-default VAE / T5 constructor
# arguments (the tests' tiny checkpoints). The released models use the defaults.
COMPONENT_CONFIGS = "component_configs.json"
ENCODE_CACHE = 8  # portraits (with their prompt) whose encodes are kept


DEFAULT_SIZE = "704*384"
DEFAULT_SEED = 42
# Per model: what 0 / unset means for each knob.
MODE_DEFAULTS = {
    "liveavatar": dict(sample_steps=4, infer_frames=48, sample_solver="euler", sample_guide_scale=0.0,
                       sample_shift=3.0),
    "s2v": dict(sample_steps=40, infer_frames=80, sample_solver="unipc", sample_guide_scale=4.5, sample_shift=3.0),
}
LIVEAVATAR_FIXED = ("sample_solver", "sample_guide_scale", "sample_shift")


@dataclass
class GenParams:
    mode: str = "liveavatar"  # liveavatar (causal, 4-step, no CFG) | s2v (offline clips, UniPC + CFG)
    size: str = DEFAULT_SIZE
    seed: int = DEFAULT_SEED
    sample_steps: int = 4
    sample_shift: float = 3.0
    sample_guide_scale: float = 0.0
    sample_solver: str = "euler"
    infer_frames: int = 48
    num_clip: int = 0  # 0 = as many clips as the audio needs
    negative_prompt: str = NEGATIVE_PROMPT
    block_frames: int = 3  # latent frames per LiveAvatar block
    rolling_sink: bool = True

    @property
    def fps(self) -> int:
        return 25 if self.mode == "liveavatar" else 16

    @classmethod
    def for_mode(cls, mode: str, **knobs) -> "GenParams":
        """The one place video defaults are decided, for the CLI and GenerateVideo alike: a knob that is None,
        0 or "" takes the mode's default (as the request's fields document), so the same request gives the same
        video from either. LiveAvatar's solver, guidance and shift are fixed by its distillation."""
        if mode not in MODE_DEFAULTS:
            raise ValueError(f"model {mode!r} is not one of {', '.join(MODE_DEFAULTS)}")
        out = dict(MODE_DEFAULTS[mode], size=DEFAULT_SIZE, seed=DEFAULT_SEED, num_clip=0)
        fixed = LIVEAVATAR_FIXED if mode == "liveavatar" else ()
        out.update({k: v for k, v in knobs.items() if v not in (None, 0, "") and k not in fixed})
        return cls(mode=mode, **out)


@dataclass
class VideoChunk:
    frames: np.ndarray  # [n, H, W, 3] uint8
    first_index: int  # index of frames[0] in the output video
    times_s: np.ndarray  # presentation time of each frame on the input audio's clock
    last: bool = False
    warnings: list[str] = field(default_factory=list)
    # LiveAvatar: per-block timings and memory (dit_s, vae_s, fps, gpu_mem_bytes, gpu_peak_bytes, block)
    stats: dict = field(default_factory=dict)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class VideoEngine:
    """Loads the components lazily (first ``generate``), in bf16 on GPU / fp32 on CPU."""

    def __init__(self, ckpt_dir: str, lora: str | None = None, device: str | None = None,
                 dtype: torch.dtype | None = None, offload_model: bool = False, lora_scale: float | None = None,
                 speed: "speed_mod.SpeedOptions | None" = None):
        self.ckpt_dir, self.lora, self.lora_scale = ckpt_dir, lora, lora_scale
        # Speed path (docs/video.md "Speed path"): settings from AVATAR_VIDEO_* unless given.
        self.speed = speed if speed is not None else speed_mod.SpeedOptions.from_env()
        self.regions = None
        self.device = device or default_device()
        self.dtype = dtype or (torch.bfloat16 if str(self.device).startswith("cuda") else torch.float32)
        self.offload_model = offload_model
        self.dit: WanS2VTransformer | None = None
        self.s2v_forward = None  # several ranks: engine/video/parallel swaps in the sequence-parallel forward
        self.vae = self.text = self.audio = None
        p = os.path.join(ckpt_dir, COMPONENT_CONFIGS)
        self.component_cfg = json.load(open(p)) if os.path.isfile(p) else {}
        self._encodes: dict = {}  # (portrait bytes hash, size, prompt) -> reference / motion latents, text context

    def check_files(self) -> None:
        ck.require_files(self.ckpt_dir)
        if self.lora:
            ck.find_lora(self.lora)

    def load(self) -> None:
        if self.dit is not None:
            return
        from engine.video.encoders import AudioFeatures, TextEncoder

        if self.speed.quant == "fp8":
            speed_mod.check_fp8(self.device)  # before loading 32 GB: a clear error on CPU / pre-Hopper GPUs
        if self.speed.attention != "sdpa" and not self.speed._fa3_emulate:
            speed_mod.check_fa3(self.device)
        self.check_files()
        streamed = self.speed.offload != "none"
        if streamed:
            # The DiT is read onto the host (each block then moved into pinned memory by the LayerStreamer):
            # it needs about the shards' size of free host memory first.
            from engine.video.offload import check_host_memory
            idx = ck.read_index(os.path.join(self.ckpt_dir, ck.DIT_INDEX))
            need = sum(os.path.getsize(os.path.join(self.ckpt_dir, f)) for f in set(idx.values()))
            check_host_memory(need, "the DiT weights")
        self.dit = load_dit(self.ckpt_dir, "cpu" if streamed else self.device, self.dtype,
                            rope_max_pos=45000 if self.lora else None)
        if self.lora:
            merge_lora(self.dit, self.lora, scale=self.lora_scale)
        vae_dtype = self.dtype if self.lora else torch.float32  # LiveAvatar runs the VAE in bf16, Wan2.2 in fp32
        self.vae = vae_mod.load_vae(os.path.join(self.ckpt_dir, ck.VAE_FILE), self.device, vae_dtype,
                                    self.component_cfg.get("vae"))
        tdev = "cpu" if self.offload_model or streamed else self.device
        self.text = TextEncoder(self.ckpt_dir, tdev, self.dtype, self.component_cfg.get("t5"),
                                self.dit.config.text_len)
        # Wan2.2 runs wav2vec2 on CPU in fp32.
        self.audio = AudioFeatures(os.path.join(self.ckpt_dir, ck.WAV2VEC_DIR), "cpu", torch.float32)
        self._apply_speed()

    def _apply_speed(self) -> None:
        sp = self.speed
        if not sp.enabled and not sp.vae_compiled:
            return
        if sp.quant == "fp8":
            speed_mod.quantize_dit(self.dit, emulate=sp._fp8_emulate, memory=sp.kv_cache == "fp8" or
                                   sp.offload != "none", work_device=self.device)
        if sp.offload != "none":
            from engine.video.offload import LayerStreamer
            LayerStreamer(self.dit, self.device)
        self.regions = make_regions(sp)
        if sp.attention != "sdpa" and not sp._fa3_emulate:  # the kernel on this model's head dim
            speed_mod.check_fa3(self.device, self.dit.config.head_dim, fp8=sp.attention == "fa3-fp8")
        if speed_mod.kv_placement(sp, self.device)[0] is not None:
            self.kv_codec = speed_mod.kv_codec(sp)  # compiled once per engine
        self.dit.window_attention = speed_mod.window_attention(sp, getattr(self, "kv_codec", None))
        if sp.vae_compiled:
            speed_mod.compile_vae_decoder(self.vae, sp.compile_backend)
        log.info("video speed path: %s", sp.label)

    # -- shared helpers -----------------------------------------------------------------------------
    def _context(self, prompt: str) -> torch.Tensor:
        t5 = self.text(prompt).to(self.device)
        return self.dit.embed_text(t5)

    def _image_video(self, img: np.ndarray, frames: int) -> torch.Tensor:
        x = torch.from_numpy(np.array(img)).float().div(127.5).sub(1).permute(2, 0, 1)  # [3,H,W]
        return x[None, :, None].expand(1, 3, frames, *x.shape[1:]).contiguous()

    @staticmethod
    def _to_uint8(video: torch.Tensor) -> np.ndarray:  # [1,3,T,H,W] in [-1,1]
        return ((video[0].permute(1, 2, 3, 0).float().clamp(-1, 1) + 1) * 127.5).round().byte().cpu().numpy()

    def _noise(self, seed: int, shape) -> torch.Tensor:
        g = torch.Generator("cpu").manual_seed(seed)  # CPU generator: same noise on every device
        return torch.randn(shape, generator=g).to(self.device, self.dtype)

    def prepare(self, image: np.ndarray, audio16k: np.ndarray, params: GenParams):
        from engine.video.inputs import parse_size
        oh, ow = choose_size(image.shape[0], image.shape[1], parse_size(params.size))
        ref = crop_resize(image, oh, ow)
        hs = self.audio.hidden_states(audio16k)
        feats, clips = self.audio.bucket(hs, params.fps, params.infer_frames)
        if params.num_clip:
            clips = params.num_clip
            need = clips * params.infer_frames
            if feats.shape[-1] < need:
                feats = torch.nn.functional.pad(feats, (0, need - feats.shape[-1]))
        return ref, feats.to(self.device), clips

    def _portrait_encodes(self, ref_img: np.ndarray, prompt: str):
        """Text context and the VAE encodes of the portrait (reference latent; motion latents of the still
        image), cached per (portrait, size, prompt): a returning portrait skips T5 and two VAE encodes
        (part of the time to first frame)."""
        import hashlib
        key = (hashlib.sha1(np.ascontiguousarray(ref_img).tobytes()).hexdigest(), ref_img.shape, prompt)
        hit = self._encodes.get(key)
        if hit is not None:
            self._encodes[key] = self._encodes.pop(key)  # most recent last
            return hit
        cfg = self.dit.config
        context = self._context(prompt)
        # Reference: the single-GPU pipeline encodes the image x5 and keeps the second latent.
        ref_lat = vae_mod.encode(self.vae, self._image_video(ref_img, 5))[:, :, 1:2].to(self.dtype)
        motion = vae_mod.encode(self.vae, self._image_video(ref_img, cfg.motion_frames[0])).to(self.dtype)
        self._encodes[key] = (context, ref_lat, motion)
        while len(self._encodes) > ENCODE_CACHE:
            self._encodes.pop(next(iter(self._encodes)))
        return context, ref_lat, motion

    def warmup(self, size: str = "704*384", seconds: float = 1.0) -> float:
        """Load, compile and run every kernel of a LiveAvatar stream once on a synthetic portrait and tone
        (``--video-warmup`` at server start), so the first request pays none of it. Returns seconds."""
        import time
        t0 = time.perf_counter()
        from engine.video.inputs import parse_size
        parse_size(size)  # a clear error for a bad size
        w, h = (int(v) for v in size.lower().replace("x", "*").split("*"))
        rng = np.random.default_rng(0)
        img = (128 + 40 * rng.standard_normal((h, w, 3))).clip(0, 255).astype(np.uint8)
        t = np.arange(int(16000 * seconds)) / 16000
        audio = (0.2 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
        p = GenParams(size=size, infer_frames=12, num_clip=1)
        # Twice: on an H200 the compiled VAE decoder compiled more graph variants on an engine's SECOND
        # stream (bench/video_warmup_gpu_check.py); a second pass takes those too.
        for _ in range(2):
            for _ in self.stream_liveavatar(img, audio, "", p):
                pass
        self._encodes.clear()
        return time.perf_counter() - t0

    # -- LiveAvatar -----------------------------------------------------------------------------------
    @torch.no_grad()
    def stream_liveavatar(self, image: np.ndarray, audio16k: np.ndarray, prompt: str, p: GenParams,
                          progress=None):
        self.load()
        dit, cfg = self.dit, self.dit.config
        if p.infer_frames % (4 * p.block_frames):
            raise ValueError(f"infer_frames must be a multiple of {4 * p.block_frames} in LiveAvatar mode")
        ref_img, feats, clips = self.prepare(image, audio16k, p)
        audio_frames = int(np.ceil(audio16k.size / 16000 * p.fps))
        oh, ow = ref_img.shape[:2]
        hl, wl = oh // 8, ow // 8
        fsl = (hl // 2) * (wl // 2)
        context, ref_lat, motion = self._portrait_encodes(ref_img, prompt)
        fast = self.speed.enabled
        tkv = TextKV(dit, context) if fast else None  # text K/V once per clip (speed path)

        def prefill(cond: Cond) -> CondCache:
            return prefill_sink(dit, cond, self.dtype, tkv)

        ccache = prefill(Cond(context, ref_lat, motion))
        ts, sig = liveavatar_schedule(p.sample_steps, 3.0)  # LiveAvatar hard-codes shift 3
        euler = EulerFlow(sig, ts)
        lat_per_clip = p.infer_frames // 4
        if fast:
            store, home = speed_mod.kv_placement(self.speed, self.device)
            n_cond = ccache.k[0].shape[1]
            if home is not None:
                from engine.video.offload import check_host_memory
                check_host_memory(p.sample_steps * FastKVCache.host_bytes(
                    cfg.num_layers, 1, lat_per_clip * fsl, n_cond, cfg.num_heads, cfg.head_dim,
                    torch.empty(0, dtype=store or self.dtype).element_size(),
                    store is not None and speed_mod.kv_scales(self.speed) == "token"), "the KV caches")
            if store is not None and getattr(self, "kv_codec", None) is None:
                self.kv_codec = speed_mod.kv_codec(self.speed)  # compiled once per engine
            caches = [FastKVCache(cfg.num_layers, 1, lat_per_clip * fsl, n_cond, cfg.num_heads, cfg.head_dim,
                                  self.dtype, self.device, store, home, self.kv_codec if store else None,
                                  speed_mod.kv_scales(self.speed))
                      for _ in range(p.sample_steps)]
            ccache.bind_all(dit, caches)
        else:
            caches = [BlockKVCache(cfg.num_layers, 1, lat_per_clip * fsl, cfg.num_heads, cfg.head_dim, self.dtype,
                                   self.device) for _ in range(p.sample_steps)]
        rng = random.Random(p.seed)  # LiveAvatar draws δ from an unseeded RNG; seeded here for reproducibility
        dec = vae_mod.StreamingDecoder(self.vae)
        dec.decode(motion[:, :, :min(7, motion.shape[2])])  # warm-up of the causal caches, output discarded
        blocks_per_clip = lat_per_clip // p.block_frames
        fpb = 4 * p.block_frames  # video frames per block
        total_blocks = min(clips * blocks_per_clip, -(-(audio_frames + 3) // fpb))
        out_index, first_latent = 0, None
        sync = torch.cuda.synchronize if str(self.device).startswith("cuda") else (lambda: None)
        graphs_after_first = 0
        for blk in range(total_blocks):
            r, b = divmod(blk, blocks_per_clip)
            if b == 0:
                noise = self._noise(p.seed + r, (1, 16, lat_per_clip, hl, wl))
                if r == 1 and p.rolling_sink and first_latent is not None:
                    # Rolling sink: the first generated latent frame becomes the reference (TPP path).
                    ccache = prefill(Cond(context, first_latent, motion))
                    if fast:
                        ccache.bind_all(dit, caches)
            x = noise[:, :, b * p.block_frames:(b + 1) * p.block_frames]
            n = r * lat_per_clip + b * p.block_frames
            a0 = r * p.infer_frames + b * fpb
            af = feats[..., a0:a0 + fpb]
            t_blk = time.perf_counter()
            for i in range(p.sample_steps):
                t = torch.full((1,), ts[i], device=self.device)
                if fast:
                    v = dit.forward_block_fast(x, t, tkv, af, n, caches[i], ccache, rng.randint(4, 30), self.regions)
                else:
                    v = dit.forward_block(x, t, context, af, n, caches[i], ccache, rng.randint(4, 30))
                x = euler.step(v, i, x)
            if fast and self.regions.active and blk == 0:
                graphs_after_first = self.regions.graphs
            elif fast and self.regions.active and self.regions.graphs != graphs_after_first:
                log.warning("DiT regions recompiled after the first block (%d graphs, %d after block 0)",
                            self.regions.graphs, graphs_after_first)
                graphs_after_first = self.regions.graphs
            if first_latent is None:
                first_latent = x[:, :, :1].clone()
            sync()
            t_dec = time.perf_counter()
            frames = self._to_uint8(dec.decode(x))
            t_end = time.perf_counter()
            cuda = str(self.device).startswith("cuda")
            stats = {"block": blk, "dit_s": t_dec - t_blk, "vae_s": t_end - t_dec,
                     "fps": len(frames) / max(t_end - t_blk, 1e-9),
                     "gpu_mem_bytes": torch.cuda.memory_allocated(self.device) if cuda else 0,
                     "gpu_peak_bytes": torch.cuda.max_memory_allocated(self.device) if cuda else 0}
            log.info("video block %d: DiT %.3f s, VAE %.3f s, %.1f fps, GPU memory %.1f GiB (peak %.1f)", blk,
                     stats["dit_s"], stats["vae_s"], stats["fps"], stats["gpu_mem_bytes"] / 2**30,
                     stats["gpu_peak_bytes"] / 2**30, extra={"video_block": stats})
            drop = 3 if blk == 0 else 0
            frames = frames[drop:]
            audio_idx = np.arange(len(frames)) + blk * fpb + drop
            keep = audio_idx < max(audio_frames, 1)
            frames, audio_idx = frames[keep], audio_idx[keep]
            last = blk == total_blocks - 1
            if progress:
                progress(blk + 1, total_blocks)
            yield VideoChunk(frames, out_index, audio_idx / p.fps, last, stats=stats)
            out_index += len(frames)

    # -- Wan2.2-S2V offline clips -----------------------------------------------------------------------
    @torch.no_grad()
    def stream_s2v(self, image: np.ndarray, audio16k: np.ndarray, prompt: str, p: GenParams, progress=None):
        self.load()
        dit, cfg = self.dit, self.dit.config
        if self.speed.quant == "fp8":
            raise speed_mod.SpeedConfigError("--quant fp8 applies to the LiveAvatar causal mode only; "
                                             "the S2V offline mode runs the bf16 reference path")
        if self.speed.offload != "none" or self.speed.kv_cache != "model" or self.speed.attention != "sdpa":
            raise speed_mod.SpeedConfigError("--offload_dit / --kv_cache fp8 / --attention fa3* apply to the "
                                             "LiveAvatar causal mode only; the S2V offline mode keeps the DiT and "
                                             "its tokens on the GPU and uses SDPA")
        if self.speed.compile or self.speed.fast:
            log.warning("speed path (%s) applies to LiveAvatar mode; S2V runs the reference path", self.speed.label)
        if p.infer_frames % 4:
            raise ValueError("infer_frames must be a multiple of 4")
        ref_img, feats, clips = self.prepare(image, audio16k, p)
        audio_frames = int(np.ceil(audio16k.size / 16000 * p.fps))
        oh, ow = ref_img.shape[:2]
        hl, wl = oh // 8, ow // 8
        mf = cfg.motion_frames[0]
        context = self._context(prompt)
        cfg_on = p.sample_guide_scale > 1
        neg = self._context(p.negative_prompt) if cfg_on else None
        ref_lat = vae_mod.encode(self.vae, self._image_video(ref_img, 1)).to(self.dtype)
        motion_px = torch.zeros(1, 3, mf, oh, ow)
        motion = vae_mod.encode(self.vae, motion_px).to(self.dtype)
        ts, step = make_s2v_solver(p.sample_solver, p.sample_steps, p.sample_shift)
        nf = p.infer_frames // 4
        out_index = 0
        total = clips * len(ts)
        fwd = self.s2v_forward or dit
        for r in range(clips):
            x = self._noise(p.seed + r, (1, 16, nf, hl, wl))
            af = feats[..., r * p.infer_frames:(r + 1) * p.infer_frames]
            cond = Cond(context, ref_lat, motion)
            ucond = Cond(neg, ref_lat, motion) if cfg_on else None
            _, step = make_s2v_solver(p.sample_solver, p.sample_steps, p.sample_shift)
            for i, tv in enumerate(ts):
                t = torch.full((1,), float(tv), device=self.device)
                v = fwd(x, t, cond, af, drop_motion=(r == 0))
                if cfg_on:
                    vu = fwd(x, t, ucond, af * 0, drop_motion=(r == 0))
                    v = vu + p.sample_guide_scale * (v - vu)
                x = step(v, i, x)
                if progress:
                    progress(r * len(ts) + i + 1, total)
            lat = torch.cat([ref_lat if r == 0 else motion, x], dim=2)
            mean, std = vae_mod._stats(self.vae, lat)
            vp = next(self.vae.parameters())
            video = self.vae.decode((lat.float() * std + mean).to(vp.device, vp.dtype)).sample.float()
            video = video[:, :, -p.infer_frames:]
            motion_px = torch.cat([motion_px.to(video.device), video], dim=2)[:, :, -mf:]
            motion = vae_mod.encode(self.vae, motion_px).to(self.dtype)
            frames = self._to_uint8(video)
            drop = 3 if r == 0 else 0
            frames = frames[drop:]
            audio_idx = np.arange(len(frames)) + r * p.infer_frames + drop
            keep = audio_idx < max(audio_frames, 1)
            yield VideoChunk(frames[keep], out_index, audio_idx[keep] / p.fps, r == clips - 1)
            out_index += int(keep.sum())

    def stream(self, image, audio16k, prompt, p: GenParams, progress=None):
        gen = self.stream_liveavatar if p.mode == "liveavatar" else self.stream_s2v
        return gen(image, audio16k, prompt, p, progress)


def estimate_gpu_bytes(h: int, w: int, params: GenParams, offload_model: bool, lora: bool, fp8: bool = False,
                       speed: "speed_mod.SpeedOptions | None" = None) -> int:
    """Rough peak for one GPU (spec sizes): DiT weights + KV caches + activations + T5 + VAE. ``speed``: the memory
    modes (FP8 weights ~16.6 GiB measured; FP8 KV ~half; ``offload`` keeps ~0.6 GB of the DiT plus two layer slots,
    and with ``weights+kv`` one layer's window on the device)."""
    fsl = (h // 16) * (w // 16)
    sp = speed or speed_mod.SpeedOptions()
    fp8 = fp8 or sp.quant == "fp8"
    live = params.mode == "liveavatar"
    offload = sp.offload if live else "none"
    weights = 3e9 if offload != "none" else 16.3e9 * (1.1 if fp8 else 2)
    t5 = 0 if offload_model or offload != "none" else 11.4e9
    if live:
        rows = (params.infer_frames // 4) * fsl + (2.5 * fsl if sp.enabled else 0)  # the speed path holds the sink
        fp8_rows = speed_mod.kv_placement(sp, "cpu")[0] is not None
        kv_bytes = 5120 * ((1 + 4 / 128 if speed_mod.kv_scales(sp) == "token" else 1) if fp8_rows else 2)
        kv = (2 * rows * 2 * 5120 * 2 if offload == "weights+kv" else params.sample_steps * rows * 40 * 2 * kv_bytes)
        tokens = (params.block_frames + 2.5) * fsl
    else:
        kv = 0
        tokens = (params.infer_frames // 4 + 2.5) * fsl
    act = tokens * 13824 * 2 * 4 + tokens * 5120 * 4 * 8
    vae = 2e9 + 3 * h * w * 4 * 4 * 12 * 8
    return int(weights + t5 + kv + act + vae)


def fit_advice(h: int, w: int, params: GenParams, free: int, offload_model: bool, lora: bool,
               speed: "speed_mod.SpeedOptions | None" = None) -> str | None:
    sp = speed or speed_mod.SpeedOptions()
    need = estimate_gpu_bytes(h, w, params, offload_model, lora, speed=sp)
    if need <= free:
        return None
    tips = []
    if not offload_model and sp.offload == "none":
        tips.append("--offload_model (T5 on CPU saves ~11 GB)")
    for size in ("704*384", "512*512", "480*256"):
        a = [int(v) for v in size.split("*")]
        if a[0] * a[1] < h * w and estimate_gpu_bytes(a[1], a[0], params, True, lora, speed=sp) <= free:
            tips.append(f"size {size}")
            break
    if params.infer_frames > 48:
        tips.append("--infer_frames 48")
    if params.mode == "liveavatar":
        if sp.quant != "fp8":
            tips.append("--quant fp8 / AVATAR_VIDEO_QUANT=fp8 (Hopper GPUs: FP8 copies of the big linears, "
                        "~13 GiB less)")
        if sp.kv_cache != "fp8":
            tips.append("--kv_cache fp8 / AVATAR_VIDEO_KV_CACHE=fp8 (half the KV caches)")
        if sp.offload != "weights+kv":
            tips.append("--offload_dit weights+kv / AVATAR_VIDEO_OFFLOAD=weights+kv (DiT and KV caches streamed "
                        "from host memory: 704*384 ran in 5.3 GiB)")
    return (f"{h}x{w} needs about {need / 2**30:.0f} GiB of GPU memory, {free / 2**30:.0f} GiB are free; "
            f"try: {', '.join(tips)}")
