"""Talking-video generation: Wan2.2-S2V clip mode and LiveAvatar causal streaming mode.

Both yield ``VideoChunk``s as soon as their frames are final (per LiveAvatar block, per S2V
clip), so a caller never holds the whole video: long inputs stream in constant memory
(the seeds' "online decode").
"""
from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from engine.video import checkpoints as ck
from engine.video import vae as vae_mod
from engine.video import speed as speed_mod
from engine.video.dit import BlockKVCache, Cond, CondCache, FastKVCache, TextKV, WanS2VTransformer, make_regions
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


@dataclass
class GenParams:
    mode: str = "liveavatar"  # liveavatar (causal, 4-step, no CFG) | s2v (offline clips, UniPC + CFG)
    size: str = "704*384"
    seed: int = 42
    sample_steps: int = 4
    sample_shift: float = 3.0
    sample_guide_scale: float = 0.0
    sample_solver: str = "euler"
    infer_frames: int = 48
    num_clip: int = 0  # 0 = as many clips as the audio needs
    negative_prompt: str = NEGATIVE_PROMPT
    block_frames: int = 3  # latent frames per LiveAvatar block
    window_blocks: int = 4  # KV ring = current + 3 previous blocks
    rolling_sink: bool = True

    @property
    def fps(self) -> int:
        return 25 if self.mode == "liveavatar" else 16


@dataclass
class VideoChunk:
    frames: np.ndarray  # [n, H, W, 3] uint8
    first_index: int  # index of frames[0] in the output video
    times_s: np.ndarray  # presentation time of each frame on the input audio's clock
    last: bool = False
    warnings: list[str] = field(default_factory=list)


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
        self.check_files()
        self.dit = load_dit(self.ckpt_dir, self.device, self.dtype, rope_max_pos=45000 if self.lora else None)
        if self.lora:
            merge_lora(self.dit, self.lora, scale=self.lora_scale)
        vae_dtype = self.dtype if self.lora else torch.float32  # LiveAvatar runs the VAE in bf16, Wan2.2 in fp32
        self.vae = vae_mod.load_vae(os.path.join(self.ckpt_dir, ck.VAE_FILE), self.device, vae_dtype,
                                    self.component_cfg.get("vae"))
        tdev = "cpu" if self.offload_model else self.device
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
            speed_mod.quantize_dit(self.dit, emulate=sp._fp8_emulate)
        self.regions = make_regions(sp)
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
        context = self._context(prompt)
        # Reference: the single-GPU pipeline encodes the image x5 and keeps the second latent.
        ref_lat = vae_mod.encode(self.vae, self._image_video(ref_img, 5))[:, :, 1:2].to(self.dtype)
        motion = vae_mod.encode(self.vae, self._image_video(ref_img, cfg.motion_frames[0])).to(self.dtype)
        fast = self.speed.enabled
        tkv = TextKV(dit, context) if fast else None  # text K/V once per clip (speed path)

        def prefill(cond: Cond) -> CondCache:
            cc = CondCache(cfg.num_layers, self.dtype)
            if fast:
                dit.prefill_cond_fast(cc, cond, tkv)
            else:
                dit.prefill_cond(cc, cond)
            return cc

        ccache = prefill(Cond(context, ref_lat, motion))
        ts, sig = liveavatar_schedule(p.sample_steps, 3.0)  # shift 3 is hard-coded in the seeds (spec §3.2)
        euler = EulerFlow(sig, ts)
        lat_per_clip = p.infer_frames // 4
        if fast:
            caches = [FastKVCache(cfg.num_layers, 1, lat_per_clip * fsl, ccache.k[0].shape[1], cfg.num_heads,
                                  cfg.head_dim, self.dtype, self.device) for _ in range(p.sample_steps)]
        else:
            caches = [BlockKVCache(cfg.num_layers, 1, lat_per_clip * fsl, cfg.num_heads, cfg.head_dim, self.dtype,
                                   self.device) for _ in range(p.sample_steps)]
        rng = random.Random(p.seed)  # the seeds draw δ from an unseeded RNG; seeded here for reproducibility
        dec = vae_mod.StreamingDecoder(self.vae)
        dec.decode(motion[:, :, :min(7, motion.shape[2])])  # warm-up of the causal caches, output discarded (spec §3.9)
        blocks_per_clip = lat_per_clip // p.block_frames
        fpb = 4 * p.block_frames  # video frames per block
        total_blocks = min(clips * blocks_per_clip, -(-(audio_frames + 3) // fpb))
        out_index, first_latent = 0, None
        graphs_after_first = 0
        for blk in range(total_blocks):
            r, b = divmod(blk, blocks_per_clip)
            if b == 0:
                noise = self._noise(p.seed + r, (1, 16, lat_per_clip, hl, wl))
                if r == 1 and p.rolling_sink and first_latent is not None:
                    # Rolling sink: the first generated latent frame becomes the reference (TPP path).
                    ccache = prefill(Cond(context, first_latent, motion))
            x = noise[:, :, b * p.block_frames:(b + 1) * p.block_frames]
            n = r * lat_per_clip + b * p.block_frames
            a0 = r * p.infer_frames + b * fpb
            af = feats[..., a0:a0 + fpb]
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
            frames = self._to_uint8(dec.decode(x))
            drop = 3 if blk == 0 else 0
            frames = frames[drop:]
            audio_idx = np.arange(len(frames)) + blk * fpb + drop
            keep = audio_idx < max(audio_frames, 1)
            frames, audio_idx = frames[keep], audio_idx[keep]
            last = blk == total_blocks - 1
            if progress:
                progress(blk + 1, total_blocks)
            yield VideoChunk(frames, out_index, audio_idx / p.fps, last)
            out_index += len(frames)

    # -- Wan2.2-S2V offline clips -----------------------------------------------------------------------
    @torch.no_grad()
    def stream_s2v(self, image: np.ndarray, audio16k: np.ndarray, prompt: str, p: GenParams, progress=None):
        self.load()
        dit, cfg = self.dit, self.dit.config
        if self.speed.quant == "fp8":
            raise speed_mod.SpeedConfigError("--quant fp8 applies to the LiveAvatar causal mode only; "
                                             "the S2V offline mode runs the bf16 reference path")
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


def estimate_gpu_bytes(h: int, w: int, params: GenParams, offload_model: bool, lora: bool, fp8: bool = False) -> int:
    """Rough peak for one GPU (spec sizes): DiT weights + KV caches + activations + T5 + VAE."""
    fsl = (h // 16) * (w // 16)
    weights = 16.3e9 * (1 if fp8 else 2)
    t5 = 0 if offload_model else 11.4e9
    if params.mode == "liveavatar":
        kv = params.sample_steps * (params.infer_frames // 4) * fsl * 40 * 2 * 5120 * 2
        tokens = (params.block_frames + 2.5) * fsl
    else:
        kv = 0
        tokens = (params.infer_frames // 4 + 2.5) * fsl
    act = tokens * 13824 * 2 * 4 + tokens * 5120 * 4 * 8
    vae = 2e9 + 3 * h * w * 4 * 4 * 12 * 8
    return int(weights + t5 + kv + act + vae)


def fit_advice(h: int, w: int, params: GenParams, free: int, offload_model: bool, lora: bool) -> str | None:
    need = estimate_gpu_bytes(h, w, params, offload_model, lora)
    if need <= free:
        return None
    tips = []
    if not offload_model:
        tips.append("--offload_model (T5 on CPU saves ~11 GB)")
    for size in ("704*384", "512*512", "480*256"):
        a = [int(v) for v in size.split("*")]
        if a[0] * a[1] < h * w and estimate_gpu_bytes(a[1], a[0], params, True, lora) <= free:
            tips.append(f"size {size}")
            break
    if params.infer_frames > 48:
        tips.append("--infer_frames 48")
    tips.append("--quant fp8 (LiveAvatar, Hopper GPUs: FP8 copies of the big linears, ~15 GB less)")
    return (f"{h}x{w} needs about {need / 2**30:.0f} GiB of GPU memory, {free / 2**30:.0f} GiB are free; "
            f"try: {', '.join(tips)}")
