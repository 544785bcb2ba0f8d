"""GenerateVideo: validate, route to the video worker, forward encoded frames. Never computes."""
from __future__ import annotations

import logging
import os
import time

import grpc

from avatarbridge.v1 import bridge_pb2 as pb
from bridge_server import metrics, validation
from bridge_server.rpc import messages
from bridge_server.rpc.calls import Front
from bridge_server.rpc.forward import Sink, forward
from bridge_server.rpc.messages import MICROS
from bridge_server.workers import StreamError, WorkerPool
from engine.worker.specs import Done, Opened, VideoSpec, VideoWorkerConfig
from engine.worker import protocol as p

log = logging.getLogger("bridge_server.video")
_MODELS = {pb.VIDEO_MODEL_UNSPECIFIED: "", pb.VIDEO_MODEL_LIVEAVATAR: "liveavatar", pb.VIDEO_MODEL_S2V: "s2v"}
_SOLVERS = ("", "unipc", "dpm++", "euler")
MAX_INFER_FRAMES = 240


async def start_video_pool(cfg) -> WorkerPool | None:
    if not cfg.video_ckpt_dir:
        return None
    config = VideoWorkerConfig(
        ckpt_dir=os.path.abspath(cfg.video_ckpt_dir), lora=os.path.abspath(cfg.video_lora) if cfg.video_lora else "",
        device=cfg.video_device, warmup=cfg.video_warmup,
        face_landmarker=os.path.abspath(cfg.face_landmarker) if cfg.face_landmarker else "",
        num_gpus_dit=cfg.video_num_gpus_dit, vae_parallel=bool(cfg.video_vae_parallel),
        rank_timeout_s=cfg.video_rank_timeout_s)
    # Heartbeats come from the worker's main thread while another thread loads/computes; a long unpickle
    # (the 11 GB umT5 file) can hold the GIL for a while, so allow more silence than expression workers.
    pool = WorkerPool(1, max(cfg.worker_timeout_s, 120.0), 2, cfg.log_level, cfg.log_format,
                      module="engine.video.worker", extra_args=["--config", config.to_json().decode()])
    await pool.start(timeout_s=120.0)
    return pool


def video_config(req: pb.GenerateVideoRequest, max_audio_seconds: float) -> VideoSpec:
    def bad(field: str, msg: str):
        return StreamError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {msg}")
    if not req.image:
        raise bad("image", "empty; send the bytes of a PNG or JPEG portrait")
    if not req.audio_file:
        raise bad("audio_file", "empty; send a whole wav/flac/ogg/mp3 file of speech")
    if req.sample_solver not in _SOLVERS:
        raise bad("sample_solver", f"{req.sample_solver!r} is not one of unipc, dpm++, euler")
    if req.sample_steps > 100:
        raise bad("sample_steps", f"{req.sample_steps} is too many; 4 (LiveAvatar) to 40 (S2V) are typical")
    if req.infer_frames and req.infer_frames % 4:
        raise bad("infer_frames", f"{req.infer_frames} must be a multiple of 4 (48 or 80 are typical)")
    if req.infer_frames > MAX_INFER_FRAMES:  # the KV window / clip grows with it: memory, not quality
        raise bad("infer_frames", f"{req.infer_frames} is out of range: at most {MAX_INFER_FRAMES} "
                                  f"(48 for LiveAvatar, 80 for S2V are typical)")
    if req.jpeg_quality > 100:
        raise bad("jpeg_quality", "must be 1..100 (0 = 90)")
    if req.model not in _MODELS or req.frame_encoding not in (0, 1, 2):
        raise bad("model" if req.model not in _MODELS else "frame_encoding", "unknown enum value")
    return VideoSpec(image_bytes=len(req.image), prompt=req.prompt, size=req.size, seed=req.seed,
                     model=_MODELS[req.model], sample_steps=req.sample_steps,
                     sample_guide_scale=req.sample_guide_scale, sample_shift=req.sample_shift,
                     sample_solver=req.sample_solver, infer_frames=req.infer_frames, num_clip=req.num_clip,
                     encoding="rgb" if req.frame_encoding == pb.FRAME_ENCODING_RGB else "jpeg",
                     jpeg_quality=req.jpeg_quality or 90, max_audio_seconds=max_audio_seconds)


class VideoSink(Sink):
    """Encoded video frames, split under the message size limit, each batch followed by its measured expression
    frames when asked for; the worker makes the next block only when given credit (NEXT)."""

    def __init__(self, front: Front, context, call, ws, opened: Opened, enc: int, measure: "_ExpressionTap | None",
                 t_request: float):
        super().__init__(context, call, ws, 0, None)
        self.front, self.opened, self.enc, self.measure = front, opened, enc, measure
        self.t_request = t_request  # TTFF: request in -> first frame written to the client

    async def frames(self, ev) -> None:
        block = ev.frames
        if not block.last:
            self.ws.send(p.NEXT, 0)  # credit for one more block
        for batch in messages.video_frame_batches(block, self.front.cfg.max_message_bytes):
            await self.context.write(pb.GenerateVideoResponse(frames=pb.VideoFrameBatch(frames=batch)))
            if self.measure:
                expr = await self.measure.frames(batch, self.enc, self.opened.video.width, self.opened.video.height)
                await self.context.write(pb.GenerateVideoResponse(expression=expr))
        if self.sent == 0 and len(block):
            metrics.VIDEO_TTFF.observe(time.monotonic() - self.t_request)
        self.sent += len(block)
        metrics.FRAMES_SENT.labels("GenerateVideo").inc(len(block))
        metrics.video_block(self.call.stream_id, block.stats or {})

    async def done(self, ev) -> None:
        done: Done = ev.msg
        warnings = list(done.warnings) + (await self.measure.close() if self.measure else [])
        await self.context.write(pb.GenerateVideoResponse(status=pb.VideoStatus(
            frames_sent=self.sent, audio_seconds=done.audio_seconds,
            generation_seconds=done.generation_seconds, warnings=warnings)))


async def generate_video(front: Front, request: pb.GenerateVideoRequest, context) -> None:
    async with front.call(context, "GenerateVideo") as call:
        call.stream_id = request.stream_id
        pool = front.video_pool
        if pool is None:
            raise StreamError(grpc.StatusCode.FAILED_PRECONDITION,
                              "video generation is off on this server: start it with --video-ckpt-dir DIR "
                              "(the Wan2.2-S2V-14B files; fetch with `avatar-bridge models fetch s2v-14b`) and "
                              "optionally --video-lora liveavatar.safetensors")
        t_request = time.monotonic()
        spec = video_config(request, min(front.cfg.max_clip_seconds, front.cfg.max_audio_seconds))
        ws = pool.open_stream()
        measure = _ExpressionTap(front, call) if request.with_expression else None
        try:
            ws.send(p.CLIP, 0, p.pack_clip(spec, request.image + request.audio_file))
            opened: Opened = (await ws.next_event()).msg
            enc = pb.FRAME_ENCODING_RGB if spec.encoding == "rgb" else pb.FRAME_ENCODING_JPEG
            await context.write(pb.GenerateVideoResponse(header=messages.video_header(call.stream_id, opened, enc)))
            if measure:
                await context.write(pb.GenerateVideoResponse(expression_header=await measure.open()))
            await forward(ws, VideoSink(front, context, call, ws, opened, enc, measure, t_request))
        finally:
            metrics.video_stream_ended(call.stream_id)
            ws.close()  # also cancels a generation the client walked away from
            if measure:
                measure.ws.close()


class _ExpressionTap:
    """with_expression: the generated frames go, as images, to a capture stream on the expression
    workers (the same engine as CaptureStream); one expression frame comes back per video frame."""

    def __init__(self, front: Front, call):
        self.call = call
        self.spec = validation.capture_config(pb.CaptureHeader(stream_id=call.stream_id), "header", front.cfg)
        self.ws = front.pool.open_stream()
        self.seq = 0

    async def open(self) -> pb.ExpressionHeader:
        self.ws.send(p.CAPTURE, 0, self.spec.to_json())
        self.opened = (await self.ws.next_event()).msg
        return messages.expression_header(self.call.stream_id, 0, MICROS, self.opened)

    async def frames(self, batch, encoding, width: int, height: int) -> pb.FrameBatch:
        raw = encoding == pb.FRAME_ENCODING_RGB
        for f in batch:
            self.seq += 1
            body = p.pack_image(int(round(f.time * 1e6)), width if raw else 0, height if raw else 0,
                                pb.IMAGE_ENCODING_RAW_RGB if raw else pb.IMAGE_ENCODING_JPEG, f.data)
            await self.ws.send_with_credit(p.IMAGE, self.seq, body)
        out = pb.FrameBatch()
        while len(out.frames) < len(batch):
            ev = await self.ws.next_event()
            if ev.kind == p.FRAMES:
                out.frames.extend(messages.frame_batch(ev.frames, MICROS).frames)
        return out

    async def close(self) -> list[str]:
        self.seq += 1
        await self.ws.send_with_credit(p.END, self.seq)
        while True:
            ev = await self.ws.next_event()
            if ev.kind == p.DONE:
                return [f"expression: {w}" for w in ev.msg.warnings]
