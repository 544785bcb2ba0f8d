"""VMC protocol output (OSC over UDP): lets existing VMC receivers (EVMC4U, VSeeFace, VMagicMirror, ...)
move an avatar from a stream without our Unity package.

Per frame, in order:
  /VMC/Ext/OK 1                        the sender has a model loaded
  /VMC/Ext/T <time>                    the frame's time code (seconds on the audio's clock)
  /VMC/Ext/Bone/Pos <name> px py pz qx qy qz qw   for Head, Neck, LeftEye, RightEye (Unity HumanBodyBones
                                       names), Unity's convention: q (x, -y, -z, w); p (-x, y, z) = the
                                       engine's head translation on Head when it sends one, else 0
  /VMC/Ext/Blend/Val <name> <value>    52 times, ARKit camelCase names (``?names=pascal``: JawOpen, ...)
  /VMC/Ext/Blend/Apply
packed into OSC bundles of at most MAX_DATAGRAM bytes (no IP fragmentation on a 1500-byte MTU), Apply in the
last one. Frames are sent at their time codes: a clip animated faster than real time (AnimateClip) is paced
with loop.call_at, nothing dropped; frames that arrive late (live streams) go out at once.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from bridge_server.outputs import FrameOutput, OutputTarget, StreamInfo, register

log = logging.getLogger("bridge_server.outputs.vmc")
DEFAULT_PORT = 39539  # the VMC protocol's receiver port
MAX_DATAGRAM = 1400
_UNITY_QUAT = np.array([1, -1, -1, 1], np.float32)  # docs/conventions.md: mirror X
_UNITY_POS = np.array([-1, 1, 1], np.float32)


def _prefix(address: str, types: str, name: str) -> bytes:
    """The constant head of a message whose arguments are a name then floats (python-osc encodes it once;
    per frame only the big-endian floats are appended)."""
    b = OscMessageBuilder(address)
    b.add_arg(name, "s")
    for t in types:
        b.add_arg(0.0, t)
    dgram = b.build().dgram
    return dgram[: len(dgram) - 4 * len(types)]


def _message(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a)
    return b.build().dgram


class VmcOutput(FrameOutput):
    def __init__(self, target: OutputTarget, info: StreamInfo):
        self.loop = asyncio.get_running_loop()
        self.stream_id = info.stream_id
        naming = target.options.get("names", "arkit")
        if naming not in ("arkit", "pascal"):  # a mirror never breaks the stream: say so and send ARKit names
            log.warning(f"outputs: vmc option names={naming!r} is unknown; sending ARKit names (jawOpen). "
                        "Use names=arkit (jawOpen) or names=pascal (JawOpen)", extra={"stream_id": info.stream_id})
            naming = "arkit"
        names = [n if naming == "arkit" else n[0].upper() + n[1:] for n in info.blendshape_names]
        self.blend = [_prefix("/VMC/Ext/Blend/Val", "f", n) for n in names]
        self.bones = [_prefix("/VMC/Ext/Bone/Pos", "fffffff", n) for n in info.bone_names]
        self.head = info.bone_names.index("Head")
        self.ok = _message("/VMC/Ext/OK", 1)
        self.apply = _message("/VMC/Ext/Blend/Apply")
        self.bundle_head = OscBundleBuilder(IMMEDIATELY).build().dgram  # "#bundle\0" + time tag
        self.queue: collections.deque = collections.deque()  # (due loop time, media time, weights, rots, trans)
        self.anchor: tuple[float, float] | None = None  # (loop time, media time) of the first frame
        self.timer: asyncio.TimerHandle | None = None
        self.closing = False
        self.errors = 0
        self.sent = 0
        self.addr = None
        self.sock = None
        self.resolving = False
        host, port = target.host, target.port
        try:  # numeric addresses need no lookup; names are resolved off the event loop
            info_ = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST)
            self._open(info_)
        except socket.gaierror:
            self.resolving = True
            self.lookup = asyncio.ensure_future(self.loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM))
            self.lookup.add_done_callback(self._resolved)

    # -- FrameOutput ---------------------------------------------------------
    def send(self, block, sample_rate: int) -> None:
        n = len(block)
        if not n:
            return
        times = block.sample_index.astype(np.float64) / sample_rate
        now = self.loop.time()
        if self.anchor is None:
            self.anchor = (now, float(times[0]))
        base = self.anchor[0] - self.anchor[1]
        # Copies: the block's arrays view the worker's message buffer, which is not ours to keep.
        weights, rots = np.array(block.weights, np.float32), np.array(block.rotations, np.float32)
        trans = None if block.translation is None else np.array(block.translation, np.float32)
        for i in range(n):
            self.queue.append((base + times[i], float(times[i]), weights[i], rots[i],
                               None if trans is None else trans[i]))
        self._pump()

    def close(self) -> None:
        # Frames already queued still go out at their times; the socket closes after the last one.
        self.closing = True
        self._pump()

    # -- internals -------------------------------------------------------------
    def _open(self, addrinfo) -> None:
        # VMC receivers listen on IPv4 as a rule; "localhost" often resolves to ::1 first
        ipv4 = [a for a in addrinfo if a[0] == socket.AF_INET]
        family, _, _, _, sockaddr = (ipv4 or addrinfo)[0]
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.addr = sockaddr

    def _resolved(self, fut: asyncio.Future) -> None:
        self.resolving = False
        try:
            self._open(fut.result())
        except (OSError, IndexError) as exc:
            log.warning("vmc output: cannot resolve the target; frames are not mirrored",
                        extra={"stream_id": self.stream_id, "error": str(exc)})
            self.queue.clear()
            self.closing = True
            return
        self._pump()

    def _pump(self) -> None:
        if self.timer is not None:  # one pending wake-up per output, however often send() pumps
            self.timer.cancel()
            self.timer = None
        if self.resolving:
            return  # waiting for the name lookup; _resolved pumps
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now + 0.001:
            _, t, w, r, tr = self.queue.popleft()
            if self.sock is not None:
                self._send_frame(t, w, r, tr)
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self._pump)
        elif self.closing and self.sock is not None:
            self.sock.close()
            self.sock = None
            log.info("vmc output done", extra={"stream_id": self.stream_id, "frames": self.sent,
                                               "send_errors": self.errors})

    def _send_frame(self, t: float, weights: np.ndarray, rots: np.ndarray, trans) -> None:
        msgs = [self.ok, _message("/VMC/Ext/T", float(t))]
        q = (rots.reshape(-1, 4) * _UNITY_QUAT).astype(">f4")
        head_pos = np.zeros(3, ">f4") if trans is None else (trans * _UNITY_POS).astype(">f4")
        zero = np.zeros(3, ">f4").tobytes()
        for b, prefix in enumerate(self.bones):
            msgs.append(prefix + (head_pos.tobytes() if b == self.head else zero) + q[b].tobytes())
        vals = weights.astype(">f4").tobytes()  # bytes, not numpy scalars: those are always native-endian
        msgs.extend(prefix + vals[4 * i:4 * i + 4] for i, prefix in enumerate(self.blend))
        msgs.append(self.apply)
        for dgram in self._bundles(msgs):
            try:
                self.sock.sendto(dgram, self.addr)
            except OSError as exc:  # full socket buffer, unreachable network: UDP is lossy, the stream goes on
                self.errors += 1
                if self.errors == 1:
                    log.warning("vmc output: send failed; further failures are counted, not logged",
                                extra={"stream_id": self.stream_id, "error": str(exc)})
        self.sent += 1

    def _bundles(self, msgs: list[bytes]):
        out, size = [], len(self.bundle_head)
        for m in msgs:
            if out and size + 4 + len(m) > MAX_DATAGRAM:
                yield self.bundle_head + b"".join(out)
                out, size = [], len(self.bundle_head)
            out.append(struct.pack(">i", len(m)) + m)
            size += 4 + len(m)
        if out:
            yield self.bundle_head + b"".join(out)


def _factory(target: OutputTarget, info: StreamInfo) -> FrameOutput:
    return VmcOutput(target, info)


register("vmc", _factory, DEFAULT_PORT)
