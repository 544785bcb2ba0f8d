"""Live mode: the page's microphone (PCM16 over a WebSocket) -> StreamExpression -> frames back as JSON.

Protocol on /ws/live: the page sends one JSON text message {"sample_rate", "fps", "engine", style knobs...}, then
binary messages of mono PCM16 little-endian, then the text "end" (or closes). The console answers with JSON text:
{"type": "header", ...}, {"type": "frames", "frames": [[index, sample_index, [52 weights], [16 rotation floats],
face_lost], ...], "relay_ms": ...}, {"type": "status", ...} or {"type": "error", "message": ...}. relay_ms is how long the
console held that batch (gRPC message in -> WebSocket message out), so the page can show the console's share of
the latency apart from the engine's.
"""
from __future__ import annotations

import asyncio
import json
import struct
import time

import grpc
from aiohttp import WSMsgType, web

from avatarbridge.v1 import bridge_pb2 as pb
from bridge_server.console.relay import FormError, fps_from_form, style_from_form

MAX_CHUNK_BYTES = 1 << 20


def header_json(h: pb.ExpressionHeader) -> dict:
    return {"type": "header", "fps": h.fps, "sample_rate": h.sample_rate, "engine": h.engine,
            "lookahead_ms": h.lookahead_ms, "blendshape_names": list(h.blendshape_names),
            "bone_names": list(h.bone_names)}


def frames_json(batch: pb.FrameBatch) -> list:
    return [[f.index, f.sample_index, [round(v, 4) for v in f.weights], [round(v, 5) for v in f.rotations],
             f.face_lost] for f in batch.frames]


async def live(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_CHUNK_BYTES, heartbeat=20)
    await ws.prepare(request)
    first = await ws.receive()
    if first.type != WSMsgType.TEXT:
        await ws.send_json({"type": "error", "message": "send the stream settings (JSON) first"})
        return await ws.close() or ws
    try:
        opts = json.loads(first.data)
        rate = int(opts.get("sample_rate", 0))
        head = pb.StreamHeader(encoding=pb.AUDIO_ENCODING_PCM16, sample_rate=rate, channels=1,
                               fps=fps_from_form(opts), stream_id="console:live", style=style_from_form(opts),
                               engine=opts.get("engine") or "")
    except (ValueError, TypeError, FormError) as exc:
        await ws.send_json({"type": "error", "message": f"bad live settings: {exc}"})
        await ws.close()
        return ws

    queue: asyncio.Queue = asyncio.Queue()

    async def requests():
        yield pb.ExpressionRequest(header=head)
        while True:
            item = await queue.get()
            if item is None:
                yield pb.ExpressionRequest(end=pb.EndOfAudio())
                return
            yield pb.ExpressionRequest(audio=pb.AudioChunk(data=item))

    call = request.app["relay"].stub.StreamExpression(requests())

    async def pump_in():
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await queue.put(bytes(msg.data))
            elif msg.type == WSMsgType.TEXT and msg.data == "end":
                break
        await queue.put(None)

    await relay_responses(ws, request.app["relay"], call, asyncio.create_task(pump_in()))
    return ws


async def camera(request: web.Request) -> web.WebSocketResponse:
    """/ws/capture: webcam JPEGs -> CaptureStream. The page sends the JSON text {"fps"} first, then binary
    messages of an 8-byte little-endian float64 capture time (ms, the page's clock) followed by one JPEG; the
    console answers like /ws/live (frames carry the image's timestamp in microseconds as their sample index)."""
    ws = web.WebSocketResponse(max_msg_size=8 << 20, heartbeat=20)
    await ws.prepare(request)
    first = await ws.receive()
    try:
        opts = json.loads(first.data) if first.type == WSMsgType.TEXT else None
        if not isinstance(opts, dict):
            raise ValueError("send the capture settings (JSON) first")
        head = pb.CaptureHeader(stream_id="console:camera", fps=int(opts.get("fps", 0)),
                                settings=pb.CaptureSettings(max_faces=1))
    except (ValueError, TypeError) as exc:
        await ws.send_json({"type": "error", "message": f"bad capture settings: {exc}"})
        await ws.close()
        return ws
    queue: asyncio.Queue = asyncio.Queue(maxsize=4)

    async def requests():
        yield pb.CaptureRequest(header=head)
        last = -1
        while True:
            item = await queue.get()
            if item is None:
                yield pb.CaptureRequest(end=pb.EndOfImages())
                return
            ts = max(int(struct.unpack_from("<d", item, 0)[0] * 1000), last + 1)  # strictly increasing
            last = ts
            yield pb.CaptureRequest(image=pb.CaptureImage(data=item[8:], encoding=pb.IMAGE_ENCODING_JPEG,
                                                          timestamp_us=ts))

    call = request.app["relay"].stub.CaptureStream(requests())

    async def pump_in():
        async for msg in ws:
            if msg.type == WSMsgType.BINARY and len(msg.data) > 8:
                if queue.full():  # the server is behind: drop the oldest image, keep the face current
                    queue.get_nowait()
                await queue.put(bytes(msg.data))
            elif msg.type == WSMsgType.TEXT and msg.data == "end":
                break
        await queue.put(None)

    await relay_responses(ws, request.app["relay"], call, asyncio.create_task(pump_in()))
    return ws


async def relay_responses(ws: web.WebSocketResponse, relay, call, reader: asyncio.Task) -> None:
    """gRPC expression responses -> the page, as JSON text; a failed call becomes one readable error message."""
    try:
        async for r in call:
            got = time.perf_counter()
            which = r.WhichOneof("msg")
            if which == "header":
                await ws.send_json(header_json(r.header))
            elif which == "frames":
                frames = frames_json(r.frames)
                await ws.send_str(json.dumps({"type": "frames", "frames": frames,
                                              "relay_ms": round((time.perf_counter() - got) * 1000, 3)}))
            elif which == "status":
                await ws.send_json({"type": "status", "frames_sent": r.status.frames_sent,
                                    "audio_seconds": r.status.audio_seconds, "warnings": list(r.status.warnings)})
    except grpc.RpcError as exc:
        if not ws.closed:
            await ws.send_json({"type": "error", "message": await relay.explain(exc)})
    except ConnectionResetError:
        call.cancel()
    finally:
        reader.cancel()
        if not ws.closed:
            await ws.close()


def add_routes(app: web.Application) -> None:
    app.router.add_get("/ws/live", live)
    app.router.add_get("/ws/capture", camera)
