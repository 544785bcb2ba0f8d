"""The console's HTTP side (aiohttp): the built page, a JSON API over the relay, downloads, and the live WebSocket."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import grpc
from aiohttp import web

from bridge_server.console.relay import FormError, Relay, frames_csv, wav_bytes

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
DEFAULT_MAX_UPLOAD = 64 << 20  # also the server's default largest message
KEEP_RESULTS = 16  # the newest results stay downloadable (memory stays bounded)


@dataclass
class Result:
    """One animation the page can download again: frames (JSON, CSV), the audio it was made from, its MP4."""

    frames: dict
    csv: bytes
    audio: bytes
    audio_name: str
    mp4: bytes | None = None
    mp4_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def error(status: int, message: str, field: str = "") -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)


def too_large(limit: int, size: int | None) -> web.Response:
    this = f" (this one is {size / (1 << 20):.0f} MB)" if size else ""
    return error(413, f"the upload is too large: the console accepts uploads up to {limit >> 20} MB{this}; "
                      "trim or compress it (or start the console with a larger --max-upload-mb)", "file")


class UploadTooLarge(Exception):
    def __init__(self, size: int):
        self.size = size


@web.middleware
async def errors_as_json(request: web.Request, handler):
    """Every failure reaches the page as {"error": "..."} with a sentence it can show, never a stack trace."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        return too_large(request.app["max_upload"], None)
    except UploadTooLarge as exc:
        return too_large(request.app["max_upload"], exc.size)
    except web.HTTPException:
        raise
    except FormError as exc:
        return error(400, str(exc))
    except grpc.RpcError as exc:
        status = 400 if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                                       grpc.StatusCode.OUT_OF_RANGE) else 503
        return error(status, await request.app["relay"].explain(exc))


async def read_form(request: web.Request) -> tuple[dict, dict[str, tuple[str, bytes]]]:
    """Multipart form -> (text fields, files {name: (filename, bytes)}); the size limit applies to the whole body."""
    if request.content_length is not None and request.content_length > request.app["max_upload"]:
        raise UploadTooLarge(request.content_length)
    post = await request.post()
    fields, files = {}, {}
    for k, v in post.items():
        if isinstance(v, web.FileField):
            files[k] = (v.filename or "upload", v.file.read())
        else:
            fields[k] = v
    return fields, files


def remember(app: web.Application, result: Result) -> str:
    rid = uuid.uuid4().hex[:12]
    results: OrderedDict = app["results"]
    results[rid] = result
    while len(results) > KEEP_RESULTS:
        results.popitem(last=False)
    return rid


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(STATIC, "index.html"), headers={"Cache-Control": "no-cache"})


async def status(request: web.Request) -> web.Response:
    relay: Relay = request.app["relay"]
    out = await relay.status()
    out["console"] = {"max_upload_bytes": request.app["max_upload"], "metrics_url": request.app["metrics_url"],
                      "sample_clip": bool(request.app["clip"]), "video_hint": request.app["video_hint"]}
    out["metrics"] = await scrape_metrics(request.app["metrics_url"])
    return web.json_response(out)


async def scrape_metrics(url: str) -> dict:
    """Workers alive and live streams from the server's /metrics (empty when it has none)."""
    if not url:
        return {}
    from prometheus_client.parser import text_string_to_metric_families

    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*_host_port(url)), 2)
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/metrics"
        writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        body = (await asyncio.wait_for(reader.read(), 3)).split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
        writer.close()
    except (OSError, asyncio.TimeoutError):
        return {"error": f"{url} did not answer"}
    out: dict = {"live_streams": {}}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            if s.name == "avatar_bridge_workers_alive":
                out["workers_alive"] = int(s.value)
            elif s.name == "avatar_bridge_worker_restarts_total":
                out["worker_restarts"] = int(s.value)
            elif s.name == "avatar_bridge_live_streams":
                out["live_streams"][s.labels.get("rpc", "")] = int(s.value)
            elif s.name == "avatar_bridge_video_gpu_memory_bytes":  # by kind, after a video block ran on a GPU
                out.setdefault("gpu", {})[s.labels.get("kind") or "memory"] = s.value
    return out


def _host_port(url: str) -> tuple[str, int]:
    hostport = url.split("//", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    return host or "127.0.0.1", int(port or 80)


async def animate(request: web.Request) -> web.Response:
    fields, files = await read_form(request)
    if "audio" not in files or not files["audio"][1]:
        return error(400, "no audio file: choose or drop a speech file (wav, flac, ogg, mp3, m4a)", "audio")
    name, data = files["audio"]
    anim = await request.app["relay"].animate(data, name, fields)
    frames = anim.to_json()
    rid = remember(request.app, Result(frames, frames_csv(anim), data, name))
    return web.json_response({"id": rid, "frames": frames})


async def speak(request: web.Request) -> web.Response:
    fields, _ = await read_form(request)
    res = await request.app["relay"].speak(fields)
    frames = res.animation.to_json()
    audio = wav_bytes(res.pcm().tobytes(), res.header.sample_rate)
    rid = remember(request.app, Result(frames, frames_csv(res.animation), audio, "speech.wav"))
    return web.json_response({"id": rid, "frames": frames, "voice": res.header.voice,
                              "audio_url": f"/api/result/{rid}/audio.wav"})


async def capture(request: web.Request) -> web.Response:
    fields, files = await read_form(request)
    if "video" not in files or not files["video"][1]:
        return error(400, "no video file: choose a video of a face (mp4, webm, mov)", "video")
    name, data = files["video"]
    res = await request.app["relay"].capture(data, name)
    frames = res.animation.to_json()
    pcm, rate, _ = res.audio_pcm()
    audio = wav_bytes(pcm.tobytes(), rate, pcm.shape[1]) if rate else b""
    rid = remember(request.app, Result(frames, frames_csv(res.animation), audio, "track.wav"))
    return web.json_response({"id": rid, "frames": frames,
                              "audio_url": f"/api/result/{rid}/audio.wav" if rate else ""})


async def sample_clip(request: web.Request) -> web.StreamResponse:
    clip = request.app["clip"]
    if not clip:
        return error(404, "this console was started without --clip")
    return web.FileResponse(clip, headers={"Content-Disposition": f'inline; filename="{os.path.basename(clip)}"'})


async def download(request: web.Request) -> web.StreamResponse:
    res: Result | None = request.app["results"].get(request.match_info["rid"])
    what = request.match_info["what"]
    if res is None:
        return error(404, "that result is gone (the console keeps the newest 16); animate the clip again")
    if what == "frames.json":
        return web.Response(body=json.dumps(res.frames, indent=1).encode(), content_type="application/json",
                            headers={"Content-Disposition": 'attachment; filename="frames.json"'})
    if what == "frames.csv":
        return web.Response(body=res.csv, content_type="text/csv",
                            headers={"Content-Disposition": 'attachment; filename="frames.csv"'})
    if what == "audio.wav":
        return web.Response(body=res.audio, content_type="audio/wav")
    if what == "video.mp4":
        async with res.mp4_lock:
            if res.mp4 is None:
                res.mp4 = await render_mp4(res)
        return web.Response(body=res.mp4, content_type="video/mp4",
                            headers={"Content-Disposition": 'attachment; filename="avatar.mp4"'})
    return error(404, f"unknown download {what!r}: frames.json, frames.csv, audio.wav or video.mp4")


async def render_mp4(res: Result) -> bytes:
    """The project's preview renderer (`avatar-bridge render`, its own process) on the shipped head."""
    with tempfile.TemporaryDirectory() as tmp:
        frames = os.path.join(tmp, "frames.json")
        audio = os.path.join(tmp, "speech" + os.path.splitext(res.audio_name)[1].lower())
        out = os.path.join(tmp, "avatar.mp4")
        with open(frames, "w") as fh:
            json.dump(res.frames, fh)
        with open(audio, "wb") as fh:
            fh.write(res.audio)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge_server.cli", "render", frames, "--avatar", os.path.join(STATIC, "head.glb"),
            "--audio", audio, "--out", out, "--size", "384",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            raise FormError("the renderer failed: " + (lines[-1] if lines else f"exit {proc.returncode}"))
        with open(out, "rb") as fh:
            return fh.read()


def build_app(target: str, metrics_url: str = "", max_upload: int = DEFAULT_MAX_UPLOAD, clip: str = "",
              video_hint: str = "") -> web.Application:
    from bridge_server.console import live, video

    app = web.Application(client_max_size=max_upload + (1 << 20), middlewares=[errors_as_json])
    app["max_upload"] = max_upload
    app["metrics_url"] = metrics_url
    app["clip"] = clip
    app["video_hint"] = video_hint
    app["results"] = OrderedDict()

    async def open_relay(app):
        app["relay"] = Relay(target)
        yield
        await app["relay"].close()

    app.cleanup_ctx.append(open_relay)
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", lambda request: web.Response(status=204))
    app.router.add_get("/api/status", status)
    app.router.add_post("/api/animate", animate)
    app.router.add_post("/api/speak", speak)
    app.router.add_post("/api/capture", capture)
    app.router.add_get("/api/sample", sample_clip)
    app.router.add_get("/api/result/{rid}/{what}", download)
    live.add_routes(app)
    video.add_routes(app)
    app.router.add_static("/static/", STATIC)
    return app
