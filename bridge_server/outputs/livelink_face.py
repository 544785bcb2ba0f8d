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
import socket
import struct

import numpy as np

from bridge_server.outputs import FrameOutput, OutputTarget, StreamInfo, register

log = logging.getLogger("bridge_server.outputs.livelink_face")

PACKET_VERSION = 6  # FQualifiedFrameTime timecode (Epic's BLEND_SHAPE_PACKET_VER 6)
CURVE_COUNT = 61  # 52 ARKit + HeadYaw/Pitch/Roll + LeftEye yaw/pitch/roll + RightEye yaw/pitch/roll
DEFAULT_PORT = 11111
DEFAULT_DEVICE = "AvatarBridge"

def _mirror_index(names: list[str]) -> np.ndarray:
    """Column permutation that swaps each xxxLeft with its xxxRight (the ``mirror`` option)."""
    index = {n: i for i, n in enumerate(names)}
    perm = np.arange(len(names))
    for i, n in enumerate(names):
        for a, b in (("Left", "Right"), ("Right", "Left")):
            if n.endswith(a) and n[: -len(a)] + b in index:
                perm[i] = index[n[: -len(a)] + b]
    return perm


def _qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (n,4) xyzw quaternions."""
    ax, ay, az, aw = a.T
    bx, by, bz, bw = b.T
    return np.stack([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz], axis=1)


def unreal_rotator(q: np.ndarray) -> np.ndarray:
    """(n,4) canonical xyzw quaternions -> (n,3) Unreal FRotator (yaw, pitch, roll) in degrees.

    Canonical -> Unreal quaternion is (-z, x, -y, w) (docs/conventions.md); the Euler split is the
    one of Unreal's FQuat::Rotator(). For the canonical signs: yaw = -(turn to the subject's left),
    pitch = -(chin down), roll = +(tilt to the subject's right shoulder).
    """
    x, y, z, w = -q[:, 2], q[:, 0], -q[:, 1], q[:, 3]
    sing = z * x - w * y
    yaw = np.degrees(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
    pitch = np.degrees(np.arcsin(np.clip(2 * sing, -1.0, 1.0)))
    roll = np.degrees(np.arctan2(-2 * (w * x + y * z), 1 - 2 * (x * x + y * y)))
    return np.stack([yaw, pitch, roll], axis=1)


def face_angles(rotations: np.ndarray, mirror: bool = False) -> np.ndarray:
    """(n,16) Head/Neck/LeftEye/RightEye quaternions -> (n,9) Live Link Face angle curves.

    Epic's ARKit face source (AppleARKitFaceSupport ToBlendShapeMap) sends FRotator angles / 180,
    i.e. -1..1 for -180..180 degrees, taken in its ARKit->Unreal frame where the face looks down
    -X; in our +X-facing Unreal frame that flips pitch and roll. The head curve is the whole head
    (Neck then Head); eyes are relative to the head. ``mirror`` follows Epic's non-mirrored branch
    (yaw and roll negated) for rigs that should mirror the performer.
    """
    rots = rotations.reshape(-1, 4, 4).astype(np.float64)
    head = _qmul(rots[:, 1], rots[:, 0])  # neck * head: the head's rotation relative to the body
    out = []
    for q in (head, rots[:, 2], rots[:, 3]):
        yaw, pitch, roll = unreal_rotator(q).T
        # Epic's frame (face down -X) = ours turned 180 deg about Z: pitch and roll change sign.
        ang = np.stack([yaw, -pitch, -roll], axis=1) / 180.0
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


def _flag(options: dict[str, str], key: str, default: bool) -> bool:
    raw = options.get(key)
    if raw is None:
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    log.warning("livelinkface option ignored", extra={"option": key, "value": raw, "use": "0 or 1"})
    return default


class LiveLinkFaceOutput(FrameOutput):
    def __init__(self, target: OutputTarget, info: StreamInfo):
        self.target, self.info = target, info
        self.loop = asyncio.get_running_loop()
        self.subject = (target.options.get("subject") or info.stream_id or "AvatarBridge").encode("utf-8")
        self.device = (target.options.get("device") or DEFAULT_DEVICE).encode("utf-8")
        self.pace = _flag(target.options, "pace", True)
        self.mirror = _flag(target.options, "mirror", False)
        self.perm = _mirror_index(info.blendshape_names) if self.mirror else None
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
        if n == 0:
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
                self.anchor = now - t
            pkt = encode_packet(self.device, self.subject, block.first_index + i, 0.0, fps, curves[i])
            self.queue.append((self.anchor + t if self.pace else now, pkt))
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


register("livelinkface", LiveLinkFaceOutput, DEFAULT_PORT)
