"""Audio -> expression: StreamExpression (live, bidirectional) and AnimateClip (a whole file)."""
from __future__ import annotations

import time

import grpc

from avatarbridge.v1 import bridge_pb2 as pb
from bridge_server import metrics, outputs, validation
from bridge_server.rpc import messages
from bridge_server.rpc.calls import Front, LiveCall, run_reader
from bridge_server.rpc.forward import Sink, forward
from bridge_server.rpc.live import EXPRESSION_FRAMES, live_stream
from bridge_server.workers import Event, StreamError, WorkerStream
from engine.worker import protocol as p
from engine.worker.specs import Opened, StreamSpec


async def stream_expression(front: Front, request_iterator, context) -> None:
    async with front.call(context, "StreamExpression") as call:
        first = await front.read_first(context, "StreamHeader", "audio", " (encoding, sample_rate, channels, fps)")
        spec = validation.stream_config(first.header, front.pool.engines)
        call.stream_id = first.header.stream_id
        await live_stream(front, context, call, p.OPEN, spec, spec.fps, spec.sample_rate, pump_audio)


class ClipSink(Sink):
    """A clip's frames, one block ahead of the client; the header waits for the first block, which carries the
    file's own sample rate (known once decoded)."""

    pull = True

    def __init__(self, context, call: LiveCall, ws: WorkerStream, fps: int, opened: Opened):
        super().__init__(context, call, ws, 0, EXPRESSION_FRAMES)
        self.fps, self.opened = fps, opened

    async def frames(self, ev: Event) -> None:
        if not self.sample_rate:
            self.sample_rate = ev.frames.sample_rate
            await self.context.write(pb.ExpressionResponse(header=messages.expression_header(
                self.call.stream_id, self.fps, self.sample_rate, self.opened)))
        await super().frames(ev)

    async def done(self, ev: Event) -> None:
        done = ev.msg
        await self.context.write(pb.ExpressionResponse(status=messages.stream_status(self.sent, done, self.opened)))
        metrics.AUDIO_SECONDS.labels("AnimateClip").inc(done.audio_seconds)


async def animate_clip(front: Front, request, context) -> None:
    async with front.call(context, "AnimateClip") as call:
        call.stream_id = request.stream_id
        limit = min(front.cfg.max_clip_seconds, front.cfg.max_audio_seconds)
        spec = validation.clip_config(request, front.pool.engines, limit)
        ws = front.pool.open_stream()
        call.outputs = front.open_outputs(call.stream_id, spec.fps)
        try:
            ws.send(p.CLIP, 0, p.pack_clip(spec, request.audio_file))
            opened = (await ws.next_event()).msg
            await forward(ws, ClipSink(context, call, ws, spec.fps, opened))
        finally:
            ws.close()
            outputs.close_all(call.outputs)


async def pump_audio(front: Front, context, call: LiveCall, ws: WorkerStream, spec: StreamSpec,
                     arrivals: dict[int, float]) -> None:
    """Client -> worker, with credit-based backpressure. Errors go to the writer via call.fail()."""
    frame_bytes = spec.frame_bytes
    max_seconds = front.cfg.max_audio_seconds
    max_bytes = int(max_seconds * spec.sample_rate) * frame_bytes
    total, seq, count, last_phone = 0, 0, 1, 0.0

    async def read() -> None:
        async with front.idle_reads(context, "audio", "send audio continuously (silence is fine) or end the stream "
                                                      "with EndOfAudio") as reads:
            await read_all(reads)

    async def read_all(reads) -> None:
        nonlocal total, seq, count, last_phone
        while True:
            req = await reads.read()
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
                                      f"the stream passed the server's limit of {max_seconds:g} s "
                                      "of audio (max_audio_seconds); end it and open a new stream")
                seq += 1
                arrivals[seq] = time.monotonic()
                await ws.send_with_credit(p.AUDIO, seq, data)
            elif which == "end":
                call.end_message = True
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
    if not await run_reader(call, ws, read):
        return
    if total < frame_bytes:
        call.fail(ws, validation.invalid(
            "no audio was received before the end of the stream; send AudioChunk messages with samples "
            "after the header"))
        return
    await ws.send_with_credit(p.END, seq + 1)
