"""``ParallelVideoEngine``: the caller's side of a rank group, with ``VideoEngine``'s interface (check_files,
load, stream), so the CLI and the server's video worker use one or several GPUs the same way.

The group is started on ``load`` (each rank loads its models once) and serves request after request. A rank
that dies, reports an error, or sends nothing for ``stall_timeout_s`` ends the stream with ``RankFailure``;
the whole group is stopped then and started afresh by the next request."""
from __future__ import annotations

import logging
import os
import queue
import time

from engine.video import checkpoints as ck
from engine.video.parallel.group import ParallelConfig, check_devices, make_layout, resolve_port

log = logging.getLogger("engine.video.parallel")
POLL_S = 0.2  # how often the caller looks at its ranks while waiting for frames


class RankFailure(RuntimeError):
    """The rank group failed mid-request (a rank died, hung, or raised); the group was stopped."""


class ParallelVideoEngine:
    def __init__(self, ckpt_dir: str, lora: str | None = None, device: str | None = None, offload_model: bool = False,
                 lora_scale: float | None = None, speed=None, parallel: ParallelConfig | None = None,
                 engine_class: str = "engine.video.pipeline:VideoEngine"):
        self.pc = parallel or ParallelConfig()
        if device:
            self.pc.device = "cuda" if device.startswith("cuda") else device
        self.ckpt_dir, self.lora, self.offload_model = ckpt_dir, lora, offload_model
        self.device = self.pc.device
        self.dit = None  # models live in the ranks
        self._kw = dict(ckpt_dir=ckpt_dir, lora=lora, offload_model=offload_model, lora_scale=lora_scale, speed=speed,
                        engine_class=engine_class)  # the benchmark swaps in random real-size weights
        self.stats: dict[int, dict] = {}  # per rank, after each request: device, peak memory
        self._procs: list = []
        self._results = None
        self._requests: list = []
        self._heads = None

    # -- VideoEngine's interface ----------------------------------------------------------------------
    def check_files(self) -> None:
        ck.require_files(self.ckpt_dir)
        if self.lora:
            ck.find_lora(self.lora)

    def num_heads(self) -> int:
        if self._heads is None:
            from engine.video.config import S2VConfig
            self._heads = S2VConfig.from_json(os.path.join(self.ckpt_dir, "config.json")).num_heads
        return self._heads

    def layout(self, p):
        return make_layout(self.pc, p.sample_steps, self.num_heads(), p.mode)

    def load(self) -> None:
        if self._procs and all(pr.is_alive() for pr in self._procs):
            return
        self.close()
        self.check_files()
        check_devices(self.pc)
        port = resolve_port(self.pc)
        import multiprocessing as mp

        from engine.video.parallel.rank import serve
        ctx = mp.get_context("spawn")
        self._results = ctx.Queue()
        self._requests = [ctx.Queue() for _ in range(self.pc.world_size)]
        self._procs = [ctx.Process(target=serve, name=f"video-rank-{r}", args=(
            r, self.pc, port, self._kw, self._requests[r], self._results, os.getpid()))
            for r in range(self.pc.world_size)]
        for pr in self._procs:
            pr.start()
        log.info("video rank group: %d ranks (%s), rendezvous %s:%d", self.pc.world_size, self.pc.backend,
                 self.pc.master_addr, port)
        ready: set[int] = set()
        deadline = time.monotonic() + self.pc.start_timeout_s
        while len(ready) < self.pc.world_size:
            msg = self._next(deadline, "loading the models")
            if msg[0] == "ready":
                ready.add(msg[1])
            elif msg[0] == "error":
                self._raise_rank_error(msg, "while starting")

    def stream(self, image, audio16k, prompt: str, p, progress=None):
        self.layout(p)  # a clear error before any rank is bothered
        if p.mode == "liveavatar" and p.infer_frames % (4 * p.block_frames):
            raise ValueError(f"infer_frames must be a multiple of {4 * p.block_frames} in LiveAvatar mode")
        if p.infer_frames % 4:
            raise ValueError("infer_frames must be a multiple of 4")
        self.load()
        req = {"image": image, "audio": audio16k, "prompt": prompt, "params": p, "num_heads": self.num_heads()}
        for q in self._requests:
            q.put(req)
        self.stats = {}
        finished = False
        try:
            blocks = 0
            while True:
                msg = self._next(time.monotonic() + self.pc.stall_timeout_s, "generating")
                if msg[0] == "chunk":
                    blocks += 1
                    if progress:
                        progress(blocks, None)
                    yield msg[2]
                elif msg[0] == "stats":
                    self.stats[msg[1]] = msg[2]
                elif msg[0] == "done":
                    # Each rank reports its stats once its share is done; wait for all so the group is idle.
                    while len(self.stats) < self.pc.world_size:
                        m = self._next(time.monotonic() + self.pc.stall_timeout_s, "finishing")
                        if m[0] == "error":
                            self._raise_rank_error(m, "finishing")
                        if m[0] == "stats":
                            self.stats[m[1]] = m[2]
                    finished = True
                    return
                elif msg[0] == "error":
                    self._raise_rank_error(msg, "mid-stream")
        finally:
            if not finished:
                # Cancelled by the consumer or failed: the ranks are mid-request with no way to agree on a
                # stopping point, so the group is stopped; the next request starts a fresh one.
                self.close()

    def close(self) -> None:
        procs, self._procs = self._procs, []
        for q in self._requests:
            try:
                q.put_nowait(None)
                q.cancel_join_thread()  # never block this process's exit on a rank that stopped reading
            except Exception:  # noqa: BLE001 - a broken queue is being dropped anyway
                pass
        for pr in procs:
            pr.join(timeout=0.5 if pr.is_alive() else 0)
        for pr in procs:
            if pr.is_alive():
                pr.kill()  # SIGKILL also ends a stopped (SIGSTOP) or hung rank
        for pr in procs:
            pr.join(timeout=10)
        self._requests = []

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass

    # -- watchdog -----------------------------------------------------------------------------------------
    def _next(self, deadline: float, what: str):
        while True:
            try:
                return self._results.get(timeout=POLL_S)
            except queue.Empty:
                pass
            dead = [(i, pr.exitcode) for i, pr in enumerate(self._procs) if not pr.is_alive()]
            if dead:
                # A rank that failed in Python reports first; give its message a moment to arrive.
                try:
                    msg = self._results.get(timeout=1.0)
                    if msg[0] == "error":
                        self._raise_rank_error(msg, what)
                except queue.Empty:
                    pass
                self.close()
                r, code = dead[0]
                raise RankFailure(f"video rank {r} exited (code {code}) while {what}; the rank group was stopped "
                                  f"and restarts on the next request")
            if time.monotonic() > deadline:
                self.close()
                raise RankFailure(f"video rank group sent nothing for {self.pc.stall_timeout_s:.0f} s while {what} "
                                  f"(a hung rank?); the group was stopped and restarts on the next request")

    def _raise_rank_error(self, msg, what: str):
        _, rank, exc = msg
        # A peer's death usually reaches the survivors first as a broken connection: name the dead rank too.
        dead = [f"rank {i} exited (code {pr.exitcode})" for i, pr in enumerate(self._procs)
                if i != rank and pr.exitcode not in (None, 0)]
        self.close()
        from engine.video.checkpoints import CheckpointError
        if isinstance(exc, (ValueError, CheckpointError, MemoryError)):
            raise exc  # the user's error, as one process would raise it
        raise RankFailure(f"video rank {rank} failed {what}: {type(exc).__name__}: {exc}"
                          + (f" ({'; '.join(dead)})" if dead else "")
                          + "; the rank group was stopped and restarts on the next request") from None
