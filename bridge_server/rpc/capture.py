"""Face capture: CaptureStream (live camera images) and CaptureVideo (a whole video file, its audio passed back)."""
from __future__ import annotations

import time

import grpc

from avatarbridge.v1 import bridge_pb2 as pb
from bridge_server import outputs, validation
from bridge_server.rpc import messages
from bridge_server.rpc.calls import Front, LiveCall, run_reader
from bridge_server.rpc.forward import Sink, forward
from bridge_server.rpc.live import live_stream
from bridge_server.rpc.messages import MICROS
from bridge_server.workers import Event, WorkerStream
from engine.worker import protocol as p
from engine.worker.specs import CaptureSpec, Opened


async def capture_stream(front: Front, request_iterator, context) -> None:
    async with front.call(context, "CaptureStream") as call:
        first = await front.read_first(context, "CaptureHeader", "images")
        spec = validation.capture_config(first.header, "header", front.cfg)
        call.stream_id = first.header.stream_id
        await live_stream(front, context, call, p.CAPTURE, spec, first.header.fps, MICROS, pump_images)


class CaptureVideoSink(Sink):
    """A video's frames and its audio track, each one block ahead of the client; time codes in microseconds."""

    pull = True

    def __init__(self, context, call: LiveCall, ws: WorkerStream, opened: Opened):
        super().__init__(context, call, ws, MICROS,
                         (pb.CaptureVideoResponse, pb.CaptureVideoResponse.FRAMES_FIELD_NUMBER))
        self.opened = opened

    async def track(self, ev: Event) -> None:
        start, rate, ch, pcm = ev.track
        self.ws.send(p.NEXT, ev.seq + 1)
        await self.context.write(pb.CaptureVideoResponse(audio=pb.AudioTrackChunk(
            start_time=start, sample_rate=rate, channels=ch, pcm16=pcm)))

    async def done(self, ev: Event) -> None:
        await self.context.write(pb.CaptureVideoResponse(
            status=messages.stream_status(self.sent, ev.msg, self.opened)))


async def capture_video(front: Front, request_iterator, context) -> None:
    async with front.call(context, "CaptureVideo") as call:
        first = await front.read_first(context, "CaptureVideoHeader", "file chunks")
        spec = validation.capture_config(first.header, "header", front.cfg, skip_audio=first.header.skip_audio)
        call.stream_id = first.header.stream_id
        data = await front.read_file(context)
        ws = front.pool.open_stream()
        try:
            ws.send(p.VIDEO, 0, p.pack_clip(spec, data))
            del data
            opened = (await ws.next_event()).msg
            info = opened.video
            await context.write(pb.CaptureVideoResponse(video=pb.VideoInfo(
                width=info.width, height=info.height, fps=info.fps, duration=info.duration, codec=info.codec,
                has_audio=info.has_audio, audio_sample_rate=info.audio_sample_rate,
                audio_channels=info.audio_channels)))
            fps = round(info.fps)
            await context.write(pb.CaptureVideoResponse(
                header=messages.expression_header(call.stream_id, fps, MICROS, opened)))
            call.outputs = front.open_outputs(call.stream_id, fps or 30)
            await forward(ws, CaptureVideoSink(context, call, ws, opened))
        finally:
            ws.close()
            outputs.close_all(call.outputs)


async def pump_images(front: Front, context, call: LiveCall, ws: WorkerStream, spec: CaptureSpec,
                      arrivals: dict[int, float]) -> None:
    """Client images -> worker, with the same credit-based backpressure as audio."""
    seq, count, last_ts = 0, 1, None

    async def read() -> None:
        async with front.idle_reads(context, "image", "send images continuously or end the stream with "
                                                      "EndOfImages") as reads:
            await read_all(reads)

    async def read_all(reads) -> None:
        nonlocal seq, count, last_ts
        while True:
            req = await reads.read()
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
    if not await run_reader(call, ws, read):
        return
    if seq == 0:
        call.fail(ws, validation.invalid(
            "no image was received before the end of the stream; send CaptureImage messages after the header"))
        return
    await ws.send_with_credit(p.END, seq + 1)
