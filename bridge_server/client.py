"""A small Python client for the bridge (used by the CLI, the tests and the benchmark)."""
from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import grpc

from avatarbridge.v1 import bridge_pb2 as pb
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc

CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                   ("grpc.max_send_message_length", 64 * 1024 * 1024),
                   # A live call on a dead network path (cable pulled, NAT dropped it) fails UNAVAILABLE within
                   # 15 + 5 s instead of hanging for TCP's retry time (~15 min); the server allows pings every
                   # 10 s (docs/reliability.md "Faults across a network").
                   ("grpc.keepalive_time_ms", 15_000),
                   ("grpc.keepalive_timeout_ms", 5_000)]



CLIENT_ERRORS = (grpc.RpcError, OSError, RuntimeError)


def report_client_error(command: str, exc: BaseException) -> int:
    """One CLI line for a failed client call (gRPC status and details, or the local error); exit code 1."""
    if isinstance(exc, grpc.RpcError):
        print(f"avatar-bridge {command}: {exc.code().name}: {exc.details()}", file=sys.stderr)
    else:
        print(f"avatar-bridge {command}: {exc}", file=sys.stderr)
    return 1

@dataclass
class Animation:
    """Everything a stream returned: header, frames, final status."""

    header: pb.ExpressionHeader | None = None
    frames: list[pb.Frame] = field(default_factory=list)
    status: pb.StreamStatus | None = None
    partial: bool = False  # interrupted before the final status (written with "partial": true)

    @classmethod
    def collect(cls, responses: Iterable[pb.ExpressionResponse], into: "Animation | None" = None) -> "Animation":
        """Gather a call's responses; `into` keeps what arrived if the call is interrupted half way."""
        out = cls() if into is None else into
        for r in responses:
            which = r.WhichOneof("msg")
            if which == "header":
                out.header = r.header
            elif which == "frames":
                out.frames.extend(r.frames.frames)
            elif which == "status":
                out.status = r.status
        return out

    def to_json(self) -> dict:
        h = self.header
        names, bones = list(h.blendshape_names), list(h.bone_names)
        vnames = list(h.viseme_names)
        frames = []
        for f in self.frames:
            w, r = list(f.weights), list(f.rotations)
            extra = {"visemes": {n: round(v, 6) for n, v in zip(vnames, f.visemes)}} if len(f.visemes) else {}
            frames.append({
                "index": f.index, "time": f.time, "sample_index": f.sample_index,
                "blendshapes": {n: round(v, 6) for n, v in zip(names, w)},
                "rotations": {b: [round(v, 6) for v in r[4 * i:4 * i + 4]] for i, b in enumerate(bones)},
                "head_translation": ([f.head_translation.x, f.head_translation.y, f.head_translation.z]
                                     if f.HasField("head_translation") else None),
                "confidence": round(f.confidence, 4), "face_lost": f.face_lost,
                **extra,
            })
        return {
            "format": "avatar-bridge.frames.v1", "stream_id": h.stream_id, "engine": h.engine, "fps": h.fps,
            "sample_rate": h.sample_rate, "lookahead_ms": h.lookahead_ms, "blendshape_names": names,
            "bone_names": bones, "unmeasured_blendshapes": list(h.unmeasured_blendshapes),
            **({"viseme_names": vnames} if vnames else {}),
            "rotation_convention": "quaternion xyzw, right-handed Y-up, subject faces +Z "
                                                        "(docs/conventions.md)",
            **({"partial": True} if self.partial else {}),
            "frames": frames,
            "status": {"frames_sent": self.status.frames_sent, "audio_seconds": self.status.audio_seconds,
                       "warnings": list(self.status.warnings),
                       "face_lost_frames": self.status.face_lost_frames} if self.status else None,
        }

    def write(self, path: str) -> None:
        """.json or .csv, by the extension (any other is a ValueError, not JSON under another name)."""
        ext = os.path.splitext(path)[1].lower()
        if ext == ".csv":
            self.write_csv(path)
        elif ext == ".json":
            with open(path, "w") as fh:
                json.dump(self.to_json(), fh, indent=1)
        else:
            raise ValueError(f"cannot write frames to {path}: use a .json or .csv file name")

    def write_csv(self, path: str) -> None:
        names, bones = list(self.header.blendshape_names), list(self.header.bone_names)
        vnames = list(self.header.viseme_names)
        cols = ["time", "index", "sample_index", *names,
                *[f"{b}.{c}" for b in bones for c in ("qx", "qy", "qz", "qw")], *[f"viseme_{v}" for v in vnames]]
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for f in self.frames:
                vis = list(f.visemes) if vnames else []
                w.writerow([f"{f.time:.6f}", f.index, f.sample_index, *[f"{v:.6f}" for v in f.weights],
                            *[f"{v:.6f}" for v in f.rotations], *[f"{v:.6f}" for v in vis]])


class BridgeClient:
    def __init__(self, target: str):
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.AvatarBridgeStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def capabilities(self, timeout: float = 10.0) -> pb.Capabilities:
        return self.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=timeout, wait_for_ready=True)

    def animate_clip(self, audio_file: bytes, fps: int = 30, stream_id: str = "", style=None,
                     timeout: float | None = None, engine: str = "", transcript: str = "",
                     language: str = "", into: Animation | None = None) -> Animation:
        req = pb.AnimateClipRequest(audio_file=audio_file, fps=fps, stream_id=stream_id,
                                    style=style or pb.ExpressionStyle(), engine=engine, transcript=transcript,
                                    language=language)
        return Animation.collect(self.stub.AnimateClip(req, timeout=timeout, wait_for_ready=True), into)

    def stream(self, requests: Iterable[pb.ExpressionRequest], timeout: float | None = None):
        return self.stub.StreamExpression(iter(requests), timeout=timeout, wait_for_ready=True)

    def speak(self, text: str, voice: str = "", language: str = "", fps: int = 30, speaking_rate: float = 0.0,
              style=None, stream_id: str = "", timeout: float | None = None,
              into: "SpeechResult | None" = None) -> SpeechResult:
        began = time.perf_counter()
        req = speak_start(text, voice, language, fps, speaking_rate, style, stream_id)
        return SpeechResult.collect(self.stub.Speak(iter([req]), timeout=timeout, wait_for_ready=True), began, into)

    def capture_video(self, data: bytes, settings=None, stream_id: str = "", skip_audio: bool = False,
                      timeout: float | None = None, into: "VideoCaptureResult | None" = None) -> "VideoCaptureResult":
        reqs = capture_video_requests(data, settings, stream_id, skip_audio)
        return collect_video(self.stub.CaptureVideo(reqs, timeout=timeout, wait_for_ready=True), into)


@dataclass
class SpeechResult:
    """What Speak returned: the header, the audio chunks, the frames (an Animation) and the status."""

    header: pb.SpeakHeader | None = None
    audio: list[pb.SpeakAudio] = field(default_factory=list)
    animation: Animation = field(default_factory=Animation)
    status: pb.SpeakStatus | None = None
    first_audio_s: float = 0.0  # from the call to the first SpeakAudio
    first_frames_s: float = 0.0  # ... and to the first frames of that audio

    @classmethod
    def collect(cls, responses: Iterable[pb.SpeakResponse], began: float | None = None,
                into: "SpeechResult | None" = None) -> "SpeechResult":
        out = cls() if into is None else into
        began = time.perf_counter() if began is None else began
        for r in responses:
            which = r.WhichOneof("msg")
            if which == "header":
                out.header = r.header
                out.animation.header = r.header.expression
            elif which == "audio":
                out.audio.append(r.audio)
                out.first_audio_s = out.first_audio_s or time.perf_counter() - began
            elif which == "frames":
                # A barge-in's easing frames replace the frames with the same or later index.
                frames = out.animation.frames
                first = r.frames.frames[0].index if r.frames.frames else len(frames)
                if first < len(frames):
                    del frames[first:]
                frames.extend(r.frames.frames)
                out.first_frames_s = out.first_frames_s or time.perf_counter() - began
            elif which == "status":
                out.status = r.status
                out.animation.status = pb.StreamStatus(frames_sent=r.status.frames_sent,
                                                       audio_seconds=r.status.audio_seconds,
                                                       warnings=r.status.warnings,
                                                       engine=out.animation.header.engine if out.header else "")
        return out

    def pcm(self):
        """int16 samples of the whole utterance (cut at audio_seconds after a stop)."""
        import numpy as np

        x = np.frombuffer(b"".join(a.pcm16 for a in self.audio), "<i2")
        if self.status is not None and self.status.stopped and self.header is not None:
            x = x[:int(round(self.status.audio_seconds * self.header.sample_rate))]
        return x

    def write_audio(self, path: str) -> None:
        import soundfile as sf

        sf.write(path, self.pcm(), self.header.sample_rate, subtype="PCM_16")


def speak_start(text: str, voice: str = "", language: str = "", fps: int = 30, speaking_rate: float = 0.0,
                style=None, stream_id: str = "") -> pb.SpeakRequest:
    return pb.SpeakRequest(start=pb.SpeakStart(text=text, voice=voice, language=language, fps=fps,
                                               speaking_rate=speaking_rate, style=style or pb.ExpressionStyle(),
                                               stream_id=stream_id))


@dataclass
class VideoCaptureResult:
    """What CaptureVideo returned: the video's facts, its frames and its audio track."""

    video: pb.VideoInfo | None = None
    animation: Animation = field(default_factory=Animation)
    audio: list[pb.AudioTrackChunk] = field(default_factory=list)

    def audio_pcm(self):
        """(int16 array (n, channels), sample_rate, start_time) of the returned audio track."""
        import numpy as np

        if not self.audio:
            return np.zeros((0, 1), np.int16), 0, 0.0
        ch = self.audio[0].channels
        pcm = np.frombuffer(b"".join(a.pcm16 for a in self.audio), "<i2").reshape(-1, ch)
        return pcm, self.audio[0].sample_rate, self.audio[0].start_time

    def write_audio(self, path: str) -> None:
        import soundfile as sf

        pcm, rate, _ = self.audio_pcm()
        sf.write(path, pcm, rate, subtype="PCM_16")


def capture_video_requests(data: bytes, settings=None, stream_id: str = "", skip_audio: bool = False,
                           chunk_bytes: int = 256 << 10) -> Iterator[pb.CaptureVideoRequest]:
    yield pb.CaptureVideoRequest(header=pb.CaptureVideoHeader(stream_id=stream_id, skip_audio=skip_audio,
                                                              settings=settings or pb.CaptureSettings()))
    for off in range(0, len(data), chunk_bytes):
        yield pb.CaptureVideoRequest(chunk=pb.FileChunk(data=data[off:off + chunk_bytes]))


def collect_video(responses: Iterable[pb.CaptureVideoResponse],
                  into: VideoCaptureResult | None = None) -> VideoCaptureResult:
    out = VideoCaptureResult() if into is None else into
    anim = out.animation
    for r in responses:
        which = r.WhichOneof("msg")
        if which == "video":
            out.video = r.video
        elif which == "header":
            anim.header = r.header
        elif which == "audio":
            out.audio.append(r.audio)
        elif which == "frames":
            anim.frames.extend(r.frames.frames)
        elif which == "status":
            anim.status = r.status
    return out


def stream_requests(pcm16: bytes, sample_rate: int, fps: int = 30, chunk_s: float = 0.02, channels: int = 1,
                    stream_id: str = "", realtime: bool = False, end: bool = True) -> Iterator[pb.ExpressionRequest]:
    """Header + PCM16 chunks (+ end marker); optionally paced at real time."""
    yield pb.ExpressionRequest(header=pb.StreamHeader(
        encoding=pb.AUDIO_ENCODING_PCM16, sample_rate=sample_rate, channels=channels, fps=fps, stream_id=stream_id))
    step = max(1, int(chunk_s * sample_rate)) * 2 * channels
    t0 = time.monotonic()
    for i, off in enumerate(range(0, len(pcm16), step)):
        if realtime:
            delay = t0 + i * chunk_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield pb.ExpressionRequest(audio=pb.AudioChunk(data=pcm16[off:off + step]))
    if end:
        yield pb.ExpressionRequest(end=pb.EndOfAudio())


@contextlib.contextmanager
def embedded_server(workers: int = 1, extra_args: Iterable[str] = ()) -> Iterator[str]:
    """Start `avatar-bridge serve` on a free loopback port for the duration of the block."""
    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready.json")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge_server.cli", "serve", "--port", "0", "--metrics-port", "-1",
             "--workers", str(workers), "--ready-file", ready, "--log-level", "warning", *extra_args])
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(ready):
                if proc.poll() is not None:
                    raise RuntimeError(f"the embedded server exited with code {proc.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError("the embedded server did not start within 60 s")
                time.sleep(0.05)
            with open(ready) as fh:
                yield f"127.0.0.1:{json.load(fh)['port']}"
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
