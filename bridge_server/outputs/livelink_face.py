"""Live Link Face output: mirror a stream as ARKit face packets over UDP (``livelinkface://host:port``).

A stock Unreal Engine with the *Live Link* and *Apple ARKit Face Support* plugins listens for these
packets (port 11111 by default) and shows the stream as a Live Link subject, so a MetaHuman moves
without our plugin. The byte layout, its source and the angle conventions are documented in
``docs/output_formats.md`` ("Live Link Face UDP packets"); this module is the only writer.

Pacing: packets leave at the frames' time codes on the wall clock (AnimateClip delivers a whole file
in well under its duration), anchored at the first frame; a frame that is already due goes at once,
so nothing is ever dropped or reordered. Frames still queued when the stream ends are still sent.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import math
import re
import socket
import string
import struct
import time
import uuid

import numpy as np

from bridge_server.outputs import FrameOutput, OutputTarget, StreamInfo, check_keys, register
from engine.rig.rotation import quat_mul, to_unreal_quat

log = logging.getLogger("bridge_server.outputs.livelink_face")

PACKET_VERSION = 6  # FQualifiedFrameTime timecode (Epic's BLEND_SHAPE_PACKET_VER 6)
CURVE_COUNT = 61  # 52 ARKit + HeadYaw/Pitch/Roll + LeftEye yaw/pitch/roll + RightEye yaw/pitch/roll
DEFAULT_PORT = 11111
DEFAULT_SUBJECT = "AvatarBridge"
# Unreal sizes its receive buffer for 256-character names; public decoders reject longer packets.
MAX_NAME_BYTES = 255
# The app sends its device id as a 36-character UUID and public decoders read exactly 36 bytes there.
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_DEVICE_NAMESPACE = uuid.UUID("5b0f3d1e-6a7c-4f55-9a51-7c1f2e0d4a11")  # ours; only makes ids stable
OPTIONS = {
    "subject": f"Live Link subject name or template with {{stream_id}} / {{speaker}} (default {DEFAULT_SUBJECT})",
    "device": "36-character UUID (default: derived from the subject, stable across restarts)",
    "mirror": "1 = the app's own convention (default), 0 = unmirrored",
    "pace": "1 = send at the frames' time codes (default), 0 = at once",
}
_SUBJECT_FIELDS = {"stream_id", "speaker"}


def device_for(subject: str) -> str:
    """The default device id: a UUID derived from the subject name, so each subject has its own device
    (Unreal drops a device's old subject when that device's subject name changes) and a restart keeps it."""
    return str(uuid.uuid5(_DEVICE_NAMESPACE, subject)).upper()


def speaker_of(stream_id: str) -> str:
    """``{speaker}`` in a subject template: the stream id up to its first '/' ("npc7/line-42" -> "npc7"),
    so clients that prefix clip ids with the character keep one subject per character."""
    return stream_id.split("/", 1)[0]


def subject_for(template: str, stream_id: str) -> str:
    return template.format(stream_id=stream_id, speaker=speaker_of(stream_id))


def check_target(target: OutputTarget) -> None:
    """Start-up check of a livelinkface:// target; raises ValueError naming the option and the fix."""
    check_keys(target, OPTIONS)
    opts = target.options
    template = opts.get("subject", DEFAULT_SUBJECT)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"outputs: livelinkface subject={template!r} is not a valid template ({exc}); "
                         "use literal text with {stream_id} or {speaker}") from None
    if fields - _SUBJECT_FIELDS:
        raise ValueError(f"outputs: livelinkface subject={template!r} uses {sorted(fields - _SUBJECT_FIELDS)}; "
                         "the placeholders are {stream_id} and {speaker}")
    if not template.strip():
        raise ValueError("outputs: livelinkface subject= is empty; give a name such as subject=MetaFace")
    if not fields and len(template.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"outputs: livelinkface subject= is {len(template.encode('utf-8'))} bytes; "
                         f"Live Link Face packets carry at most {MAX_NAME_BYTES}: use a shorter name")
    if "device" in opts and not _UUID.match(opts["device"]):
        raise ValueError(f"outputs: livelinkface device={opts['device']!r} is not a 36-character UUID "
                         "(8-4-4-4-12 hex digits, as the Live Link Face app sends); public decoders read exactly "
                         "36 bytes there. Use e.g. device=" + device_for("example") + ", or leave device= out")
    for key in ("mirror", "pace"):
        if key in opts and opts[key] not in ("0", "1"):
            raise ValueError(f"outputs: livelinkface {key}={opts[key]!r} is not 0 or 1; write {key}=0 or {key}=1")


# (host, port, subject) -> loop time of the last frame queued for it, across streams.
_SUBJECT_END: dict[tuple[str, int, str], float] = {}


def _mirror_index(names: list[str]) -> np.ndarray:
    """Column permutation that swaps each xxxLeft with its xxxRight."""
    index = {n: i for i, n in enumerate(names)}
    perm = np.arange(len(names))
    for i, n in enumerate(names):
        for a, b in (("Left", "Right"), ("Right", "Left")):
            if n.endswith(a) and n[: -len(a)] + b in index:
                perm[i] = index[n[: -len(a)] + b]
    return perm



def unreal_rotator(q: np.ndarray) -> np.ndarray:
    """(n,4) canonical xyzw quaternions -> (n,3) Unreal FRotator (yaw, pitch, roll) in radians.

    Canonical -> Unreal quaternion by rig.rotation.to_unreal_quat; the Euler split is the
    one of Unreal's FQuat::Rotator(). For the canonical signs: yaw = -(turn to the subject's left),
    pitch = -(chin down), roll = +(tilt to the subject's right shoulder).
    """
    x, y, z, w = to_unreal_quat(q).T
    sing = z * x - w * y
    yaw = np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    pitch = np.arcsin(np.clip(2 * sing, -1.0, 1.0))
    roll = np.arctan2(-2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    return np.stack([yaw, pitch, roll], axis=1)


def face_angles(rotations: np.ndarray, mirror: bool = True) -> np.ndarray:
    """(n,16) Head/Neck/LeftEye/RightEye quaternions -> (n,9) Live Link Face angle curves, radians.

    Radians, signs and sides are those of recordings made by the Live Link Face app (evidence in
    docs/output_formats.md): with ``mirror`` (the default, the app's convention) HeadYaw/*EyeYaw are
    +(turn to the subject's left), *Pitch +(chin / gaze down), *Roll +(tilt to the subject's right
    shoulder), the eye curves keep the subject's sides while the 52 weights are swapped Left<->Right
    (done by the caller). Without ``mirror`` yaw and roll change sign and nothing is swapped.
    The head curve is the whole head (Neck then Head); eyes are relative to the head.
    """
    rots = rotations.reshape(-1, 4, 4).astype(np.float64)
    head = quat_mul(rots[:, 1], rots[:, 0])  # neck * head: the head's rotation relative to the body
    out = []
    for q in (head, rots[:, 2], rots[:, 3]):
        yaw, pitch, roll = unreal_rotator(q).T
        # Unreal's rotator in our +X-facing frame has pitch = -(chin down); the app's is +(chin down).
        ang = np.stack([yaw, -pitch, -roll], axis=1)
        if mirror:
            ang[:, 0] *= -1
            ang[:, 2] *= -1
        out.append(ang)
    return np.concatenate(out, axis=1)


def encode_packet(device_id: bytes, subject: bytes, frame_number: int, subframe: float, rate: int,
                  curves: np.ndarray) -> bytes:
    """One Live Link Face packet (version 6), big-endian like Unreal's FNboSerializeToBuffer."""
    return b"".join((
        struct.pack(">B", PACKET_VERSION),
        struct.pack(">i", len(device_id)), device_id,
        struct.pack(">i", len(subject)), subject,
        struct.pack(">ifii", frame_number, subframe, rate, 1),  # FQualifiedFrameTime: frame, subframe, rate n/d
        struct.pack(">B", CURVE_COUNT),
        np.ascontiguousarray(curves, ">f4").tobytes(),
    ))


_WALL_MINUS_LOOP: list[float] = []  # sampled once per process (see wall_time)


def wall_time(loop_t: float) -> float:
    """The wall-clock time of an event-loop time. The offset between the two clocks is read once: read again for
    each clip, it moved by the time between the two clock reads (a preempted process: a fraction of a
    millisecond), and a subject's next clip no longer began exactly one frame after the last one ended."""
    if not _WALL_MINUS_LOOP:
        _WALL_MINUS_LOOP.append(time.time() - asyncio.get_running_loop().time())
    return loop_t + _WALL_MINUS_LOOP[0]


def seconds_of_day(wall: float) -> float:
    """Local time of day in seconds: the clock Unreal's default (system time) timecode provider reads."""
    lt = time.localtime(wall)
    return lt.tm_hour * 3600 + lt.tm_min * 60 + lt.tm_sec + (wall % 1.0)


def frame_time(day_seconds: float, fps: int) -> tuple[int, float]:
    """Seconds of the day -> (frame number, subframe) at ``fps``, the app's timecode form."""
    frames = (day_seconds % 86400.0) * fps
    whole = math.floor(frames)
    return int(whole), float(frames - whole)


class LiveLinkFaceOutput(FrameOutput):
    def __init__(self, target: OutputTarget, info: StreamInfo):
        self.target, self.info = target, info
        self.loop = asyncio.get_running_loop()
        opts = target.options
        subject = subject_for(opts.get("subject", DEFAULT_SUBJECT), info.stream_id) or DEFAULT_SUBJECT
        self.subject = subject.encode("utf-8")
        self.device = (opts.get("device") or device_for(subject)).encode("ascii")
        self.pace = opts.get("pace", "1") == "1"
        self.mirror = opts.get("mirror", "1") == "1"
        self.perm = _mirror_index(info.blendshape_names) if self.mirror else None
        self.day_anchor: float | None = None  # local seconds of the day at the stream's t = 0
        self.key = (target.host, target.port, subject)
        if len(self.subject) > MAX_NAME_BYTES:  # a template grew too long for this stream
            log.warning("livelinkface output skips this stream: subject too long", extra={
                "stream_id": info.stream_id, "subject_bytes": len(self.subject), "limit": MAX_NAME_BYTES,
                "fix": "use a shorter subject= template or stream id"})
            self.subject = b""
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.anchor: float | None = None  # loop time of the stream's t = 0
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.sent = self.failed = 0
        self.warned = False
        self.addr = None
        self.sock = None
        family = socket.AF_INET6 if ":" in target.host else socket.AF_INET
        try:  # numeric hosts resolve without a lookup; names resolve off the event loop
            self.addr = socket.getaddrinfo(target.host, target.port, family, socket.SOCK_DGRAM,
                                           0, socket.AI_NUMERICHOST)[0][4]
        except socket.gaierror:
            self.loop.create_task(self._resolve())
        try:
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
        except OSError as exc:
            self._warn("socket", exc)

    async def _resolve(self) -> None:
        try:
            infos = await self.loop.getaddrinfo(self.target.host, self.target.port, type=socket.SOCK_DGRAM)
            self.addr = next(i[4] for i in infos if i[0] == (self.sock.family if self.sock else socket.AF_INET))
        except (OSError, StopIteration) as exc:
            self._warn("resolve", exc if isinstance(exc, OSError) else OSError("no address of this family"))
            self.addr = False  # give up: frames are counted as failed
        self._pump()

    def _warn(self, what: str, exc: OSError) -> None:
        if not self.warned:  # once per stream; the final count is in "livelinkface output closed"
            self.warned = True
            log.warning("livelinkface output cannot send", extra={
                "stream_id": self.info.stream_id, "target": f"{self.target.host}:{self.target.port}",
                "step": what, "error": str(exc)})

    def send(self, block, sample_rate: int) -> None:
        n = len(block)
        if n == 0 or not self.subject:
            return
        weights = np.asarray(block.weights, np.float32)
        if self.perm is not None:
            weights = weights[:, self.perm]
        curves = np.concatenate([weights, face_angles(np.asarray(block.rotations), self.mirror)], axis=1)
        fps = self.info.fps
        now = self.loop.time()
        for i in range(n):
            t = int(block.sample_index[i]) / sample_rate
            if self.anchor is None:
                # A subject's next clip starts after its previous one has played (one face plays one stream
                # at a time), so its timecode never goes back even when clips arrive faster than real time.
                start = max(now, _SUBJECT_END.get(self.key, now - 1.0) + 1.0 / fps)
                self.anchor = start - t
                self.day_anchor = seconds_of_day(wall_time(self.anchor))
            # Timecode from the server's clock at the frame's due time: it keeps rising across clips, as the
            # app's does, so a receiver in Timecode mode never sees time go back when a new clip starts.
            frame, sub = frame_time(self.day_anchor + t, fps)
            pkt = encode_packet(self.device, self.subject, frame, sub, fps, curves[i])
            self.queue.append((self.anchor + t if self.pace else now, pkt))
            _SUBJECT_END[self.key] = max(_SUBJECT_END.get(self.key, 0.0), self.anchor + t)
        self._pump()

    def _pump(self) -> None:
        self.timer = None
        if self.addr is None:  # still resolving
            return
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now + 0.0005:
            _, pkt = self.queue.popleft()
            self._send(pkt)
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self._pump)
        elif self.closed:
            self._finish()

    def _send(self, pkt: bytes) -> None:
        if not self.addr or self.sock is None:
            self.failed += 1
            return
        try:
            self.sock.sendto(pkt, self.addr)
            self.sent += 1
        except BlockingIOError:  # a full socket buffer: retry this packet on the next tick
            self.queue.appendleft((self.loop.time() + 0.001, pkt))
        except OSError as exc:  # unreachable network, broadcast without permission, ...
            self.failed += 1
            self._warn("send", exc)

    def close(self) -> None:
        self.closed = True
        if self.timer is None:
            self._pump()

    def _finish(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        log.info("livelinkface output closed", extra={
            "stream_id": self.info.stream_id, "target": f"{self.target.host}:{self.target.port}",
            "packets_sent": self.sent, "packets_failed": self.failed})


register("livelinkface", LiveLinkFaceOutput, DEFAULT_PORT, check_target)
