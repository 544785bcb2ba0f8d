"""The server's side of the engine workers: spawn, route, supervise, restart.

One ZeroMQ ROUTER socket on loopback; each worker process connects a DEALER
with its own identity. A stream is pinned to one worker (its state lives
there). If a worker dies or stops answering, every stream it served gets an
UNAVAILABLE error at once and a fresh worker takes its slot.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import os
import sys
import time
from dataclasses import dataclass, field

import grpc
import zmq

from bridge_server import metrics
from engine.rig import NUM_BLENDSHAPES, NUM_BONES
from engine.worker import protocol as p
from engine.worker.specs import Done, EngineInfo, ErrorReply, Opened, VoiceInfo, WorkerInfo

log = logging.getLogger("bridge_server.workers")
# Plain ints: zmq's enum flags cost a Python-level __or__ on every call.
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE_NOBLOCK = int(zmq.NOBLOCK) | int(zmq.SNDMORE)
# A worker that refuses a message gets this long to show it exited (one status per event: _fail_unreachable).
UNREACHABLE_GRACE_S = 2.0


class StreamError(Exception):
    """Ends a stream with a gRPC status code and a message for the client."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Event:
    kind: bytes  # protocol.FRAMES / DONE / ERROR / OPENED
    seq: int = 0
    msg: Opened | Done | ErrorReply | None = None  # OPENED / DONE / ERROR, decoded once (engine/worker/specs.py)
    frames: p.FrameBlock | None = None  # FRAMES
    received: float = 0.0
    track: tuple | None = None  # TRACK: (start seconds, sample rate, channels, pcm16 bytes)


_REPLIES = {p.OPENED: Opened, p.DONE: Done, p.ERROR: ErrorReply}  # typed replies, by message kind


class WorkerStream:
    """One stream's channel to its worker: commands out, events in."""

    def __init__(self, pool: "WorkerPool", sid: int, worker: "WorkerHandle", max_inflight: int):
        self.pool, self.sid, self.worker = pool, sid, worker
        self.events: asyncio.Queue[Event | StreamError] = asyncio.Queue()
        self.inflight = 0
        self.max_inflight = max_inflight
        self._credit = asyncio.Event()
        self._credit.set()
        self.closed = False
        self.on_frames = lambda n: None  # hook for the per-stream outbound bound

    def send(self, kind: bytes, seq: int = 0, body: bytes = b"") -> None:
        if not self.closed:
            self.pool.send(self.worker, self.sid, p.pack(kind, self.sid, seq, body))

    async def send_with_credit(self, kind: bytes, seq: int, body: bytes = b"") -> None:
        """Send a command that gets a reply, waiting while too many are in flight (backpressure)."""
        while self.inflight >= self.max_inflight:
            self._credit.clear()
            await self._credit.wait()
        self.inflight += 1
        self.send(kind, seq, body)

    def deliver(self, ev: Event | StreamError) -> None:
        if isinstance(ev, Event) and ev.kind in (p.FRAMES, p.ERROR):
            self.inflight = max(0, self.inflight - 1) if ev.kind == p.FRAMES else 0
            self._credit.set()
            if ev.kind == p.FRAMES:
                self.on_frames(len(ev.frames))
        self.events.put_nowait(ev)

    def fail(self, err: StreamError) -> None:
        self.inflight = 0
        self._credit.set()
        self.events.put_nowait(err)

    async def next_event(self) -> Event:
        ev = await self.events.get()
        if isinstance(ev, StreamError):
            raise ev
        if ev.kind == p.ERROR:
            err = ev.msg
            raise StreamError(getattr(grpc.StatusCode, err.code, grpc.StatusCode.INTERNAL), err.message)
        return ev

    def close(self) -> None:
        if not self.closed:
            self.send(p.CLOSE)
            self.closed = True
            self.pool.release(self)


@dataclass
class WorkerHandle:
    slot: int
    identity: bytes
    proc: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    streams: dict[int, WorkerStream] = field(default_factory=dict)
    last_seen: float = 0.0
    pid: int = 0
    alive: bool = True
    outbox: list = field(default_factory=list)  # (sid, message) queued for the next flush (WorkerPool.send)
    killed_why: str = ""  # set by the watchdog: why the worker's streams ended


class WorkerPool:
    def __init__(self, count: int, worker_timeout_s: float = 10.0, max_inflight: int = 8,
                 log_level: str = "info", log_format: str = "json", module: str = "engine.worker",
                 extra_args: list[str] | None = None):
        self.count = count
        # Another worker kind (the video engine) reuses this pool: its module and args.
        self.module, self.extra_args = module, list(extra_args or [])
        self.worker_timeout_s = worker_timeout_s
        self.max_inflight = max_inflight
        self.log_args = ["--log-level", log_level, "--log-format", log_format]
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a vanished worker raises instead of dropping
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        # A plain socket driven by the event loop's reader callback: zmq.asyncio made a
        # future per message, which dominated the front's CPU at 100+ streams.
        self._drain_scheduled = False
        self._flush_workers: list[WorkerHandle] = []  # workers with queued messages
        self.slots: list[WorkerHandle | None] = [None] * count
        self.by_identity: dict[bytes, WorkerHandle] = {}
        self.engines: list[EngineInfo] = []  # the engines a worker's READY named (expression, or the video model)
        self.capture_engine: EngineInfo | None = None  # the capture engine, from the same READY
        self.voices: list[VoiceInfo] = []  # Speak voices the workers have
        self._sids = itertools.count(1)
        self._gen = itertools.count()
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._failed_starts = 0  # consecutive workers that died before READY (crash-loop backoff)
        self._start_failure: asyncio.Future | None = None

    # -- lifecycle ---------------------------------------------------------
    async def start(self, timeout_s: float = 60.0) -> None:
        asyncio.get_running_loop().add_reader(self.sock.getsockopt(zmq.FD), self._on_readable)
        self._spawn_task(self._watchdog())
        self._start_failure = asyncio.get_running_loop().create_future()
        for slot in range(self.count):
            await self._launch(slot)
        all_ready = asyncio.ensure_future(self._all_ready())
        done, _ = await asyncio.wait({all_ready, self._start_failure}, timeout=timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._start_failure in done:
            all_ready.cancel()
            await self.stop()
            raise RuntimeError(self._start_failure.result())
        if not done:
            await self.stop()
            raise RuntimeError(f"engine workers did not start within {timeout_s:.0f} s")
        self._start_failure = None

    async def _all_ready(self) -> None:
        for h in self.slots:
            await h.ready.wait()

    async def stop(self) -> None:
        self._stopping = True
        self._flush_sends()
        for h in self.slots:
            if h and h.proc and h.proc.returncode is None:
                self._send_raw(h, p.pack(p.STOP))
        procs = [h.proc for h in self.slots if h and h.proc]
        try:
            await asyncio.wait_for(asyncio.gather(*(pr.wait() for pr in procs)), 5)
        except asyncio.TimeoutError:
            for pr in procs:
                if pr.returncode is None:
                    pr.kill()
        for t in self._tasks:
            t.cancel()
        asyncio.get_running_loop().remove_reader(self.sock.getsockopt(zmq.FD))
        self.sock.close(0)
        self.ctx.term()

    async def _launch(self, slot: int) -> None:
        identity = f"w{slot}-{next(self._gen)}".encode()
        h = WorkerHandle(slot, identity, last_seen=time.monotonic())
        self.slots[slot] = h
        self.by_identity[identity] = h
        h.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, "--connect", self.endpoint,
            "--identity", identity.decode(), *self.log_args, *self.extra_args, env=_worker_env())
        h.pid = h.proc.pid
        self._spawn_task(self._supervise(h))

    async def _supervise(self, h: WorkerHandle) -> None:
        rc = await h.proc.wait()
        h.alive = False
        self.by_identity.pop(h.identity, None)
        metrics.WORKERS_ALIVE.set(sum(1 for w in self.slots if w and w.alive and w.ready.is_set()))
        if self._stopping:
            return
        log.error("engine worker exited", extra={"worker": h.identity.decode(), "pid": h.pid, "returncode": rc,
                                                 "streams_lost": len(h.streams)})
        why = h.killed_why or f"exited with code {rc}"
        err = StreamError(grpc.StatusCode.UNAVAILABLE,
                          f"the engine worker serving this stream (pid {h.pid}) {why}; "
                          "the stream cannot continue — open a new stream and resend the audio")
        for ws in list(h.streams.values()):
            ws.fail(err)
        h.streams.clear()
        metrics.WORKER_RESTARTS.inc()
        if not h.ready.is_set():
            msg = (f"engine worker (pid {h.pid}) exited with code {rc} before it was ready; "
                   "its log lines above say why")
            if self._start_failure is not None and not self._start_failure.done():
                self._start_failure.set_result(msg)
                return
            # Crash loop after startup: back off instead of spinning.
            self._failed_starts += 1
            await asyncio.sleep(min(10.0, 0.25 * 2 ** self._failed_starts))
        await self._launch(h.slot)

    async def _watchdog(self) -> None:
        """Kill workers that hold streams but have gone silent (hung engine)."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for h in self.slots:
                if (h and h.alive and h.ready.is_set() and h.proc.returncode is None
                        and now - h.last_seen > self.worker_timeout_s):
                    log.error("engine worker unresponsive; killing it", extra={"worker": h.identity.decode(),
                                                                               "pid": h.pid})
                    # A stopped (SIGSTOP) or hung worker: only its own streams fail, with this reason.
                    h.killed_why = (f"sent nothing for {now - h.last_seen:.1f} s (worker_timeout_s "
                                    f"{self.worker_timeout_s:g}) and was killed")
                    h.proc.kill()

    def _spawn_task(self, coro) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # -- routing -----------------------------------------------------------
    def _on_readable(self) -> None:
        """Drain every queued worker message. zmq's FD is edge-triggered: only a drain to
        EAGAIN re-arms it, and a send may swallow an edge (see _send_raw)."""
        self._drain_scheduled = False
        now = time.monotonic()
        for _ in range(10_000):  # bounded so one busy tick cannot starve the event loop
            try:
                msg = self.sock.recv_multipart(_NOBLOCK)
            except zmq.Again:
                return
            self._dispatch(msg, now)
        self._schedule_drain()

    def _schedule_drain(self) -> None:
        if not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._on_readable)

    def _dispatch(self, msg: list[bytes], now: float) -> None:
        h = self.by_identity.get(msg[0])
        if h is None:
            return  # a worker we already buried
        h.last_seen = now
        for part in msg[1:]:  # a worker sends the replies of one batch as one multipart message
            self._dispatch_one(h, part, now)

    def _dispatch_one(self, h: WorkerHandle, part: bytes, now: float) -> None:
        kind, sid, seq, body = p.unpack(part)
        if kind == p.BEAT:
            return
        if kind == p.READY:
            info = WorkerInfo.from_json(body)
            self.engines = info.engines
            self.capture_engine = info.capture_engine
            self.voices = info.voices
            h.ready.set()
            self._failed_starts = 0
            metrics.WORKERS_ALIVE.set(sum(1 for w in self.slots if w and w.alive and w.ready.is_set()))
            log.info("engine worker ready", extra={"worker": h.identity.decode(), "pid": info.pid})
            return
        ws = h.streams.get(sid)
        if ws is None:
            return  # the stream ended already; late replies are dropped on purpose
        if kind == p.FRAMES:
            ws.deliver(Event(kind, seq, frames=p.unpack_frames(body, NUM_BLENDSHAPES, NUM_BONES), received=now))
        elif kind == p.TRACK:
            ws.deliver(Event(kind, seq, track=p.unpack_track(body), received=now))
        else:
            ws.deliver(Event(kind, seq, _REPLIES[kind].from_json(body), received=now))

    def send(self, h: WorkerHandle, sid: int, msg: bytes) -> None:
        """Queue a message for h; everything queued during one event-loop pass leaves as one multipart message
        per worker (_flush_sends), so ZeroMQ's I/O thread is woken once per pass instead of once per chunk."""
        if not h.outbox:
            self._flush_workers.append(h)
            if len(self._flush_workers) == 1:
                asyncio.get_running_loop().call_soon(self._flush_sends)
        h.outbox.append((sid, msg))

    def _flush_sends(self) -> None:
        workers, self._flush_workers = self._flush_workers, []
        for h in workers:
            box, h.outbox = h.outbox, []
            if self._send_raw(h, *(msg for _, msg in box)):
                continue
            self._spawn_task(self._fail_unreachable(h, {sid for sid, _ in box}))

    async def _fail_unreachable(self, h: WorkerHandle, sids: set[int]) -> None:
        """A worker that cannot take messages has usually just died: give its process a moment to be reaped, so
        that _supervise ends its streams with the one status that says how it exited. Only a worker still running
        (but not accepting messages) ends them here."""
        try:
            await asyncio.wait_for(asyncio.shield(h.proc.wait()), UNREACHABLE_GRACE_S)
            return
        except asyncio.TimeoutError:
            pass
        err = StreamError(grpc.StatusCode.UNAVAILABLE, f"the engine worker serving this stream (pid {h.pid}) "
                          "does not accept messages; open a new stream and resend the audio")
        for sid in sids:
            ws = h.streams.get(sid)
            if ws:
                ws.fail(err)

    def _send_raw(self, h: WorkerHandle, *msgs: bytes) -> bool:
        try:
            self.sock.send_multipart((h.identity, *msgs), _NOBLOCK)
        except (zmq.Again, zmq.ZMQError):
            return False
        finally:
            if self.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                self._schedule_drain()
        return True

    def open_stream(self) -> WorkerStream:
        ready = [h for h in self.slots if h and h.alive and h.ready.is_set()]
        if not ready:
            raise StreamError(grpc.StatusCode.UNAVAILABLE,
                              "no engine worker is ready (starting or restarting); retry in a second")
        h = min(ready, key=lambda w: len(w.streams))
        ws = WorkerStream(self, next(self._sids), h, self.max_inflight)
        h.streams[ws.sid] = ws
        return ws

    def release(self, ws: WorkerStream) -> None:
        ws.worker.streams.pop(ws.sid, None)

    def worker_pids(self) -> list[int]:
        return [h.pid for h in self.slots if h and h.alive]


def _worker_env() -> dict:
    env = dict(os.environ)
    # Workers are single-threaded by design: one BLAS thread each, no oversubscription.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    # Make `engine` importable from a source checkout as well as an install.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env
