"""One rank's life: join the group, load what its role needs, then serve requests from the caller's queue
until told to stop. The output rank puts the frames on the shared result queue."""
from __future__ import annotations

import logging
import os
import queue

log = logging.getLogger("engine.video.parallel")


def load_role(eng, vae_only: bool) -> None:
    """DiT ranks load everything (DiT, VAE for the reference latents, text and audio encoders); the VAE rank
    loads only the VAE."""
    if not vae_only:
        eng.load()
        return
    if hasattr(eng, "load_vae_only"):
        eng.load_vae_only()
        return
    import torch

    from engine.video import checkpoints as ck
    from engine.video import vae as vae_mod
    eng.check_files()
    vae_dtype = eng.dtype if eng.lora else torch.float32  # as VideoEngine.load
    eng.vae = vae_mod.load_vae(os.path.join(eng.ckpt_dir, ck.VAE_FILE), eng.device, vae_dtype,
                               eng.component_cfg.get("vae"))


class StageGroups:
    """Sequence-parallel subgroups per layout, made once (every rank creates them in the same order)."""

    def __init__(self):
        self.made: dict[tuple, dict] = {}

    def get(self, lay) -> dict:
        import torch.distributed as dist
        key = (lay.num_gpus_dit, lay.sp)
        if key not in self.made:
            groups = {}
            for s in range(lay.num_gpus_dit // lay.sp):
                ranks = list(range(s * lay.sp, (s + 1) * lay.sp))
                g = dist.new_group(ranks) if lay.sp > 1 else None
                groups[s] = g
            self.made[key] = groups
        return self.made[key]


def run_request(eng, pc, groups: StageGroups, motion_frames: int, req: dict):
    """Yields the request's chunks on the output rank; other ranks yield nothing."""
    import torch.distributed as dist

    from engine.video.parallel.group import make_layout
    from engine.video.parallel.tpp import run_liveavatar
    from engine.video.parallel.ulysses import SeqParallel, forward as sp_forward

    p = req["params"]
    heads = req["num_heads"]
    lay = make_layout(pc, p.sample_steps, heads, p.mode)
    if p.mode == "liveavatar":
        yield from run_liveavatar(eng, lay, groups.get(lay), req["image"], req["audio"], req["prompt"], p,
                                  motion_frames)
        return
    # S2V offline mode: all DiT ranks share each forward (Ulysses); each decodes the clip to re-encode the motion
    # memory, rank 0 hands the frames out.
    sp = SeqParallel(list(range(pc.num_gpus_dit)), None if pc.num_gpus_dit == dist.get_world_size() else
                     groups.get(lay)[0])
    eng.s2v_forward = lambda x, t, cond, af, drop_motion=False: sp_forward(eng.dit, sp, x, t, cond, af,
                                                                          drop_motion=drop_motion)
    try:
        for chunk in eng.stream_s2v(req["image"], req["audio"], req["prompt"], p):
            if dist.get_rank() == 0:
                yield chunk
    finally:
        eng.s2v_forward = None


def serve(rank: int, pc, port: int, eng_kwargs: dict, requests, results, parent_pid: int) -> None:
    """Process entry of one rank (spawned by engine/video/parallel/engine.py)."""
    import torch
    import torch.distributed as dist

    from engine.video.config import S2VConfig
    from engine.video.parallel.group import RankEnv, init_rank, make_layout

    try:
        if pc.device == "cpu":
            torch.set_num_threads(int(os.environ.get("AVATAR_RANK_THREADS", "1")))
        device = init_rank(pc, RankEnv(rank, pc.world_size, rank, pc.master_addr, port))
        kw = dict(eng_kwargs)
        eng = _import(kw.pop("engine_class", "engine.video.pipeline:VideoEngine"))(device=device, **kw)
        load_role(eng, vae_only=pc.enable_vae_parallel and rank == pc.num_gpus_dit)
        motion_frames = (eng.dit.config if eng.dit is not None else
                         S2VConfig.from_json(os.path.join(eng.ckpt_dir, "config.json"))).motion_frames[0]
        groups = StageGroups()
        results.put(("ready", rank, device))
    except BaseException as exc:  # noqa: BLE001 - reported to the caller, which stops the group
        results.put(("error", rank, _portable(exc)))
        return
    while True:
        try:
            req = requests.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return  # the caller is gone
            continue
        if req is None:
            break
        try:
            lay = make_layout(pc, req["params"].sample_steps, req["num_heads"], req["params"].mode)
            out_rank = lay.output_rank if req["params"].mode == "liveavatar" else 0
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            for chunk in run_request(eng, pc, groups, motion_frames, req):
                results.put(("chunk", rank, chunk))
            stats = {"device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
                     "role": "vae" if rank == pc.num_gpus_dit else "dit",
                     "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None}
            results.put(("stats", rank, stats))
            if rank == out_rank:
                results.put(("done", rank, None))
        except BaseException as exc:  # noqa: BLE001 - a failed collective leaves the group unusable: exit
            results.put(("error", rank, _portable(exc)))
            return
    try:
        dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - shutting down anyway
        pass


def _import(path: str):
    import importlib
    mod, _, name = path.partition(":")
    return getattr(importlib.import_module(mod), name)


def _portable(exc: BaseException):
    """The exception itself when it survives pickling (the caller re-raises user errors as they are)."""
    import pickle
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")
