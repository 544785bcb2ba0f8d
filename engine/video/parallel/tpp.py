"""Timestep-pipeline parallel (TPP) for the LiveAvatar causal mode, run by every rank of a group.

Stage s owns the denoising steps i with i % stages == s and their KV rings (they never leave its GPU). A
block's latents travel stage to stage: while stage i runs step i of block k, stage i-1 already runs step i-1
of block k+1. With more steps than stages the block cycles round the stages again; with more GPUs than
steps each stage is a sequence-parallel group (engine/video/parallel/ulysses.py). The final latents go to
the output rank, which decodes them (the VAE rank with --enable_vae_parallel, else the last step's stage).

Every rank runs its tasks (block, step) in one global order, so blocking receives never deadlock. NCCL
matches point-to-point messages between two ranks by order only (tags are ignored), so receivers replay
the sender's message order (``Mailbox``) instead of relying on tags.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from engine.video import vae as vae_mod
from engine.video.dit import BlockKVCache, Cond, CondCache, FastKVCache, TextKV, prefill_sink
from engine.video.inputs import choose_size, crop_resize, parse_size
from engine.video.parallel.group import Layout
from engine.video.parallel.ulysses import SeqParallel, forward_block as sp_forward_block
from engine.video.pipeline import VideoChunk
from engine.video.schedulers import EulerFlow, liveavatar_schedule


def task_order(total_blocks: int, steps: int, stages: int, in_flight: int) -> list[tuple[int, int]]:
    """All (block, step) tasks in the one order every rank follows: blocks in groups of ``in_flight``; within
    a group, round by round (a round = one pass over the stages), block by block, step by step. Each task's
    inputs (the previous step of its block, the previous block of its step) come earlier in this order."""
    rounds = steps // stages
    out = []
    for g0 in range(0, total_blocks, in_flight):
        for r in range(rounds):
            for blk in range(g0, min(g0 + in_flight, total_blocks)):
                out += [(blk, r * stages + s) for s in range(stages)]
    return out


@dataclass(frozen=True)
class Msg:
    kind: str  # "x": latents for the next step; "sink": block 0's first final latent; "out": final latents
    blk: int
    src: int
    dst: int
    step: int = -1  # "x": the step that receives it (a block crosses the same pair once per round)


class Plan:
    """Every message of a request, in send order, derived from the task order (the same on every rank)."""

    def __init__(self, lay: Layout, total_blocks: int, blocks_per_clip: int, rolling: bool):
        self.lay = lay
        self.needs_sink = rolling and total_blocks > blocks_per_clip
        # Block ``blocks_per_clip`` (first of clip 1) needs block 0's final latent: it must not share block 0's
        # group of in-flight blocks, or a stage would wait on itself.
        in_flight = min(lay.stages, blocks_per_clip) if self.needs_sink else lay.stages
        self.tasks = task_order(total_blocks, lay.steps, lay.stages, max(1, in_flight))
        self.sent: dict[int, list[Msg]] = {}
        for blk, i in self.tasks:
            s = lay.stage_of_step(i)
            src = lay.leader(s)
            if i < lay.steps - 1:
                nxt = lay.stage_of_step(i + 1)
                if nxt != s:
                    self._add(Msg("x", blk, src, lay.leader(nxt), i + 1))
                continue
            if blk == 0 and self.needs_sink:
                for r in range(lay.num_gpus_dit):
                    if lay.stage_of_rank(r) != s:
                        self._add(Msg("sink", 0, src, r))
            if lay.output_rank != src:
                self._add(Msg("out", blk, src, lay.output_rank))

    def _add(self, m: Msg) -> None:
        self.sent.setdefault(m.src, []).append(m)

    def expected_from(self, src: int, dst: int) -> list[Msg]:
        return [m for m in self.sent.get(src, []) if m.dst == dst]


class Mailbox:
    """Receives a pair's messages strictly in the sender's order, keeping early ones until asked for."""

    def __init__(self, plan: Plan, me: int, shapes: dict, dtype, device):
        self.plan, self.me, self.shapes, self.dtype, self.device = plan, me, shapes, dtype, device
        self.queue: dict[int, list[Msg]] = {}
        self.kept: dict[Msg, torch.Tensor] = {}
        self.pending: list = []  # isend handles and their tensors (kept alive until sent)

    def recv(self, m: Msg) -> torch.Tensor:
        q = self.queue.setdefault(m.src, self.plan.expected_from(m.src, self.me))
        while m not in self.kept:
            nxt = q.pop(0)
            buf = torch.empty(self.shapes[nxt.kind], dtype=self.dtype, device=self.device)
            dist.recv(buf, src=nxt.src)
            self.kept[nxt] = buf
        return self.kept.pop(m)

    def send(self, m: Msg, x: torch.Tensor) -> None:
        x = x.contiguous()
        self.pending.append((dist.isend(x, dst=m.dst), x))
        # Drop finished sends (their tensors go with them). Never wait here: a receiver may take a message only
        # much later (the rolling-sink latent), and blocking on it could stall the pipeline behind it.
        self.pending = [(h, t) for h, t in self.pending if not h.is_completed()]

    def flush(self) -> None:
        for h, _ in self.pending:
            h.wait()
        self.pending.clear()


class Emitter:
    """The output rank's half of ``VideoEngine.stream_liveavatar``: streaming VAE decode, the 3 dropped first
    frames, the audio-length cut, time codes."""

    def __init__(self, eng, motion, p, audio_frames: int, total_blocks: int):
        self.eng, self.p, self.audio_frames, self.total = eng, p, audio_frames, total_blocks
        self.dec = vae_mod.StreamingDecoder(eng.vae)
        self.dec.decode(motion[:, :, :min(7, motion.shape[2])])  # warm-up of the causal caches (output dropped)
        self.out_index = 0

    def chunk(self, blk: int, x: torch.Tensor) -> VideoChunk:
        fpb = 4 * self.p.block_frames
        frames = self.eng._to_uint8(self.dec.decode(x))
        drop = 3 if blk == 0 else 0
        frames = frames[drop:]
        audio_idx = np.arange(len(frames)) + blk * fpb + drop
        keep = audio_idx < max(self.audio_frames, 1)
        frames, audio_idx = frames[keep], audio_idx[keep]
        c = VideoChunk(frames, self.out_index, audio_idx / self.p.fps, blk == self.total - 1)
        self.out_index += len(frames)
        return c


def reference_latents(eng, image: np.ndarray, p, motion_frames: int):
    """(ref image, ref latent, motion latents) exactly as the one-process pipeline makes them."""
    oh, ow = choose_size(image.shape[0], image.shape[1], parse_size(p.size))
    ref_img = crop_resize(image, oh, ow)
    ref_lat = vae_mod.encode(eng.vae, eng._image_video(ref_img, 5))[:, :, 1:2].to(eng.dtype)
    motion = vae_mod.encode(eng.vae, eng._image_video(ref_img, motion_frames)).to(eng.dtype)
    return ref_img, ref_lat, motion


@torch.no_grad()
def run_liveavatar(eng, lay: Layout, groups: dict, image: np.ndarray, audio16k: np.ndarray, prompt: str, p,
                   motion_frames: int, progress=None):
    """This rank's share of one LiveAvatar request; yields ``VideoChunk``s on the output rank only.
    ``groups[stage]`` is the sequence-parallel process group of each stage (None when a stage has one rank)."""
    me = dist.get_rank()
    if p.infer_frames % (4 * p.block_frames):
        raise ValueError(f"infer_frames must be a multiple of {4 * p.block_frames} in LiveAvatar mode")
    stage = lay.stage_of_rank(me)
    audio_frames = int(np.ceil(audio16k.size / 16000 * p.fps))
    lat_per_clip = p.infer_frames // 4
    bpc = lat_per_clip // p.block_frames
    fpb = 4 * p.block_frames
    ref_img, ref_lat, motion = reference_latents(eng, image, p, motion_frames)
    hl, wl = ref_img.shape[0] // 8, ref_img.shape[1] // 8
    # The block count needs the audio features (wav2vec2 runs on the DiT ranks): rank 0 tells everyone.
    box = [None]
    if stage is not None:
        _, feats, clips = eng.prepare(image, audio16k, p)
        box = [min(clips * bpc, -(-(audio_frames + 3) // fpb))]
    dist.broadcast_object_list(box, src=0)
    total_blocks = box[0]
    plan = Plan(lay, total_blocks, bpc, p.rolling_sink)
    shapes = {"x": (1, 16, p.block_frames, hl, wl), "out": (1, 16, p.block_frames, hl, wl),
              "sink": (1, 16, 1, hl, wl)}
    device = torch.device(eng.device)
    box_ = Mailbox(plan, me, shapes, eng.dtype, device)
    if stage is None:  # the VAE rank: decode what the last stage sends, in block order
        emit = Emitter(eng, motion, p, audio_frames, total_blocks)
        src = lay.leader(lay.final_stage)
        for blk in range(total_blocks):
            yield emit.chunk(blk, box_.recv(Msg("out", blk, src, me)))
            if progress:
                progress(blk + 1, total_blocks)
        return
    yield from _dit_stage(eng, lay, plan, box_, groups, stage, me, feats, ref_lat, motion, prompt, p,
                          total_blocks, audio_frames, (hl, wl), progress)


def _dit_stage(eng, lay, plan, box, groups, stage, me, feats, ref_lat, motion, prompt, p, total_blocks,
               audio_frames, hw, progress):
    dit, cfg = eng.dit, eng.dit.config
    hl, wl = hw
    fsl = (hl // 2) * (wl // 2)
    sp = SeqParallel(lay.stage_ranks(stage), groups.get(stage)) if lay.sp > 1 else None
    fast = eng.speed.enabled and sp is None  # the speed path's cache layout is one-rank-per-step only
    context = eng._context(prompt)
    tkv = TextKV(dit, context) if fast else None

    def prefill(cond: Cond) -> CondCache:
        return prefill_sink(dit, cond, eng.dtype, tkv)

    sinks = {0: prefill(Cond(context, ref_lat, motion))}
    ts, sig = liveavatar_schedule(p.sample_steps, 3.0)
    euler = EulerFlow(sig, ts)
    lat_per_clip = p.infer_frames // 4
    bpc = lat_per_clip // p.block_frames
    fpb = 4 * p.block_frames
    heads = cfg.num_heads // lay.sp
    mine = lay.steps_of(stage)
    if fast:
        caches = {i: FastKVCache(cfg.num_layers, 1, lat_per_clip * fsl, sinks[0].k[0].shape[1], cfg.num_heads,
                                 cfg.head_dim, eng.dtype, eng.device) for i in mine}
    else:
        caches = {i: BlockKVCache(cfg.num_layers, 1, lat_per_clip * fsl, heads, cfg.head_dim, eng.dtype, eng.device)
                  for i in mine}
    # δ draws in the one-process order (block by block, step by step), so every stage uses the same values.
    rng = random.Random(p.seed)
    deltas = [[rng.randint(4, 30) for _ in range(p.sample_steps)] for _ in range(total_blocks)]
    leader = lay.leader(stage)
    final = lay.final_stage
    noise: dict[int, torch.Tensor] = {}
    held: dict[tuple[int, int], torch.Tensor] = {}  # latents handed between two steps of this stage
    emit = Emitter(eng, motion, p, audio_frames, total_blocks) if lay.output_rank == me else None
    first_latent = None
    done = 0
    for blk, i in plan.tasks:
        if lay.stage_of_step(i) != stage:
            continue
        clip, b = divmod(blk, bpc)
        if i == 0:
            if clip not in noise:
                noise.clear()
                noise[clip] = eng._noise(p.seed + clip, (1, 16, lat_per_clip, hl, wl))
            x = noise[clip][:, :, b * p.block_frames:(b + 1) * p.block_frames]
        elif lay.stage_of_step(i - 1) == stage:
            x = held.pop((blk, i))
        else:
            x = box.recv(Msg("x", blk, lay.leader(lay.stage_of_step(i - 1)), leader, i)) if me == leader else \
                torch.empty((1, 16, p.block_frames, hl, wl), dtype=eng.dtype, device=eng.device)
            if sp is not None:
                sp.broadcast(x)
        if clip >= 1 and plan.needs_sink and 1 not in sinks:
            if first_latent is None:
                first_latent = box.recv(Msg("sink", 0, lay.leader(final), me))
            sinks[1] = prefill(Cond(context, first_latent, motion))  # rolling sink (one-process: at clip 1)
        cc = sinks[1] if (clip >= 1 and plan.needs_sink) else sinks[0]
        n = clip * lat_per_clip + b * p.block_frames
        a0 = clip * p.infer_frames + b * fpb
        af = feats[..., a0:a0 + fpb]
        t = torch.full((1,), ts[i], device=eng.device)
        if sp is not None:
            v = sp_forward_block(dit, sp, x, t, context, af, n, caches[i], cc, deltas[blk][i])
        elif fast:
            v = dit.forward_block_fast(x, t, tkv, af, n, caches[i], cc, deltas[blk][i], eng.regions)
        else:
            v = dit.forward_block(x, t, context, af, n, caches[i], cc, deltas[blk][i])
        x = euler.step(v, i, x)
        if i < p.sample_steps - 1:
            nxt = lay.stage_of_step(i + 1)
            if nxt == stage:
                held[(blk, i + 1)] = x
            elif me == leader:
                box.send(Msg("x", blk, me, lay.leader(nxt), i + 1), x)
            continue
        if blk == 0 and plan.needs_sink:
            first_latent = x[:, :, :1].clone()
            if me == leader:
                for m in plan.sent.get(me, []):
                    if m.kind == "sink":
                        box.send(m, first_latent)
        if emit is not None:
            yield emit.chunk(blk, x)
            done += 1
            if progress:
                progress(done, total_blocks)
        elif me == leader:
            box.send(Msg("out", blk, me, lay.output_rank), x)
    box.flush()
