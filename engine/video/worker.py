"""The video engine worker: one process, one GPU, one ZeroMQ DEALER (same wire format as
engine.worker.protocol). Generation runs in a thread so the main loop keeps heartbeats flowing
during minutes-long model loads and DiT steps; the main thread alone touches the socket.

server -> worker: CLIP (a VideoSpec + image + audio bytes), NEXT (credit for one more block),
CLOSE (cancel: the generation stops at its next block boundary), STOP.
worker -> server: READY, OPENED, FRAMES (protocol.FrameBlock with the encoded images), DONE, ERROR, BEAT.
Frames are JPEG/RGB-encoded in the worker so the server only forwards bytes. The socket, READY and heartbeats
are the expression worker's (engine/worker/link.py); the worker is started with one VideoWorkerConfig.
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import queue
import threading
import time
import traceback

import numpy as np
import zmq

from engine.logjson import setup_logging
from engine.worker import protocol as p
from engine.worker.link import WorkerLink
from engine.worker.specs import Done, EngineInfo, ErrorReply, Opened, VideoInfoSpec, VideoSpec, VideoWorkerConfig, WorkerInfo

log = logging.getLogger("engine.video.worker")
AHEAD = 2  # blocks a generation may run ahead of the client
AUDIO_RATE = 16000  # the generation's audio clock (the audio encoder's rate): frame times are on it


def encode_frames(frames: np.ndarray, encoding: str, quality: int) -> list[bytes]:
    if encoding == "rgb":
        return [np.ascontiguousarray(f).tobytes() for f in frames]
    from PIL import Image
    out = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


class Job:
    def __init__(self, sid: int, spec: VideoSpec, payload: bytes):
        self.sid, self.spec, self.payload = sid, spec, payload
        self.credit = threading.Semaphore(AHEAD)
        self.cancelled = False


class VideoWorker:
    def __init__(self, endpoint: str, identity: bytes, config: VideoWorkerConfig):
        self.link = WorkerLink(endpoint, identity)
        self.sock = self.link.sock
        self.ckpt_dir, self.lora, self.device = config.ckpt_dir, config.lora or None, config.device or None
        self.engine = None
        self.parallel = parallel_config(config)  # engine.video.parallel.group.ParallelConfig: a rank group
        self.face_model = config.face_landmarker  # the portrait check's face_landmarker.task; empty = look it up
        self.jobs: dict[int, Job] = {}
        self.todo: queue.Queue[Job | None] = queue.Queue()
        self.out: queue.Queue[bytes] = queue.Queue()
        if config.warmup:  # first job of the generation thread: requests queue behind it, none pays the compile
            self.todo.put(WARMUP + config.warmup)
        threading.Thread(target=self._generate_loop, daemon=True).start()

    def info(self) -> WorkerInfo:
        mode = "liveavatar" if self.lora else "s2v"
        return WorkerInfo(pid=os.getpid(), engines=[EngineInfo(
            name=f"wan2.2-s2v-14b{'+liveavatar' if self.lora else ''}", kind="video",
            description=f"talking-video DiT ({mode} mode by default), checkpoints {self.ckpt_dir}",
            is_default=True, lookahead_s=0.0)])

    def run(self) -> None:
        from engine.video.checkpoints import missing_files
        miss = missing_files(self.ckpt_dir)
        if miss:  # serve anyway: requests get the same message (FAILED_PRECONDITION) until the files arrive
            log.warning("video checkpoint directory is incomplete", extra={"dir": self.ckpt_dir, "missing": miss})
        self.link.ready(self.info())
        while True:
            if self.sock.poll(50):
                while True:
                    try:
                        msg = self.sock.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if msg[:1] == p.STOP:
                        self.todo.put(None)
                        return
                    self.handle(msg)
            while True:
                try:
                    self.sock.send(self.out.get_nowait())
                except queue.Empty:
                    break
            now = time.monotonic()
            if self.link.beat_due(now) and not self.link.beat(now):
                return

    def handle(self, msg: bytes) -> None:
        kind, sid, seq, body = p.unpack(msg)
        if kind == p.CLIP:
            spec, payload = p.unpack_clip(body, VideoSpec)
            job = self.jobs[sid] = Job(sid, spec, payload)
            self.todo.put(job)
        elif kind == p.NEXT:
            job = self.jobs.get(sid)
            if job:
                job.credit.release()
        elif kind == p.CLOSE:
            job = self.jobs.pop(sid, None)
            if job:
                job.cancelled = True
                job.credit.release()

    # -- generation thread --------------------------------------------------------------------------
    def _send(self, kind: bytes, sid: int, body: bytes = b"") -> None:
        self.out.put(p.pack(kind, sid, 0, body))

    def _error(self, sid: int, code: str, message: str) -> None:
        self._send(p.ERROR, sid, ErrorReply(code=code, message=message).to_json())

    def _generate_loop(self) -> None:
        while True:
            job = self.todo.get()
            if job is None:
                return
            if isinstance(job, str):
                self._warmup(job[len(WARMUP):])
                continue
            if job.cancelled:
                continue
            try:
                self._generate(job)
            except Exception as exc:  # one bad request must not take the worker down
                self._error(job.sid, *classify(exc))
                if classify(exc)[0] == "INTERNAL":
                    log.error("video stream %d failed: %s", job.sid, traceback.format_exc())
            finally:
                self.jobs.pop(job.sid, None)
                _free_gpu_cache()

    def _warmup(self, size: str) -> None:
        from engine.video.pipeline import VideoEngine
        t0 = time.monotonic()
        try:
            if self.engine is None:
                self.engine = VideoEngine(self.ckpt_dir, lora=self.lora, device=self.device)
            self.engine.load()
            if self.lora:  # the streaming mode is the one with compiled regions and a first-frame deadline
                self.engine.warmup(size)
            log.info("video warm-up done in %.1f s (size %s)", time.monotonic() - t0, size)
        except Exception as exc:  # a failed warm-up leaves the worker serving; the first request retries
            log.warning("video warm-up failed after %.1f s: %s: %s", time.monotonic() - t0, type(exc).__name__, exc)
            _free_gpu_cache()

    def _generate(self, job: Job) -> None:
        import torch

        from engine.video.inputs import check_image, choose_size, decode_image, load_audio, parse_size
        from engine.video.pipeline import VideoEngine, fit_advice

        spec = job.spec
        t0 = time.monotonic()
        img = decode_image(job.payload[:spec.image_bytes])
        warnings = check_image(img, self.face_model)
        audio, aw = load_audio(job.payload[spec.image_bytes:], spec.max_audio_seconds)
        warnings += aw
        if self.engine is None and self.parallel is not None:
            from engine.video.parallel.engine import ParallelVideoEngine
            self.engine = ParallelVideoEngine(self.ckpt_dir, lora=self.lora, device=self.device, parallel=self.parallel)
        if self.engine is None:
            self.engine = VideoEngine(self.ckpt_dir, lora=self.lora, device=self.device)
        eng = self.engine
        eng.check_files()
        mode = spec.model or ("liveavatar" if self.lora else "s2v")
        if mode == "liveavatar" and not self.lora:
            raise ValueError("model LIVEAVATAR needs the LiveAvatar LoRA: start the server with --video-lora "
                             "PATH (fetch: avatar-bridge models fetch liveavatar), or ask for VIDEO_MODEL_S2V")
        params = make_params(mode, spec)
        oh, ow = choose_size(img.shape[0], img.shape[1], parse_size(params.size))
        if self.parallel is not None:
            eng.layout(params)  # an uneven split is the request's error, before the group is bothered
        elif str(eng.device).startswith("cuda"):
            free = torch.cuda.mem_get_info()[0] + (torch.cuda.memory_allocated() if eng.dit is not None else 0)
            advice = fit_advice(oh, ow, params, free, eng.offload_model, bool(self.lora), eng.speed)
            if advice:
                raise MemoryError(advice)
        eng.load()  # lazy: the first request pays for it
        fps = params.fps
        expected = max(0, int(np.ceil(audio.size / 16000 * fps)) - 3)
        self._send(p.OPENED, job.sid, Opened(engine=mode, warnings=warnings, video=VideoInfoSpec(
            width=ow, height=oh, fps=float(fps), frame_count=expected)).to_json())
        sent = 0
        ttff = None
        for chunk in eng.stream(img, audio, spec.prompt, params):
            job.credit.acquire()
            if job.cancelled:
                log.info("video stream %d cancelled after %d frames", job.sid, sent)
                return
            data = encode_frames(chunk.frames, spec.encoding, spec.jpeg_quality)
            if ttff is None and len(data):
                ttff = time.monotonic() - t0
            self._send(p.FRAMES, job.sid, p.pack_frames(video_block(chunk, data, audio.size / AUDIO_RATE)))
            sent += len(data)
        self._send(p.DONE, job.sid, Done(audio_seconds=audio.size / AUDIO_RATE, frames=sent,
                                         generation_seconds=time.monotonic() - t0, warnings=warnings,
                                         ttff_s=ttff).to_json())


WARMUP = "warmup:"


def _free_gpu_cache() -> None:
    """After a request (an OOM above all): hand the allocator's cached blocks back so the next one starts clean."""
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def make_params(mode: str, spec: VideoSpec):
    from engine.video.pipeline import GenParams
    return GenParams.for_mode(mode, size=spec.size, seed=spec.seed, sample_steps=spec.sample_steps,
                              infer_frames=spec.infer_frames, sample_solver=spec.sample_solver,
                              sample_guide_scale=spec.sample_guide_scale, sample_shift=spec.sample_shift,
                              num_clip=spec.num_clip)


def video_block(chunk, images: list[bytes], audio_seconds: float) -> p.FrameBlock:
    """A block of generated frames as the seam's one frame type: timed on the 16 kHz audio clock they follow."""
    idx = np.round(np.asarray(chunk.times_s, np.float64) * AUDIO_RATE).astype(np.uint64)
    return p.FrameBlock(chunk.first_index, idx, None, None, None, audio_seconds, AUDIO_RATE, chunk.last,
                        images=images, stats=chunk.stats)


def parallel_config(config: VideoWorkerConfig):
    """The rank group this worker owns (docs/multi_gpu.md), or None for one device."""
    if config.num_gpus_dit <= 1 and not config.vae_parallel:
        return None
    from engine.video.parallel.group import ParallelConfig
    dev = config.device or "cuda"
    return ParallelConfig(num_gpus_dit=config.num_gpus_dit, enable_vae_parallel=config.vae_parallel,
                          device="cuda" if dev.startswith("cuda") else dev, timeout_s=config.rank_timeout_s,
                          stall_timeout_s=2 * config.rank_timeout_s)


def classify(exc: Exception) -> tuple[str, str]:
    from engine.video.checkpoints import CheckpointError
    from engine.video.inputs import InputError
    if isinstance(exc, InputError):
        return "INVALID_ARGUMENT", f"{exc.field}: {exc}"
    if isinstance(exc, CheckpointError):
        return "FAILED_PRECONDITION", str(exc)
    if isinstance(exc, MemoryError):
        return "RESOURCE_EXHAUSTED", str(exc) or "out of memory"
    if type(exc).__name__ == "OutOfMemoryError":
        first = str(exc).splitlines()[0] if str(exc) else "CUDA out of memory"
        return "RESOURCE_EXHAUSTED", (f"GPU out of memory ({first}); lower `size` or `infer_frames` in the request, "
                                      f"or start the server with smaller-memory settings: AVATAR_VIDEO_QUANT=fp8, "
                                      f"AVATAR_VIDEO_KV_CACHE=fp8, AVATAR_VIDEO_OFFLOAD=weights+kv (docs/video.md)")
    from engine.video.speed import SpeedConfigError
    if isinstance(exc, SpeedConfigError):  # the server's own settings, not the request: say which to change
        return "FAILED_PRECONDITION", (f"the server's video speed settings cannot run here: {exc} (server side: "
                                       f"the AVATAR_VIDEO_* settings, docs/video.md)")
    if type(exc).__name__ == "RankFailure":  # engine.video.parallel: a rank died or hung; the group restarts
        return "UNAVAILABLE", str(exc)
    if isinstance(exc, ValueError):
        return "INVALID_ARGUMENT", str(exc)
    return "INTERNAL", f"video engine error: {type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.video.worker")
    ap.add_argument("--connect", required=True)
    ap.add_argument("--identity", required=True)
    ap.add_argument("--config", required=True, help="the worker's settings as VideoWorkerConfig JSON (engine/worker/specs.py)")
    ap.add_argument("--log-level", default="info")
    ap.add_argument("--log-format", default="json", choices=["json", "text"])
    args = ap.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    worker = VideoWorker(args.connect, args.identity.encode(), VideoWorkerConfig.from_json(args.config.encode()))
    try:
        worker.run()
    finally:
        if worker.engine is not None and hasattr(worker.engine, "close"):
            worker.engine.close()  # the rank group goes with the worker
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
