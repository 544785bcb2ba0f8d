"""VMC protocol output (OSC over UDP): lets existing VMC receivers (EVMC4U, VSeeFace, VMagicMirror, ...)
move an avatar from a stream without our Unity package.

Per frame, in order:
  /VMC/Ext/OK 1                        the sender has a model loaded
  /VMC/Ext/T <time>                    the frame's time code (seconds on the audio's clock)
  /VMC/Ext/Bone/Pos <name> px py pz qx qy qz qw   for Neck, Head, LeftEye, RightEye (Unity HumanBodyBones
                                       names), Unity's convention: q (x, -y, -z, w); p = the bone's local rest
                                       offset (receivers apply it as the local position; see vrm_rest.py)
  /VMC/Ext/Blend/Val <name> <value>    52 perfect-sync clips, PascalCase by default (``?names=arkit``: jawOpen),
                                       then the VRM preset clips (A I U E O Blink Blink_L Blink_R, or VRM 1.0 names)
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

from bridge_server.outputs import FrameOutput, OutputTarget, StreamInfo, check_keys, register
from engine.rig.arkit import VISEMES
from engine.rig.rotation import to_unity_quat
from bridge_server.outputs import vrm_rest

log = logging.getLogger("bridge_server.outputs.vmc")
DEFAULT_PORT = 39539  # the VMC protocol's receiver port
MAX_DATAGRAM = 1400


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


OPTIONS = {
    "names": "pascal (JawOpen, default) or arkit (jawOpen)",
    "presets": "vrm0 (A I U E O Blink Blink_L Blink_R, default), vrm1 (aa ih ou ee oh blink blinkLeft blinkRight) or off",
    "rest": "path of the avatar's .vrm: its exact bone offsets and rest rotations (default: a generic adult)",
}
PRESETS = {"vrm0": ("A", "I", "U", "E", "O", "Blink", "Blink_L", "Blink_R"),
           "vrm1": ("aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft", "blinkRight"), "off": ()}
_RESTS: dict[str, dict] = {}  # rest= path -> bones, read once at start-up


def check_target(target: OutputTarget) -> None:
    """Start-up check of a vmc:// target; raises ValueError naming the option and the fix."""
    check_keys(target, OPTIONS)
    opts = target.options
    if opts.get("names", "pascal") not in ("pascal", "arkit"):
        raise ValueError(f"outputs: vmc names={opts['names']!r} is unknown; use names=pascal (JawOpen) or names=arkit (jawOpen)")
    if opts.get("presets", "vrm0") not in PRESETS:
        raise ValueError(f"outputs: vmc presets={opts['presets']!r} is unknown; use presets=vrm0, vrm1 or off")
    if "rest" in opts:
        try:
            _RESTS[opts["rest"]] = vrm_rest.load(opts["rest"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"outputs: vmc rest={opts['rest']!r}: {exc}; point rest= at the avatar's .vrm file "
                             "or leave it out") from None


def preset_weights(weights: np.ndarray, names: list[str], visemes: np.ndarray | None, viseme_names) -> np.ndarray:
    """(n,52) ARKit weights (+ OVR visemes when the engine gives them) -> (n,8) VRM presets: the five vowels,
    then Blink (both eyes) and Blink_L/Blink_R (the rest of each eye, so an avatar that adds them never closes
    an eye past 1)."""
    col = {n: weights[:, i] for i, n in enumerate(names)}
    if visemes is not None and viseme_names:
        v = {n: visemes[:, i] for i, n in enumerate(viseme_names)}
        vowels = [v["aa"], v["I"], v["U"], v["E"], v["O"]]
    else:  # engines without visemes: the ARKit shapes that dominate each vowel
        vowels = [col["jawOpen"], 0.5 * (col["mouthStretchLeft"] + col["mouthStretchRight"]),
                  col["mouthPucker"], 0.5 * (col["mouthSmileLeft"] + col["mouthSmileRight"]), col["mouthFunnel"]]
    both = np.minimum(col["eyeBlinkLeft"], col["eyeBlinkRight"])
    out = np.stack([*vowels, both, col["eyeBlinkLeft"] - both, col["eyeBlinkRight"] - both], axis=1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


class VmcOutput(FrameOutput):
    def __init__(self, target: OutputTarget, info: StreamInfo):
        self.loop = asyncio.get_running_loop()
        self.stream_id = info.stream_id
        opts = target.options
        naming = opts.get("names", "pascal")
        names = [n if naming == "arkit" else n[0].upper() + n[1:] for n in info.blendshape_names]
        self.arkit_names = list(info.blendshape_names)
        self.preset_names = PRESETS[opts.get("presets", "vrm0")]
        self.blend = [_prefix("/VMC/Ext/Blend/Val", "f", n) for n in [*names, *self.preset_names]]
        self.bones = [_prefix("/VMC/Ext/Bone/Pos", "fffffff", n) for n in info.bone_names]
        rest = _RESTS.get(opts["rest"]) if "rest" in opts else None
        if "rest" in opts and rest is None:  # outputs opened without start-up checks (embedded use)
            rest = vrm_rest.load(opts["rest"])
        self.rest = [rest.get(n) if rest else None for n in info.bone_names]
        self.positions = b"".join(np.array(r.position if r is not None else vrm_rest.GENERIC_POSITIONS[n], ">f4").tobytes()
                                  for n, r in zip(info.bone_names, self.rest))
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
        presets = None
        if self.preset_names:
            vis = None if block.visemes is None else np.asarray(block.visemes, np.float32)
            presets = preset_weights(weights, self.arkit_names, vis, VISEMES if vis is not None else None)
        for i in range(n):
            self.queue.append((base + times[i], float(times[i]), weights[i], rots[i],
                               None if presets is None else presets[i]))
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

    def _send_frame(self, t: float, weights: np.ndarray, rots: np.ndarray, presets) -> None:
        msgs = [self.ok, _message("/VMC/Ext/T", float(t))]
        q = to_unity_quat(rots.reshape(-1, 4))
        for b, prefix in enumerate(self.bones):
            rb = q[b] if self.rest[b] is None else vrm_rest.local_rotation(q[b], self.rest[b])
            msgs.append(prefix + self.positions[12 * b:12 * b + 12] + np.asarray(rb, ">f4").tobytes())
        if presets is not None:
            weights = np.concatenate([weights, presets])
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


register("vmc", _factory, DEFAULT_PORT, check_target)
