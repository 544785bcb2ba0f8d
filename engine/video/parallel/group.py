"""Process-group setup: the layout checks, ports, NCCL/gloo environment and timeouts, one rank's init.

Ranks read torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so the same rank
code runs under our own launcher (engine/video/parallel/launch.py) or under torchrun."""
from __future__ import annotations

import datetime
import errno
import os
import socket
from dataclasses import dataclass


class ParallelConfigError(ValueError):
    """A multi-rank request that cannot run as asked (names the knob and the fix)."""


@dataclass
class ParallelConfig:
    num_gpus_dit: int = 1  # ranks that run the DiT (LiveAvatar's --num_gpus_dit)
    ulysses_size: int = 0  # ranks per sequence-parallel group; 0 = auto (num_gpus_dit // steps when GPUs > steps)
    enable_vae_parallel: bool = False  # one extra rank decodes the VAE (LiveAvatar's --enable_vae_parallel)
    device: str = "cuda"  # cuda (NCCL, one GPU per rank) | cpu (gloo; N CPU processes, for tests only)
    master_addr: str = "127.0.0.1"
    master_port: int = 0  # 0 = pick a free port
    timeout_s: float = 120.0  # collective / point-to-point timeout inside the group
    stall_timeout_s: float = 600.0  # the caller's watchdog: no frames for this long = a hung rank
    start_timeout_s: float = 900.0  # ranks must load their models within this
    nccl_debug: bool = False

    @property
    def world_size(self) -> int:
        return self.num_gpus_dit + (1 if self.enable_vae_parallel else 0)

    @property
    def backend(self) -> str:
        return "nccl" if self.device.startswith("cuda") else "gloo"


@dataclass(frozen=True)
class Layout:
    """Who does what for one request. Ranks 0..num_gpus_dit-1 run the DiT in ``stages`` stages of ``sp`` ranks
    (stage s = ranks s*sp .. s*sp+sp-1); step i runs on stage i % stages; the VAE rank (if any) is the last."""
    num_gpus_dit: int
    sp: int
    stages: int
    steps: int
    vae_rank: int | None

    def stage_ranks(self, s: int) -> list[int]:
        return list(range(s * self.sp, (s + 1) * self.sp))

    def stage_of_rank(self, rank: int) -> int | None:
        return rank // self.sp if rank < self.num_gpus_dit else None

    def stage_of_step(self, i: int) -> int:
        return i % self.stages

    def steps_of(self, stage: int) -> list[int]:
        return [i for i in range(self.steps) if i % self.stages == stage]

    def leader(self, stage: int) -> int:
        return stage * self.sp

    @property
    def final_stage(self) -> int:
        return self.stage_of_step(self.steps - 1)

    @property
    def output_rank(self) -> int:
        """The rank that decodes and hands frames out: the VAE rank, else the leader of the last step's stage."""
        return self.vae_rank if self.vae_rank is not None else self.leader(self.final_stage)


def make_layout(pc: ParallelConfig, steps: int, num_heads: int, mode: str = "liveavatar") -> Layout:
    """Checks the split and returns the layout; every refusal names the knob and a split that works."""
    n, u = pc.num_gpus_dit, pc.ulysses_size
    if n < 1:
        raise ParallelConfigError(f"--num_gpus_dit must be >= 1, got {n}")
    if u < 0:
        raise ParallelConfigError(f"--ulysses_size must be >= 0 (0 = automatic), got {u}")
    if mode != "liveavatar":
        # S2V offline mode: every DiT rank shares every step (sequence parallel over all of them).
        if u and u != n:
            raise ParallelConfigError(f"S2V mode runs sequence parallel over all {n} DiT ranks: --ulysses_size "
                                      f"must be {n} or left out, got {u}")
        if pc.enable_vae_parallel:
            raise ParallelConfigError("--enable_vae_parallel applies to the LiveAvatar mode (the S2V mode decodes "
                                      "each clip on every rank to re-encode its motion memory)")
        u = n
        stages = 1
    else:
        if steps < 1:
            raise ParallelConfigError(f"--sample_steps must be >= 1, got {steps}")
        if u == 0:
            u = n // steps if n > steps else 1
            if n > steps and n % steps:
                raise ParallelConfigError(
                    f"--num_gpus_dit {n} does not split evenly over {steps} denoising steps (more GPUs than steps "
                    f"run sequence parallel inside each step): use {steps}, {2 * steps} or {4 * steps} GPUs, or "
                    f"set --ulysses_size to a divisor of {n}")
        if n % u:
            raise ParallelConfigError(f"--ulysses_size {u} does not divide --num_gpus_dit {n}")
        stages = n // u
        if stages > steps:
            raise ParallelConfigError(f"{stages} pipeline stages (--num_gpus_dit {n} / --ulysses_size {u}) is more "
                                      f"than the {steps} denoising steps; use --ulysses_size {max(1, n // steps)} "
                                      f"or fewer GPUs")
        if steps % stages:
            ok = ", ".join(str(d) for d in range(1, steps + 1) if steps % d == 0)
            raise ParallelConfigError(f"{steps} denoising steps do not split evenly over {stages} pipeline stages "
                                      f"(steps cycle over the stages): use {ok} stages (--num_gpus_dit / "
                                      f"--ulysses_size), or --sample_steps {stages * max(1, round(steps / stages))}")
    if num_heads % u:
        raise ParallelConfigError(f"sequence parallel splits the {num_heads} attention heads over {u} ranks: "
                                  f"--ulysses_size (or GPUs per step) must divide {num_heads}")
    vae = n if pc.enable_vae_parallel else None
    return Layout(n, u, stages, steps if mode == "liveavatar" else 1, vae)


# -- devices ------------------------------------------------------------------------------------------

def check_devices(pc: ParallelConfig, visible: list[str] | None = None) -> None:
    """On CUDA: enough visible GPUs, all of one type. ``visible`` (device names) is for tests; None = ask torch."""
    if not pc.device.startswith("cuda"):
        if pc.device != "cpu":
            raise ParallelConfigError(f"--device must be cuda or cpu for several ranks, got {pc.device!r}")
        return
    if visible is None:
        import torch
        visible = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
            if torch.cuda.is_available() else []
    need = pc.world_size
    if need > len(visible):
        cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
        what = f" (CUDA_VISIBLE_DEVICES={cvd})" if cvd is not None else ""
        extra = " + 1 VAE rank (--enable_vae_parallel)" if pc.enable_vae_parallel else ""
        raise ParallelConfigError(f"--num_gpus_dit {pc.num_gpus_dit}{extra} needs {need} GPUs, {len(visible)} "
                                  f"visible{what}; lower --num_gpus_dit, or run the CPU test mode with --device cpu")
    kinds = sorted(set(visible[:need]))
    if len(kinds) > 1 and os.environ.get("AVATAR_ALLOW_MIXED_GPUS") != "1":
        raise ParallelConfigError(f"the {need} GPUs are of mixed types ({', '.join(kinds)}): the pipeline runs at "
                                  f"the pace of the slowest and NCCL P2P may not work between them; set "
                                  f"CUDA_VISIBLE_DEVICES to GPUs of one type (or AVATAR_ALLOW_MIXED_GPUS=1)")


# -- ports --------------------------------------------------------------------------------------------

def free_port(addr: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def check_port(addr: str, port: int) -> None:
    """The rendezvous port must be free on this host (rank 0 listens on it)."""
    if not 0 < port < 65536:
        raise ParallelConfigError(f"--master_port must be 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ParallelConfigError(f"--master_port {port} is already in use on {addr} (another group or "
                                          f"program listens there): pick another port, or leave --master_port out "
                                          f"to use a free one") from None
            raise ParallelConfigError(f"cannot listen on {addr}:{port} for the rank rendezvous: {exc}") from None


def resolve_port(pc: ParallelConfig) -> int:
    if pc.master_port:
        check_port(pc.master_addr, pc.master_port)
        return pc.master_port
    return free_port(pc.master_addr)


# -- one rank -------------------------------------------------------------------------------------------

def nccl_environment(debug: bool = False) -> dict:
    """NCCL settings every rank gets unless the user set them: errors surface as exceptions (so a dead peer
    ends the wait instead of hanging), debug logs on request. NCCL_P2P_DISABLE / NCCL_SOCKET_IFNAME /
    NCCL_IB_DISABLE are the user's (docs/multi_gpu.md) and passed through untouched."""
    env = {"TORCH_NCCL_ASYNC_ERROR_HANDLING": "1", "TORCH_NCCL_DUMP_ON_TIMEOUT": "0"}
    if debug:
        env.update(NCCL_DEBUG="INFO", NCCL_DEBUG_SUBSYS="INIT,P2P,NET", TORCH_DISTRIBUTED_DEBUG="DETAIL")
    return {k: v for k, v in env.items() if k not in os.environ}


@dataclass
class RankEnv:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int

    @classmethod
    def from_env(cls) -> "RankEnv":
        try:
            return cls(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
                       int(os.environ.get("LOCAL_RANK", os.environ["RANK"])),
                       os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ["MASTER_PORT"]))
        except KeyError as exc:
            raise ParallelConfigError(f"rank environment lacks {exc.args[0]} (set by torchrun or our launcher)") \
                from None

    def export(self) -> None:
        os.environ.update(RANK=str(self.rank), WORLD_SIZE=str(self.world_size), LOCAL_RANK=str(self.local_rank),
                          MASTER_ADDR=self.master_addr, MASTER_PORT=str(self.master_port))


def init_rank(pc: ParallelConfig, env: RankEnv) -> str:
    """Joins the group (env:// rendezvous, the group timeout on every collective); returns this rank's device."""
    import torch
    import torch.distributed as dist

    env.export()
    if pc.backend == "nccl":
        os.environ.update(nccl_environment(pc.nccl_debug))
        torch.cuda.set_device(env.local_rank)
        device = f"cuda:{env.local_rank}"
    else:
        device = "cpu"
    kw = {"device_id": torch.device(device)} if pc.backend == "nccl" else {}
    dist.init_process_group(pc.backend, init_method="env://", rank=env.rank, world_size=env.world_size,
                            timeout=datetime.timedelta(seconds=pc.timeout_s), **kw)
    return device
