"""The AvatarBridge gRPC service. It validates, routes and streams; it never computes."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc

from avatarbridge.v1 import bridge_pb2 as pb
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc
from bridge_server import metrics, outputs, validation
from bridge_server.config import ServerConfig
from bridge_server.workers import StreamError, WorkerPool, WorkerStream
from engine.rig import ARKIT_NAMES, BONE_NAMES
from engine.capture.landmarker import UNMEASURED
from engine.worker import protocol as p
from engine.worker.main import CAPTURE_ENGINE

log = logging.getLogger("bridge_server.service")
API_VERSION = "avatarbridge.v1"
MICROS = 1_000_000  # capture time codes: sample_index = timestamp in microseconds
CLIP_FORMATS = ["wav", "flac", "ogg", "mp3", "aiff", "m4a", "opus", "webm"]


class LiveCall:
    """Book-keeping for one RPC in flight (for drain, limits, metrics and interrupts)."""

    def __init__(self, rpc: str, stream_id: str):
        self.rpc, self.stream_id = rpc, stream_id
        self.task = asyncio.current_task()
        self.drain = asyncio.Event()
        self.code = "OK"
        self.pending_error: StreamError | None = None  # set by interrupt()
        self.writing = False  # inside context.write (may block on a client that does not read)
        self.last_progress = time.monotonic()  # last completed write
        self.reader: asyncio.Task | None = None  # StreamExpression's request reader
        self.outputs: list = []  # plugin-free mirrors of this stream (bridge_server.outputs)

    def interrupt(self, err: StreamError) -> None:
        """End the call with err even while its task is blocked in a write."""
        if self.pending_error is None:
            self.pending_error = err
            self.task.cancel()

    def stalled(self, seconds: float = 1.0) -> bool:
        return self.writing and time.monotonic() - self.last_progress > seconds


def frame_batch(block, sample_rate: int) -> pb.ExpressionResponse:
    return pb.ExpressionResponse(frames=frame_batch_msg(block, sample_rate))


def frame_batch_msg(block, sample_rate: int) -> pb.FrameBatch:
    """Turn a worker's frame block into a FrameBatch message."""
    n = len(block)
    weights = block.weights.tolist()
    rots = block.rotations.tolist()
    trans = block.translation.tolist() if block.translation is not None else None
    vis = block.visemes.tolist() if block.visemes is not None else None
    idx = block.sample_index.tolist()
    conf = block.confidence.tolist() if block.confidence is not None else [1.0] * n
    lost = block.face_lost.tolist() if block.face_lost is not None else [False] * n
    frames = []
    for i in range(n):
        f = pb.Frame(index=block.first_index + i, time=idx[i] / sample_rate, sample_index=idx[i],
                     weights=weights[i], rotations=rots[i], confidence=conf[i], face_lost=lost[i])
        if trans is not None:
            f.head_translation.x, f.head_translation.y, f.head_translation.z = trans[i]
        if vis is not None:
            f.visemes.extend(vis[i])
        frames.append(f)
    return pb.FrameBatch(frames=frames)


class BridgeService(pb_grpc.AvatarBridgeServicer):
    def __init__(self, cfg: ServerConfig, pool: WorkerPool, version: str, video_pool: WorkerPool | None = None):
        self.cfg, self.pool, self.version = cfg, pool, version
        self.video_pool = video_pool  # engine.video worker (GenerateVideo); None = off
        self.calls: set[LiveCall] = set()
        self.draining = False
        self.output_targets = outputs.parse_targets(cfg.outputs)

    # -- unary -------------------------------------------------------------
    async def GetCapabilities(self, request, context):
        engines = [pb.EngineInfo(name=e["name"], kind=e["kind"], description=e["description"],
                                 is_default=e["is_default"], lookahead_ms=e["lookahead_s"] * 1000)
                   for e in self.pool.engines + (self.video_pool.engines if self.video_pool else [])]
        engines.append(pb.EngineInfo(name=CAPTURE_ENGINE, kind="capture", is_default=True, lookahead_ms=0.0,
                                     description="MediaPipe Face Landmarker: images/video -> 51 measured ARKit "
                                                 "weights (tongueOut unmeasured), head pose, eye rotations"))
        return pb.Capabilities(
            server_version=self.version, api_version=API_VERSION, engines=engines,
            blendshape_names=ARKIT_NAMES, bone_names=BONE_NAMES, supported_fps=validation.SUPPORTED_FPS,
            audio_encodings=[pb.AUDIO_ENCODING_PCM16, pb.AUDIO_ENCODING_FLOAT32], clip_formats=CLIP_FORMATS,
            limits=pb.Limits(max_audio_seconds=self.cfg.max_audio_seconds,
                             max_message_bytes=self.cfg.max_message_bytes,
                             max_concurrent_streams=self.cfg.max_concurrent_streams,
                             max_pending_frames=self.cfg.max_pending_frames,
                             min_sample_rate=validation.MIN_RATE, max_sample_rate=validation.MAX_RATE,
                             max_channels=validation.MAX_CHANNELS),
            voices=[pb.VoiceInfo(id=v["id"], language=v["language"], engine=v["engine"], sample_rate=v["sample_rate"],
                                 description=v["description"], missing=v["missing"]) for v in self.pool.voices])

    # -- streaming ---------------------------------------------------------
    async def StreamExpression(self, request_iterator, context):
        async with self._call(context, "StreamExpression") as call:
            first = await self._read_first(context, "StreamHeader", "audio", " (encoding, sample_rate, channels, fps)")
            cfg = validation.stream_config(first.header, self.pool.engines)
            call.stream_id = first.header.stream_id
            await self._live_stream(context, call, p.OPEN, cfg, cfg["fps"], self._pump_audio)

    async def AnimateClip(self, request, context):
        async with self._call(context, "AnimateClip") as call:
            call.stream_id = request.stream_id
            limit = min(self.cfg.max_clip_seconds, self.cfg.max_audio_seconds)
            cfg = validation.clip_config(request, self.pool.engines, limit)
            ws = self.pool.open_stream()
            call.outputs = self._open_outputs(call.stream_id, cfg["fps"])
            try:
                ws.send(p.CLIP, 0, p.pack_clip(cfg, request.audio_file))
                opened = await ws.next_event()
                sent = 0
                sample_rate = 0
                while True:
                    ev = await ws.next_event()
                    if ev.kind == p.FRAMES:
                        block = ev.frames
                        if not sample_rate:  # the file's own rate, known once decoded
                            sample_rate = block.sample_rate
                            await context.write(self._header(call.stream_id, cfg["fps"], sample_rate, opened))
                        if not block.last:
                            ws.send(p.NEXT, ev.seq + 1)  # one block ahead of the client
                        if len(block):
                            await context.write(frame_batch(block, sample_rate))
                            outputs.send_all(call.outputs, block, sample_rate)
                            sent += len(block)
                            metrics.FRAMES_SENT.labels("AnimateClip").inc(len(block))
                    elif ev.kind == p.DONE:
                        await context.write(self._status(sent, ev.meta, opened))
                        metrics.AUDIO_SECONDS.labels("AnimateClip").inc(ev.meta["audio_seconds"])
                        return
            finally:
                ws.close()
                outputs.close_all(call.outputs)

    async def CaptureStream(self, request_iterator, context):
        async with self._call(context, "CaptureStream") as call:
            first = await self._read_first(context, "CaptureHeader", "images")
            cfg = validation.capture_config(first.header, "header", self.cfg)
            cfg["sample_rate"] = MICROS
            call.stream_id = first.header.stream_id
            await self._live_stream(context, call, p.CAPTURE, cfg, first.header.fps, self._pump_images)

    async def CaptureVideo(self, request_iterator, context):
        async with self._call(context, "CaptureVideo") as call:
            first = await self._read_first(context, "CaptureVideoHeader", "file chunks")
            cfg = validation.capture_config(first.header, "header", self.cfg)
            cfg["skip_audio"] = first.header.skip_audio
            call.stream_id = first.header.stream_id
            data = await self._read_file(context)
            ws = self.pool.open_stream()
            try:
                ws.send(p.VIDEO, 0, p.pack_clip(cfg, data))
                del data
                opened = await ws.next_event()
                info = opened.meta["video"]
                await context.write(pb.CaptureVideoResponse(video=pb.VideoInfo(
                    width=info["width"], height=info["height"], fps=info["fps"], duration=info["duration"],
                    codec=info["codec"], has_audio=info["has_audio"], audio_sample_rate=info["audio_sample_rate"],
                    audio_channels=info["audio_channels"])))
                fps = round(info["fps"])
                await context.write(pb.CaptureVideoResponse(header=self._header_msg(call.stream_id, fps, MICROS,
                                                                                    opened)))
                call.outputs = self._open_outputs(call.stream_id, fps or 30)
                sent = 0
                while True:
                    ev = await ws.next_event()
                    if ev.kind == p.TRACK:
                        start, rate, ch, pcm = ev.track
                        ws.send(p.NEXT, ev.seq + 1)
                        await context.write(pb.CaptureVideoResponse(audio=pb.AudioTrackChunk(
                            start_time=start, sample_rate=rate, channels=ch, pcm16=pcm)))
                    elif ev.kind == p.FRAMES:
                        if not ev.frames.last:
                            ws.send(p.NEXT, ev.seq + 1)  # one block ahead of the client
                        if len(ev.frames):
                            await context.write(pb.CaptureVideoResponse(frames=frame_batch_msg(ev.frames, MICROS)))
                            outputs.send_all(call.outputs, ev.frames, MICROS)
                            sent += len(ev.frames)
                            metrics.FRAMES_SENT.labels("CaptureVideo").inc(len(ev.frames))
                    elif ev.kind == p.DONE:
                        await context.write(pb.CaptureVideoResponse(status=self._status_msg(sent, ev.meta, opened)))
                        return
            finally:
                ws.close()
                outputs.close_all(call.outputs)

    async def Speak(self, request_iterator, context):
        """Text -> per sentence: audio, then the frames it completes; a SpeakStop eases the face to rest."""
        async with self._call(context, "Speak") as call:
            first = await self._read_first(context, "SpeakStart", "stop", " (text, voice, language, fps)",
                                           kind="start")
            cfg = validation.speak_config(first.start, self.pool.voices, self.pool.engines)
            call.stream_id = first.start.stream_id
            ws = self.pool.open_stream()
            call.outputs = self._open_outputs(call.stream_id, cfg["fps"])
            stopped = asyncio.Event()
            call.reader = asyncio.create_task(self._read_speak_stop(context, call, ws, stopped))
            try:
                ws.send(p.SPEAK, 0, p.dumps(cfg))
                opened = await ws.next_event()
                rate = opened.meta["sample_rate"]
                await context.write(pb.SpeakResponse(header=pb.SpeakHeader(
                    stream_id=call.stream_id, voice=opened.meta["voice"], language=opened.meta["language"],
                    tts_engine=opened.meta["tts_engine"], sample_rate=rate, lookahead_ms=0.0,
                    expression=self._header_msg(call.stream_id, cfg["fps"], rate, opened))))
                sent = 0
                while True:
                    ev = await ws.next_event()
                    if ev.kind == p.TRACK:
                        if stopped.is_set():
                            continue  # audio past a barge-in is not sent
                        start, _, _, pcm = ev.track
                        await context.write(pb.SpeakResponse(audio=pb.SpeakAudio(
                            sample_index=round(start * rate), time=start, pcm16=pcm)))
                    elif ev.kind == p.FRAMES:
                        if not ev.frames.last and not stopped.is_set():
                            ws.send(p.NEXT, ev.seq + 1)  # the next sentence is synthesised while this one plays
                        if len(ev.frames):
                            await context.write(pb.SpeakResponse(frames=frame_batch_msg(ev.frames, rate)))
                            outputs.send_all(call.outputs, ev.frames, rate)
                            sent += len(ev.frames)
                            metrics.FRAMES_SENT.labels("Speak").inc(len(ev.frames))
                    elif ev.kind == p.DONE:
                        m = ev.meta
                        await context.write(pb.SpeakResponse(status=pb.SpeakStatus(
                            frames_sent=sent, audio_seconds=m["audio_seconds"], warnings=m["warnings"],
                            sentences=m["sentences"], synthesis_seconds=m["synthesis_seconds"],
                            stopped=m["stopped_at"] >= 0)))
                        metrics.AUDIO_SECONDS.labels("Speak").inc(m["audio_seconds"])
                        return
            finally:
                call.reader.cancel()
                ws.close()
                outputs.close_all(call.outputs)

    async def _read_speak_stop(self, context, call: LiveCall, ws: WorkerStream, stopped: asyncio.Event) -> None:
        """After the SpeakStart: a SpeakStop (barge-in) goes to the worker; a half-close changes nothing."""
        count = 1
        try:
            while True:
                req = await context.read()
                count += 1
                if req is grpc.aio.EOF:
                    return
                if req.WhichOneof("msg") == "stop":
                    at = req.stop.at_time
                    if not (at >= 0.0 and at < 1e7):  # also NaN
                        raise validation.invalid(f"stop.at_time={at} (message #{count}) is not a playback position; "
                                                 "send seconds >= 0 on the stream's clock")
                    if not stopped.is_set():
                        stopped.set()
                        ws.send(p.HUSH, 0, p.dumps({"at_time": at}))
                    continue
                raise validation.invalid(f"message #{count} is {req.WhichOneof('msg') or 'empty'}; after the "
                                         "SpeakStart send only a SpeakStop (or half-close)")
        except StreamError as err:
            self._reader_error(call, ws, err)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the transport failed under us
            self._reader_error(call, ws, StreamError(grpc.StatusCode.INTERNAL, f"reading the request stream failed: {exc}"))

    async def GenerateVideo(self, request, context):
        from bridge_server.video import generate_video
        await generate_video(self, request, context)

    # -- internals ---------------------------------------------------------
    async def _live_stream(self, context, call: LiveCall, open_kind: bytes, cfg: dict, fps: int, pump) -> None:
        """A bidirectional stream (audio or images): open it on a worker, send the header, then pump
        requests in and frames out until the final status."""
        ws = self.pool.open_stream()
        call.outputs = self._open_outputs(call.stream_id, fps or 30)
        try:
            ws.send(open_kind, 0, p.dumps(cfg))
            opened = await ws.next_event()
            await context.write(self._header(call.stream_id, fps, cfg["sample_rate"], opened))
            await self._run_live(context, call, ws, cfg, opened, pump)
        finally:
            ws.close()
            outputs.close_all(call.outputs)

    async def _read_first(self, context, header_name: str, body: str, fields: str = "", kind: str = "header"):
        """The first request of a stream, which must be its header."""
        try:
            first = await asyncio.wait_for(context.read(), self.cfg.header_timeout_s)
        except asyncio.TimeoutError:
            raise StreamError(grpc.StatusCode.DEADLINE_EXCEEDED,
                              f"no {header_name} within {self.cfg.header_timeout_s:g} s; send the header first") from None
        if first is grpc.aio.EOF:
            raise validation.invalid(f"the stream closed before its {header_name}; send a header, then {body}")
        if first.WhichOneof("msg") != kind:
            got = first.WhichOneof("msg") or "an empty message"
            raise validation.invalid(f"the first message must be a {header_name}, got {got}; send {kind}{fields} "
                                     f"before any {body}")
        return first

    async def _read_idle(self, context, what: str, fix: str):
        """The next request, or DEADLINE_EXCEEDED after idle_timeout_s without one."""
        try:
            async with asyncio.timeout(self.cfg.idle_timeout_s):
                return await context.read()
        except TimeoutError:
            raise StreamError(grpc.StatusCode.DEADLINE_EXCEEDED,
                              f"no {what} for {self.cfg.idle_timeout_s:g} s (idle_timeout_s); {fix}") from None

    async def _read_file(self, context) -> bytes:
        parts, total, count = [], 0, 1
        limit = self.cfg.max_video_bytes
        while True:
            req = await self._read_idle(context, "file chunk", "send the file's chunks back to back, then half-close")
            count += 1
            if req is grpc.aio.EOF:
                break
            if req.WhichOneof("msg") != "chunk":
                raise validation.invalid(f"message #{count} is {req.WhichOneof('msg') or 'empty'}; after the header "
                                         "send only chunk messages, then half-close the stream")
            total += len(req.chunk.data)
            if total > limit:
                raise StreamError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"the video passed the server's limit of {limit} bytes (max_video_bytes); "
                                  "trim or re-encode it, or raise the limit")
            parts.append(req.chunk.data)
        if not total:
            raise validation.invalid("no file chunks arrived after the header; send the video file's bytes in "
                                     "chunk messages")
        return b"".join(parts)

    async def _pump_images(self, context, call: LiveCall, ws: WorkerStream, cfg: dict,
                           arrivals: dict[int, float]) -> None:
        """Client images -> worker, with the same credit-based backpressure as audio."""
        seq, count, last_ts = 0, 1, None

        async def read() -> None:
            nonlocal seq, count, last_ts
            while True:
                req = await self._read_idle(context, "image",
                                            "send images continuously or end the stream with EndOfImages")
                count += 1
                if req is grpc.aio.EOF or req.WhichOneof("msg") == "end":
                    break
                which = req.WhichOneof("msg")
                if which == "header":
                    raise validation.invalid(f"a second CaptureHeader arrived (message #{count}); a stream has "
                                             "exactly one header")
                if which != "image":
                    raise validation.invalid(f"message #{count} is empty; set one of header, image or end")
                img = req.image
                if last_ts is not None and img.timestamp_us <= last_ts:
                    raise validation.invalid(
                        f"image #{seq + 1}: timestamp_us={img.timestamp_us} is not after the previous image's "
                        f"{last_ts}; timestamps must strictly increase (use the camera's capture time in µs)")
                last_ts = img.timestamp_us
                seq += 1
                arrivals[seq] = time.monotonic()
                await ws.send_with_credit(p.IMAGE, seq, p.pack_image(img.timestamp_us, img.width, img.height,
                                                                      img.encoding, img.data))
        if not await self._read_requests(call, ws, read):
            return
        if seq == 0:
            self._reader_error(call, ws, validation.invalid(
                "no image was received before the end of the stream; send CaptureImage messages after the header"))
            return
        await ws.send_with_credit(p.END, seq + 1)

    @contextlib.asynccontextmanager
    async def _call(self, context, rpc: str):
        if self.draining:
            await context.abort(grpc.StatusCode.UNAVAILABLE,
                                "the server is shutting down and takes no new streams; connect to another instance")
        limit = self.cfg.max_concurrent_streams
        if limit and len(self.calls) >= limit:
            metrics.STREAMS.labels(rpc, "RESOURCE_EXHAUSTED").inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"the server is serving its limit of {limit} concurrent streams "
                                "(max_concurrent_streams); retry later")
        call = LiveCall(rpc, "")
        self.calls.add(call)
        metrics.LIVE_STREAMS.labels(rpc).inc()
        started = time.monotonic()
        try:
            try:
                yield call
            except StreamError as err:
                call.code = err.code.name
                await context.abort(err.code, err.message)
            except asyncio.CancelledError:
                if call.pending_error is not None:
                    call.code = call.pending_error.code.name
                    await context.abort(call.pending_error.code, call.pending_error.message)
                call.code = "CANCELLED"
                raise
        except Exception as exc:
            if call.code == "OK" and not isinstance(exc, asyncio.CancelledError):
                call.code = "ABORTED" if type(exc).__name__ == "AbortError" else "INTERNAL"
            raise
        finally:
            self.calls.discard(call)
            metrics.LIVE_STREAMS.labels(rpc).dec()
            metrics.STREAMS.labels(rpc, call.code).inc()
            log.info("stream ended", extra={"rpc": rpc, "stream_id": call.stream_id, "code": call.code,
                                            "seconds": round(time.monotonic() - started, 3), "peer": context.peer()})

    def _open_outputs(self, stream_id: str, fps: int) -> list:
        info = outputs.StreamInfo(stream_id=stream_id, fps=fps, blendshape_names=ARKIT_NAMES, bone_names=BONE_NAMES)
        return outputs.open_outputs(self.output_targets, info)

    def _header(self, stream_id: str, fps: int, sample_rate: int, opened) -> pb.ExpressionResponse:
        return pb.ExpressionResponse(header=self._header_msg(stream_id, fps, sample_rate, opened))

    @staticmethod
    def _header_msg(stream_id: str, fps: int, sample_rate: int, opened) -> pb.ExpressionHeader:
        return pb.ExpressionHeader(
            stream_id=stream_id, blendshape_names=ARKIT_NAMES, bone_names=BONE_NAMES, fps=fps,
            lookahead_ms=opened.meta["lookahead_s"] * 1000.0, sample_rate=sample_rate,
            engine=opened.meta["engine"], api_version=API_VERSION,
            unmeasured_blendshapes=UNMEASURED if opened.meta["engine"] == CAPTURE_ENGINE else [],
            viseme_names=opened.meta.get("viseme_names", []))

    @staticmethod
    def _status_msg(sent: int, meta: dict, opened) -> pb.StreamStatus:
        return pb.StreamStatus(frames_sent=sent, audio_seconds=meta["audio_seconds"],
                               warnings=meta.get("warnings", []), engine=opened.meta["engine"],
                               face_lost_frames=meta.get("face_lost_frames", 0))

    def _status(self, sent: int, meta: dict, opened) -> pb.ExpressionResponse:
        return pb.ExpressionResponse(status=self._status_msg(sent, meta, opened))

    async def _run_live(self, context, call: LiveCall, ws: WorkerStream, cfg: dict, opened, pump) -> None:
        arrivals: dict[int, float] = {}
        pending = [0]  # frames received from the worker, not yet written

        def check_overflow(newest: int) -> None:
            # Over the bound *behind* the newest block while writes have stopped completing:
            # the client is not reading (one big block, or a burst to a reading client, is fine).
            if call.pending_error is not None or pending[0] - newest <= self.cfg.max_pending_frames:
                return
            if not call.stalled():
                asyncio.get_running_loop().call_later(0.5, check_overflow, newest)  # look again
                return
            call.interrupt(StreamError(grpc.StatusCode.RESOURCE_EXHAUSTED, (
                f"the client stopped reading: {pending[0]} frames were waiting, over the per-stream limit of "
                f"{self.cfg.max_pending_frames} (max_pending_frames); the stream was ended and frames not yet "
                "received were dropped — read responses as fast as they arrive, or use AnimateClip")))

        def on_frames(n: int) -> None:
            pending[0] += n
            check_overflow(n)

        ws.on_frames = on_frames
        reader = call.reader = asyncio.create_task(pump(context, call, ws, cfg, arrivals))
        sent = 0
        try:
            while True:
                ev = await ws.next_event()
                if ev.kind == p.FRAMES:
                    n = len(ev.frames)
                    if n:
                        call.writing = True
                        await context.write(frame_batch(ev.frames, cfg["sample_rate"]))
                        outputs.send_all(call.outputs, ev.frames, cfg["sample_rate"])
                        call.writing = False  # (capture streams: sample_rate is 1e6, time codes in microseconds)
                        call.last_progress = time.monotonic()
                        pending[0] -= n
                        sent += n
                        metrics.FRAMES_SENT.labels(call.rpc).inc(n)
                        arrived = arrivals.pop(ev.seq, None)
                        if arrived is not None:
                            lat = time.monotonic() - arrived
                            for _ in range(n):
                                metrics.FRAME_LATENCY.observe(lat)
                            metrics.WORKER_RTT.observe(ev.received - arrived)
                    else:
                        arrivals.pop(ev.seq, None)
                elif ev.kind == p.DONE:
                    await context.write(self._status(sent, ev.meta, opened))
                    metrics.AUDIO_SECONDS.labels(call.rpc).inc(ev.meta["audio_seconds"])
                    if call.drain.is_set():
                        what = "images" if call.rpc == "CaptureStream" else "audio"
                        raise StreamError(grpc.StatusCode.UNAVAILABLE,
                                          f"the server is shutting down: the {what} received so far was animated "
                                          f"and sent ({sent} frames) and the stream ended; reconnect and send "
                                          "the rest")
                    return
        finally:
            reader.cancel()

    async def _pump_audio(self, context, call: LiveCall, ws: WorkerStream, cfg: dict,
                          arrivals: dict[int, float]) -> None:
        """Client -> worker, with credit-based backpressure. Errors go to the writer via ws.fail()."""
        frame_bytes = validation.frame_bytes(cfg)
        max_bytes = int(self.cfg.max_audio_seconds * cfg["sample_rate"]) * frame_bytes
        total, seq, count, last_phone = 0, 0, 1, 0.0

        async def read() -> None:
            nonlocal total, seq, count, last_phone
            while True:
                req = await self._read_idle(context, "audio", "send audio continuously (silence is fine) or end "
                                                              "the stream with EndOfAudio")
                count += 1
                if req is grpc.aio.EOF:
                    break
                which = req.WhichOneof("msg")
                if which == "audio":
                    data = req.audio.data
                    if not data:
                        continue
                    total += len(data)
                    if total > max_bytes:
                        raise StreamError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                          f"the stream passed the server's limit of {self.cfg.max_audio_seconds:g} s "
                                          "of audio (max_audio_seconds); end it and open a new stream")
                    seq += 1
                    arrivals[seq] = time.monotonic()
                    await ws.send_with_credit(p.AUDIO, seq, data)
                elif which == "end":
                    break
                elif which == "phones":
                    rows = validation.phone_list(req.phones.phones, f"message #{count}: phones.phones")
                    if rows and rows[0][0] < last_phone - 1e-6:
                        raise validation.invalid(
                            f"message #{count}: phones.phones[0] starts at {rows[0][0]:g} s, before the previous "
                            f"message's last phone ({last_phone:g} s); send phones in time order")
                    if rows:
                        last_phone = rows[-1][0]
                        ws.send(p.PHONES, seq, p.dumps(rows))  # in order with the audio; no reply
                elif which == "header":
                    raise validation.invalid(
                        f"a second StreamHeader arrived (message #{count}); a stream has exactly one header — "
                        "open a new stream to change encoding, rate or fps")
                else:
                    raise validation.invalid(f"message #{count} is empty; set one of header, audio, phones or end")
        if not await self._read_requests(call, ws, read):
            return
        if total < frame_bytes:
            self._reader_error(call, ws, validation.invalid(
                "no audio was received before the end of the stream; send AudioChunk messages with samples "
                "after the header"))
            return
        await ws.send_with_credit(p.END, seq + 1)

    async def _read_requests(self, call: LiveCall, ws: WorkerStream, read) -> bool:
        """Run a live stream's request reader. A bad request or a failed transport ends the stream through
        ws (-> False); a SIGTERM drain stops reading and keeps what arrived for the flush (-> True)."""
        try:
            await read()
        except asyncio.CancelledError:
            if not call.drain.is_set():
                raise
        except StreamError as err:
            self._reader_error(call, ws, err)
            return False
        except Exception as exc:  # e.g. the transport failed under us
            self._reader_error(call, ws, StreamError(grpc.StatusCode.INTERNAL,
                                                     f"reading the request stream failed: {exc}"))
            return False
        return True

    @staticmethod
    def _reader_error(call: LiveCall, ws: WorkerStream, err: StreamError) -> None:
        """Queue the error behind the frames already made; if the writer is stuck on a client
        that does not read (so the queue never drains), end the call directly."""
        ws.fail(err)
        asyncio.get_running_loop().call_later(1.5, lambda: call.interrupt(err) if call.stalled() else None)

    def begin_drain(self) -> None:
        """SIGTERM: refuse new calls; live streams flush what they have and end with UNAVAILABLE."""
        self.draining = True
        for call in list(self.calls):
            call.drain.set()
            if call.reader is not None:
                call.reader.cancel()
