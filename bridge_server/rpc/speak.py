"""Speak: text -> per sentence, its audio then the frames it completes, on one clock; a SpeakStop (barge-in)
eases the face to rest and drops the audio not yet sent."""
from __future__ import annotations

import asyncio

import grpc

from avatarbridge.v1 import bridge_pb2 as pb
from bridge_server import metrics, outputs, validation
from bridge_server.rpc import messages
from bridge_server.rpc.calls import Front, LiveCall, run_reader
from bridge_server.rpc.forward import Sink, forward
from bridge_server.workers import Event, WorkerStream
from engine.worker import protocol as p
from engine.worker.specs import Hush


class SpeakSink(Sink):
    """Each sentence's audio then its frames; the next sentence is synthesised while this one plays (asked for
    with NEXT), and nothing past a barge-in is asked for or sent."""

    pull = True

    def __init__(self, context, call: LiveCall, ws: WorkerStream, sample_rate: int, stopped: asyncio.Event):
        super().__init__(context, call, ws, sample_rate, (pb.SpeakResponse, pb.SpeakResponse.FRAMES_FIELD_NUMBER))
        self.stopped = stopped

    def ask_next(self, ev: Event) -> bool:
        return super().ask_next(ev) and not self.stopped.is_set()

    async def track(self, ev: Event) -> None:
        if self.stopped.is_set():
            return  # audio past a barge-in is not sent
        start, _, _, pcm = ev.track
        await self.context.write(pb.SpeakResponse(audio=pb.SpeakAudio(
            sample_index=round(start * self.sample_rate), time=start, pcm16=pcm)))

    async def done(self, ev: Event) -> None:
        done = ev.msg
        await self.context.write(pb.SpeakResponse(status=pb.SpeakStatus(
            frames_sent=self.sent, audio_seconds=done.audio_seconds, warnings=done.warnings,
            sentences=done.sentences, synthesis_seconds=done.synthesis_seconds, stopped=done.stopped_at >= 0)))
        metrics.AUDIO_SECONDS.labels("Speak").inc(done.audio_seconds)


async def speak(front: Front, request_iterator, context) -> None:
    async with front.call(context, "Speak") as call:
        first = await front.read_first(context, "SpeakStart", "stop", " (text, voice, language, fps)", kind="start")
        spec = validation.speak_config(first.start, front.pool.voices, front.pool.engines)
        call.stream_id = first.start.stream_id
        ws = front.pool.open_stream()
        call.outputs = front.open_outputs(call.stream_id, spec.fps)
        stopped = asyncio.Event()
        call.reader = asyncio.create_task(run_reader(call, ws, lambda: _read_stops(front, context, ws, stopped)))
        try:
            ws.send(p.SPEAK, 0, spec.to_json())
            opened = (await ws.next_event()).msg
            rate = opened.sample_rate
            await context.write(pb.SpeakResponse(header=pb.SpeakHeader(
                stream_id=call.stream_id, voice=opened.voice, language=opened.language,
                tts_engine=opened.tts_engine, sample_rate=rate, lookahead_ms=0.0,
                expression=messages.expression_header(call.stream_id, spec.fps, rate, opened))))
            await forward(ws, SpeakSink(context, call, ws, rate, stopped))
        finally:
            call.reader.cancel()
            ws.close()
            outputs.close_all(call.outputs)


async def _read_stops(front: Front, context, ws: WorkerStream, stopped: asyncio.Event) -> None:
    """After the SpeakStart: a SpeakStop (barge-in) goes to the worker; a half-close changes nothing."""
    count = 1
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
                ws.send(p.HUSH, 0, Hush(at_time=at).to_json())
            continue
        raise validation.invalid(f"message #{count} is {req.WhichOneof('msg') or 'empty'}; after the "
                                 "SpeakStart send only a SpeakStop (or half-close)")
