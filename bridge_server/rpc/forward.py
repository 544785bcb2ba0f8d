"""The one loop that forwards a worker's events to a gRPC stream, for every RPC.

A stream's worker sends FRAMES blocks, audio TRACK chunks (CaptureVideo, Speak) and one DONE. The loop is the
same for every RPC; what differs is how each event becomes the RPC's response messages and whether the worker
makes the next block only when asked (clips, video files, Speak sentences: one block ahead of the client). Each
RPC family says that in a small Sink subclass next to its handler.
"""
from __future__ import annotations

import time

from bridge_server import metrics, outputs
from bridge_server.rpc import messages
from bridge_server.rpc.calls import LiveCall
from bridge_server.workers import Event, WorkerStream
from engine.worker import protocol as p


async def forward(ws: WorkerStream, sink: "Sink") -> None:
    """Worker events -> responses, until the worker's DONE has been written."""
    while True:
        ev = await ws.next_event()
        if ev.kind == p.FRAMES:
            await sink.frames(ev)
        elif ev.kind == p.TRACK:
            await sink.track(ev)
        elif ev.kind == p.DONE:
            await sink.done(ev)
            return


class Sink:
    """Frames as FrameBatch messages (wrapped in the RPC's response type), mirrored to the stream's outputs and
    counted; subclasses add audio tracks, credit and their final status."""

    pull = False  # the worker makes each next block only when asked (NEXT)

    def __init__(self, context, call: LiveCall, ws: WorkerStream, sample_rate: int, response):
        self.context, self.call, self.ws = context, call, ws
        self.sample_rate = sample_rate
        self.response = response  # (the RPC's response type, the field number of its FrameBatch)
        self.frames_sent = metrics.FRAMES_SENT.labels(call.rpc)
        self.sent = 0

    def ask_next(self, ev: Event) -> bool:
        return self.pull and not ev.frames.last

    async def frames(self, ev: Event) -> None:
        if self.ask_next(ev):
            self.ws.send(p.NEXT, ev.seq + 1)  # one block ahead of the client
        if len(ev.frames):
            await self.write_frames(ev.frames)

    async def write_frames(self, block) -> None:
        call, n = self.call, len(block)
        call.writing = True
        await self.context.write(messages.frames_response(*self.response, block, self.sample_rate))
        call.writing = False
        call.last_progress = time.monotonic()
        outputs.send_all(call.outputs, block, self.sample_rate)
        self.sent += n
        self.frames_sent.inc(n)

    async def track(self, ev: Event) -> None:
        """An audio chunk of the stream (only the RPCs that carry audio override this)."""

    async def done(self, ev: Event) -> None:
        raise NotImplementedError
