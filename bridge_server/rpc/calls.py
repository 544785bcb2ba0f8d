"""What every RPC handler shares: the server's front state, one call's book-keeping, reading requests, and the
one path by which an error ends a stream."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc

from bridge_server import metrics, outputs, validation
from bridge_server.config import ServerConfig
from bridge_server.workers import StreamError, WorkerPool, WorkerStream
from engine.rig import ARKIT_NAMES, BONE_NAMES

log = logging.getLogger("bridge_server.service")
# A reader's error waits behind the frames already queued for the client; if the writer has made no progress for
# this long (a client that does not read), the call ends at once instead.
STALL_S = 1.0
STALL_CHECK_S = 1.5
STATUS_WAIT_S = 1.0  # how long an ended call waits to hand its status to a client that is not reading


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
        self.reader: asyncio.Task | None = None  # the request reader of a bidirectional stream
        self.outputs: list = []  # plugin-free mirrors of this stream (bridge_server.outputs)
        self.end_message = False  # the client sent EndOfAudio (its half-close should follow)

    def interrupt(self, err: StreamError) -> None:
        """End the call with err even while its task is blocked in a write."""
        if self.pending_error is None:
            self.pending_error = err
            self.task.cancel()

    def stalled(self, seconds: float = STALL_S) -> bool:
        return self.writing and time.monotonic() - self.last_progress > seconds

    def fail(self, ws: WorkerStream, err: StreamError) -> None:
        """The one way a stream's own error ends it: queued behind the frames already made (so none is lost),
        and if the writer is stuck on a client that does not read (the queue never drains), ended directly."""
        ws.fail(err)
        asyncio.get_running_loop().call_later(STALL_CHECK_S, lambda: self.interrupt(err) if self.stalled() else None)


class Front:
    """The gRPC front's state shared by the RPC handlers: settings, worker pools, live calls, output targets."""

    def __init__(self, cfg: ServerConfig, pool: WorkerPool, version: str, video_pool: WorkerPool | None = None):
        self.cfg, self.pool, self.version = cfg, pool, version
        self.video_pool = video_pool  # engine.video worker (GenerateVideo); None = off
        self.calls: set[LiveCall] = set()
        self.draining = False
        self.output_targets = outputs.parse_targets(cfg.outputs)

    @contextlib.asynccontextmanager
    async def call(self, context, rpc: str):
        """One RPC's lifetime: admission (drain, stream limit), metrics and the log line, and the mapping of
        StreamError / interrupts to the call's gRPC status."""
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
                    # A client that stopped reading takes the status only when it reads again: it stays queued
                    # behind the frames already sent (the client gets it then) and the call ends here instead
                    # of holding its slot until the client reads, disconnects or passes its deadline.
                    try:
                        await asyncio.wait_for(context.abort(call.pending_error.code, call.pending_error.message),
                                               STATUS_WAIT_S)
                    except asyncio.TimeoutError:
                        raise asyncio.CancelledError from None
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

    def open_outputs(self, stream_id: str, fps: int) -> list:
        info = outputs.StreamInfo(stream_id=stream_id, fps=fps, blendshape_names=ARKIT_NAMES, bone_names=BONE_NAMES)
        return outputs.open_outputs(self.output_targets, info)

    def begin_drain(self) -> None:
        """SIGTERM: refuse new calls; live streams flush what they have and end with UNAVAILABLE."""
        self.draining = True
        for call in list(self.calls):
            call.drain.set()
            if call.reader is not None:
                call.reader.cancel()

    # -- reading requests ----------------------------------------------------
    async def read_first(self, context, header_name: str, body: str, fields: str = "", kind: str = "header"):
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

    def idle_reads(self, context, what: str, fix: str) -> "IdleReads":
        """The stream's requests after its header, each within idle_timeout_s of asking (else DEADLINE_EXCEEDED
        naming `what` and `fix`). Use as `async with front.idle_reads(...) as reads: await reads.read()`."""
        return IdleReads(context, self.cfg.idle_timeout_s, what, fix)

    async def read_file(self, context) -> bytes:
        """A file sent as chunk messages after the header, up to max_video_bytes."""
        async with self.idle_reads(context, "file chunk", "send the file's chunks back to back, then half-close") as reads:
            return await self._read_chunks(reads, self.cfg.max_video_bytes)

    @staticmethod
    async def _read_chunks(reads: "IdleReads", limit: int) -> bytes:
        parts, total, count = [], 0, 1
        while True:
            req = await reads.read()
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


class IdleReads:
    """One stream's reads with an idle limit, and no timer per message.

    A timeout around each read made, scheduled and cancelled a timer for every chunk: 17 of the front's 37 Python
    calls per chunk (bench/seam_calls.py). Here one timer per stream fires at most once per idle_s: it re-arms from
    the time the read in progress began, and cancels that read only when it has waited idle_s. Time spent outside
    a read (waiting for worker credit, say) does not count, as with a timeout around each read."""

    def __init__(self, context, idle_s: float, what: str, fix: str):
        self.context, self.idle_s, self.what, self.fix = context, idle_s, what, fix
        self.began = 0.0  # when the read in progress began; 0 = not reading
        self.task: asyncio.Task | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.expired = False

    async def __aenter__(self) -> "IdleReads":
        return self

    async def __aexit__(self, *exc) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    async def read(self):
        self.began = time.monotonic()
        if self.timer is None:
            self.task = asyncio.current_task()
            self.timer = asyncio.get_running_loop().call_later(self.idle_s, self._check)
        try:
            return await self.context.read()
        except asyncio.CancelledError:
            # Ours only if this timer cancelled the read and nobody else cancelled the task as well.
            if self.expired and self.task.uncancel() == 0:
                raise StreamError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                  f"no {self.what} for {self.idle_s:g} s (idle_timeout_s); {self.fix}") from None
            raise
        finally:
            self.began = 0.0

    def _check(self) -> None:
        self.timer = None
        if not self.began:
            return  # not reading now; the next read arms the timer again
        waited = time.monotonic() - self.began
        if waited >= self.idle_s:
            self.expired = True
            self.task.cancel()
        else:
            self.timer = asyncio.get_running_loop().call_later(self.idle_s - waited, self._check)


async def run_reader(call: LiveCall, ws: WorkerStream, read) -> bool:
    """Run a bidirectional stream's request reader. A bad request or a failed transport ends the stream through
    call.fail (-> False); a SIGTERM drain stops reading and keeps what arrived for the flush (-> True)."""
    try:
        await read()
    except asyncio.CancelledError:
        if not call.drain.is_set():
            raise
    except StreamError as err:
        call.fail(ws, err)
        return False
    except Exception as exc:  # e.g. the transport failed under us
        call.fail(ws, StreamError(grpc.StatusCode.INTERNAL, f"reading the request stream failed: {exc}"))
        return False
    return True
