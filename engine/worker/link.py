"""A worker's end of the seam: its DEALER socket, READY, heartbeats, and noticing that the server is gone.

Shared by the expression worker (main.py) and the video worker (engine/video/worker.py), so both speak to the
server's WorkerPool the same way.
"""
from __future__ import annotations

import logging
import os
import time

import zmq

from engine.worker import protocol as p
from engine.worker.specs import WorkerInfo

log = logging.getLogger("engine.worker")
HEARTBEAT_S = 1.0


class WorkerLink:
    def __init__(self, endpoint: str, identity: bytes):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, identity)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.parent = os.getppid()
        self.interval_s = HEARTBEAT_S  # how often the server hears from us (its watchdog allows several misses)
        self.last_beat = time.monotonic()

    def ready(self, info: WorkerInfo) -> None:
        self.sock.send(p.pack(p.READY, body=info.to_json()))
        self.last_beat = time.monotonic()

    def beat_due(self, now: float) -> bool:
        return now - self.last_beat >= self.interval_s

    def beat(self, now: float) -> bool:
        """A heartbeat; False when the server (our parent process) is gone and the worker should exit."""
        if os.getppid() != self.parent:
            log.warning("parent process went away; worker exiting")
            return False
        self.sock.send(p.pack(p.BEAT))
        self.last_beat = now
        return True
