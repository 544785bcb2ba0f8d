"""Bidirectional streams (StreamExpression, CaptureStream): requests pumped to a worker with credit-based
backpressure while its frames are forwarded, with a bound on frames a client leaves unread."""
from __future__ import annotations

import asyncio
import time

import grpc

from avatarbridge.v1 import bridge_pb2 as pb
from bridge_server import metrics, outputs
from bridge_server.rpc import messages
from bridge_server.rpc.calls import Front, LiveCall
from bridge_server.rpc.forward import Sink, forward
from bridge_server.workers import Event, StreamError, WorkerStream
from engine.worker.specs import Opened


EXPRESSION_FRAMES = (pb.ExpressionResponse, pb.ExpressionResponse.FRAMES_FIELD_NUMBER)


class LiveSink(Sink):
    """Frames of a live stream: latency metrics per input chunk, and the stream ends when its client stops
    reading while frames pile up past max_pending_frames."""

    def __init__(self, front: Front, context, call: LiveCall, ws: WorkerStream, sample_rate: int):
        super().__init__(context, call, ws, sample_rate, EXPRESSION_FRAMES)
        self.front = front
        self.opened: Opened | None = None  # the worker's OPENED, once it has come (live_stream)
        self.arrivals: dict[int, float] = {}  # input seq -> when it arrived (frame latency)
        self.pending = 0  # frames received from the worker, not yet written
        ws.on_frames = self._on_frames

    def _on_frames(self, n: int) -> None:
        self.pending += n
        self._check_overflow(n)

    def _check_overflow(self, newest: int) -> None:
        # Over the bound *behind* the newest block while writes have stopped completing:
        # the client is not reading (one big block, or a burst to a reading client, is fine).
        limit = self.front.cfg.max_pending_frames
        if self.call.pending_error is not None or self.pending - newest <= limit:
            return
        if not self.call.stalled():
            asyncio.get_running_loop().call_later(0.5, self._check_overflow, newest)  # look again
            return
        self.call.interrupt(StreamError(grpc.StatusCode.RESOURCE_EXHAUSTED, (
            f"the client stopped reading: {self.pending} frames were waiting, over the per-stream limit of "
            f"{limit} (max_pending_frames); the stream was ended and frames not yet "
            "received were dropped — read responses as fast as they arrive, or use AnimateClip")))

    async def frames(self, ev: Event) -> None:
        n = len(ev.frames)
        if not n:
            self.arrivals.pop(ev.seq, None)
            return
        # (capture streams: sample_rate is 1e6, time codes in microseconds)
        await self.write_frames(ev.frames)
        self.pending -= n
        arrived = self.arrivals.pop(ev.seq, None)
        if arrived is not None:
            now = time.monotonic()
            lat = now - arrived
            for _ in range(n):
                metrics.FRAME_LATENCY.observe(lat)
            metrics.WORKER_RTT.observe(ev.received - arrived)
            timing = ev.frames.timing
            if timing is not None:
                received, computed = timing
                metrics.STAGE_TO_WORKER.observe(received - arrived)
                metrics.STAGE_IN_WORKER.observe(computed - received)
                metrics.STAGE_FROM_WORKER.observe(ev.received - computed)
                metrics.STAGE_WRITE.observe(now - ev.received)

    async def done(self, ev: Event) -> None:
        done = ev.msg
        await self.context.write(pb.ExpressionResponse(status=messages.stream_status(self.sent, done, self.opened)))
        metrics.AUDIO_SECONDS.labels(self.call.rpc).inc(done.audio_seconds)
        if self.call.end_message and not self.call.drain.is_set():
            await await_half_close(self.context)
        if self.call.drain.is_set():
            what = "images" if self.call.rpc == "CaptureStream" else "audio"
            raise StreamError(grpc.StatusCode.UNAVAILABLE,
                              f"the server is shutting down: the {what} received so far was animated "
                              f"and sent ({self.sent} frames) and the stream ended; reconnect and send the rest")


async def await_half_close(context, timeout_s: float = 1.0) -> None:
    """After EndOfAudio the client half-closes. Ending the call before that half-close has arrived makes gRPC
    follow the trailers with RST_STREAM; a proxy in between (HAProxy 2.6, deploy/haproxy) passes that on as a
    reset, and the client sees CANCELLED instead of OK. So wait for it, briefly (the final status has already
    been written)."""
    try:
        async with asyncio.timeout(timeout_s):
            while await context.read() is not grpc.aio.EOF:
                pass  # anything after EndOfAudio is ignored, as before
    except (TimeoutError, grpc.RpcError, asyncio.InvalidStateError):
        pass


async def live_stream(front: Front, context, call: LiveCall, open_kind: bytes, spec, fps: int, sample_rate: int,
                      pump) -> None:
    """Open the stream on a worker with its spec, send the header, then pump requests in (pump(front, context,
    call, ws, spec, arrivals)) and frames out until the final status. sample_rate is the clock of the frames'
    time codes (the audio's rate; 1e6 for capture, whose time codes are microseconds)."""
    ws = front.pool.open_stream()
    call.outputs = front.open_outputs(call.stream_id, fps or 30)
    try:
        sink = LiveSink(front, context, call, ws, sample_rate)  # before any frames can arrive: it counts them
        ws.send(open_kind, 0, spec.to_json())
        # The requests are read from now on, not once the worker's OPENED is back: the worker takes a stream's
        # messages in order, so the first chunk follows the OPEN at once instead of one worker round trip
        # later. When many streams start together those first chunks are the level's slowest (about 1 % of
        # a 10 s stream's chunks at 100 ms: its p99).
        reader = call.reader = asyncio.create_task(pump(front, context, call, ws, spec, sink.arrivals))
        try:
            sink.opened = (await ws.next_event()).msg
            await context.write(pb.ExpressionResponse(
                header=messages.expression_header(call.stream_id, fps, sample_rate, sink.opened)))
            await forward(ws, sink)
        finally:
            reader.cancel()
    finally:
        ws.close()
        outputs.close_all(call.outputs)
