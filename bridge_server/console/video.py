"""Video tab: portrait + speech + prompt -> GenerateVideo as a background job the page polls for progress.

POST /api/video starts a job and answers its id at once; GET /api/video/{id} is its progress (frames done / total,
blocks, fps, ETA, warnings, error); GET /api/video/{id}/frame.jpg is the newest frame; GET /api/video/{id}/video.mp4
is the finished clip (the streamed JPEG frames and the input audio muxed by PyAV: no generation happens here).
"""
from __future__ import annotations

import asyncio
import fractions
import io
import math
import os
import tempfile
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import grpc
from aiohttp import web

from avatarbridge.v1 import bridge_pb2 as pb
from bridge_server.video_presets import PRESETS
from bridge_server.console.relay import FormError, number

KEEP_JOBS = 8
PROMPT_HINT = ("A [who: age, look, clothes] is talking to the camera, [expression], [setting], [lighting], "
               "[shot: head-and-shoulders, frontal]")
BLOCK_FRAMES = {"liveavatar": 12}  # LiveAvatar decodes 3 latent frames (12 video frames) per causal block
FETCH_HINT = ("avatar-bridge models fetch liveavatar --dest ckpt && avatar-bridge models fetch s2v-14b --dest ckpt, "
              "then: avatar-bridge serve --video-ckpt-dir ckpt/s2v-14b --video-lora ckpt/liveavatar")


@dataclass
class Job:
    request: pb.GenerateVideoRequest
    state: str = "starting"  # starting, running, encoding, done, error
    error: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    model: str = ""
    expected: int = 0
    jpegs: list = field(default_factory=list)
    times: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    first_frame_at: float = 0.0
    finished_s: float = 0.0
    mp4: bytes | None = None
    task: asyncio.Task | None = None

    def progress(self) -> dict:
        done = len(self.jpegs)
        now = time.monotonic()
        rate = 0.0
        if done > 1 and self.first_frame_at:
            rate = (done - 1) / max(now - self.first_frame_at, 1e-6)
        block = BLOCK_FRAMES.get(self.model) or self.request.infer_frames or 80
        eta = (self.expected - done) / rate if rate > 0 and self.expected > done else None
        return {"state": self.state, "error": self.error, "frames_done": done, "frames_total": self.expected,
                "blocks_done": math.ceil(done / block) if done < self.expected else math.ceil(self.expected / block),
                "blocks_total": math.ceil(self.expected / block) if self.expected else 0,
                "percent": round(100.0 * done / self.expected, 1) if self.expected else 0.0,
                "gen_fps": round(rate, 2), "eta_s": round(eta, 1) if eta is not None else None,
                "elapsed_s": round((self.finished_s or now - self.started), 1),
                "width": self.width, "height": self.height, "fps": self.fps, "model": self.model,
                "warnings": self.warnings}


def request_from_form(fields: dict, files: dict) -> pb.GenerateVideoRequest:
    for name, what in (("image", "a portrait (PNG or JPEG)"), ("audio", "a speech file")):
        if name not in files or not files[name][1]:
            raise FormError(f"no {name}: choose {what}")
    preset = fields.get("preset") or "preview"
    if preset not in PRESETS:
        raise FormError(f"preset must be one of {', '.join(sorted(PRESETS))}, got {preset!r}")
    k = dict(PRESETS[preset])
    for name in ("size", "sample_solver", "model"):
        if fields.get(name):
            k[name] = fields[name]
    for name in ("seed", "sample_steps", "infer_frames", "num_clip"):
        if fields.get(name) not in (None, ""):
            k[name] = int(number(fields, name))
    for name in ("sample_guide_scale", "sample_shift"):
        if fields.get(name) not in (None, ""):
            k[name] = number(fields, name)
    models = {"liveavatar": pb.VIDEO_MODEL_LIVEAVATAR, "s2v": pb.VIDEO_MODEL_S2V, "auto": pb.VIDEO_MODEL_UNSPECIFIED}
    if k.get("model", "auto") not in models:
        raise FormError(f"model must be liveavatar, s2v or auto, got {k['model']!r}")
    return pb.GenerateVideoRequest(
        image=files["image"][1], audio_file=files["audio"][1], prompt=fields.get("prompt", ""),
        size=k.get("size", ""), seed=k.get("seed", 0), model=models[k.get("model", "auto")],
        sample_steps=k.get("sample_steps", 0), sample_guide_scale=k.get("sample_guide_scale", 0.0),
        sample_shift=k.get("sample_shift", 0.0), sample_solver=k.get("sample_solver", ""),
        infer_frames=k.get("infer_frames", 0), num_clip=k.get("num_clip", 0),
        frame_encoding=pb.FRAME_ENCODING_JPEG, stream_id="console:video")


async def run_job(app: web.Application, job: Job) -> None:
    call = app["relay"].stub.GenerateVideo(job.request, timeout=3600)
    try:
        async for r in call:
            which = r.WhichOneof("msg")
            if which == "header":
                h = r.header
                job.state, job.width, job.height, job.fps = "running", h.width, h.height, h.fps
                job.model, job.expected = h.model, h.expected_frames
                job.warnings.extend(h.warnings)
            elif which == "frames":
                for f in r.frames.frames:
                    job.jpegs.append(f.data)
                    job.times.append(f.time)
                if not job.first_frame_at:
                    job.first_frame_at = time.monotonic()
            elif which == "status":
                job.warnings.extend(r.status.warnings)
        job.state = "encoding"
        job.mp4 = await asyncio.to_thread(mux_mp4, job.jpegs, job.times, job.fps, job.request.audio_file)
        job.expected = job.expected or len(job.jpegs)
        job.state = "done"
    except grpc.RpcError as exc:
        job.state, job.error = "error", await app["relay"].explain(exc)
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            job.error += f". To enable video: {app['video_hint'] or FETCH_HINT}"
    except Exception as exc:  # a broken encode must reach the page as a sentence, not kill the console
        job.state, job.error = "error", f"could not build the MP4: {exc}"
    finally:
        job.finished_s = time.monotonic() - job.started


def mux_mp4(jpegs: list, times: list, fps: float, audio_file: bytes) -> bytes:
    """JPEG frames on the audio's clock + the input audio -> H.264/AAC MP4 bytes that browsers play."""
    import av
    import numpy as np
    from PIL import Image

    tmp = tempfile.NamedTemporaryFile(suffix=".mp4", delete=False)  # faststart rewrites the file: a real path
    tmp.close()
    rate = int(round(fps)) or 25
    out = av.open(tmp.name, mode="w", options={"movflags": "faststart"})
    first = Image.open(io.BytesIO(jpegs[0]))
    vs = out.add_stream("libx264", rate=rate)
    vs.width, vs.height, vs.pix_fmt = first.width - first.width % 2, first.height - first.height % 2, "yuv420p"
    vs.codec_context.time_base = fractions.Fraction(1, rate)
    try:  # every stream is added before the first packet is muxed (the MP4 header is written then)
        src = av.open(io.BytesIO(audio_file))
        if not src.streams.audio:
            src.close()
            src = None
    except av.error.FFmpegError:
        src = None
    aus = None
    if src is not None:
        aus = out.add_stream("aac", rate=16000)
        aus.layout = "mono"
    for data, t in zip(jpegs, times):
        img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[:vs.height, :vs.width]
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        vf.pts = int(round(t * rate))
        vf.time_base = fractions.Fraction(1, rate)
        for pkt in vs.encode(vf):
            out.mux(pkt)
    for pkt in vs.encode():
        out.mux(pkt)
    if src is not None:
        end = int((times[-1] + 1.0 / rate) * 16000)  # no sound past the last frame
        res = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        pts = 0
        for frame in src.decode(audio=0):
            for rf in res.resample(frame):
                if pts >= end:
                    break
                rf.pts = pts
                rf.time_base = fractions.Fraction(1, 16000)
                pts += rf.samples
                for pkt in aus.encode(rf):
                    out.mux(pkt)
        for pkt in aus.encode():
            out.mux(pkt)
        src.close()
    out.close()
    try:
        with open(tmp.name, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(tmp.name)


async def start(request: web.Request) -> web.Response:
    from bridge_server.console.app import read_form

    fields, files = await read_form(request)
    job = Job(request_from_form(fields, files))
    jid = uuid.uuid4().hex[:12]
    jobs: OrderedDict = request.app["video_jobs"]
    jobs[jid] = job
    while len(jobs) > KEEP_JOBS:
        _, old = jobs.popitem(last=False)
        if old.task:
            old.task.cancel()
    job.task = asyncio.create_task(run_job(request.app, job))
    return web.json_response({"id": jid})


def _job(request: web.Request) -> Job:
    job = request.app["video_jobs"].get(request.match_info["jid"])
    if job is None:
        raise web.HTTPNotFound(text='{"error": "no such video job (the console keeps the newest 8)"}',
                               content_type="application/json")
    return job


async def progress(request: web.Request) -> web.Response:
    return web.json_response(_job(request).progress())


async def frame(request: web.Request) -> web.Response:
    job = _job(request)
    if not job.jpegs:
        raise web.HTTPNotFound(text='{"error": "no frame yet"}', content_type="application/json")
    return web.Response(body=job.jpegs[-1], content_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def mp4(request: web.Request) -> web.Response:
    job = _job(request)
    if job.mp4 is None:
        raise web.HTTPConflict(text='{"error": "the video is not finished"}', content_type="application/json")
    return web.Response(body=job.mp4, content_type="video/mp4",
                        headers={"Content-Disposition": 'inline; filename="talking.mp4"'})


async def options(request: web.Request) -> web.Response:
    return web.json_response({"presets": PRESETS, "prompt_hint": PROMPT_HINT})


def add_routes(app: web.Application) -> None:
    app["video_jobs"] = OrderedDict()
    app.router.add_get("/api/video/options", options)
    app.router.add_post("/api/video", start)
    app.router.add_get("/api/video/{jid}", progress)
    app.router.add_get("/api/video/{jid}/frame.jpg", frame)
    app.router.add_get("/api/video/{jid}/video.mp4", mp4)
