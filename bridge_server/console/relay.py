"""The console's gRPC side: one aio channel to the bridge server and the calls the pages make through it."""
from __future__ import annotations

import csv
import io
import time
import wave

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from avatarbridge.v1 import bridge_pb2 as pb
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc
from bridge_server.client import (CHANNEL_OPTIONS, Animation, SpeechResult, VideoCaptureResult, capture_video_requests,
                                  collect_video)

EMOTIONS = tuple(n[len("EMOTION_"):].lower() for n in pb.Emotion.keys())  # from the contract: neutral, happy, ...


class FormError(ValueError):
    """A form field the console refuses before any call; the message names the field and the fix."""


def style_from_form(form) -> pb.ExpressionStyle:
    """ExpressionStyle from the page's knobs; the server checks the ranges and names the field if one is out."""
    style = pb.ExpressionStyle()
    emotion = (form.get("emotion") or "neutral").lower()
    if emotion not in EMOTIONS:
        raise FormError(f"emotion must be one of {', '.join(EMOTIONS)}, got {emotion!r}")
    style.emotion = pb.Emotion.Value("EMOTION_" + emotion.upper())
    for name in ("emotion_strength", "intensity", "head_motion"):
        if form.get(name) not in (None, ""):
            setattr(style, name, number(form, name))
    if form.get("seed") not in (None, ""):
        style.seed = int(number(form, "seed"))
    return style


def number(form, name: str) -> float:
    try:
        return float(form.get(name))
    except (TypeError, ValueError):
        raise FormError(f"{name} must be a number, got {form.get(name)!r}") from None


def fps_from_form(form) -> int:
    fps = int(number(form, "fps")) if form.get("fps") else 30
    if fps not in (30, 60):
        raise FormError(f"fps must be 30 or 60, got {fps}")
    return fps


def frames_csv(anim: Animation) -> bytes:
    """The CLI's CSV layout (docs/output_formats.md), written to memory."""
    h = anim.header
    names, bones, vnames = list(h.blendshape_names), list(h.bone_names), list(h.viseme_names)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["time", "index", "sample_index", *names,
                *[f"{b}.{c}" for b in bones for c in ("qx", "qy", "qz", "qw")], *[f"viseme_{v}" for v in vnames]])
    for f in anim.frames:
        vis = list(f.visemes) if vnames else []
        w.writerow([f"{f.time:.6f}", f.index, f.sample_index, *[f"{v:.6f}" for v in f.weights],
                    *[f"{v:.6f}" for v in f.rotations], *[f"{v:.6f}" for v in vis]])
    return buf.getvalue().encode()


def wav_bytes(pcm16: bytes, rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16)
    return buf.getvalue()


def rpc_message(exc: grpc.RpcError) -> str:
    """One readable line for a failed call; UNAVAILABLE says what to do."""
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return ("the bridge server is not reachable (UNAVAILABLE): it may have stopped or restarted; "
                "start it again (avatar-bridge serve) and retry")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"the call ran out of time (DEADLINE_EXCEEDED: {exc.details()})"
    return f"{code.name}: {exc.details()}"


class _Unavailable(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE

    def details(self):
        return ""


class Relay:
    def __init__(self, target: str):
        self.target = target
        self.channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.AvatarBridgeStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def reachable(self) -> bool:
        try:
            await self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.5)
            return True
        except grpc.RpcError:
            return False

    async def explain(self, exc: grpc.RpcError) -> str:
        """rpc_message, except that a stream cut by the server vanishing (which gRPC may report as INTERNAL or
        UNKNOWN, depending on where the connection broke) is named as that, after a health check confirms it."""
        if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INVALID_ARGUMENT,
                              grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED,
                              grpc.StatusCode.OUT_OF_RANGE) and not await self.reachable():
            return rpc_message(_Unavailable()) + f" (the stream ended with {exc.code().name}: {exc.details()})"
        return rpc_message(exc)

    async def status(self) -> dict:
        out: dict = {"server": self.target}
        t0 = time.perf_counter()
        try:
            h = await self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=3)
            out["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(h.status)
            out["health_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            caps = await self.stub.GetCapabilities(pb.GetCapabilitiesRequest(), timeout=5)
        except grpc.RpcError as exc:
            out["health"] = "UNREACHABLE"
            out["error"] = rpc_message(exc)
            return out
        out.update(version=caps.server_version, api_version=caps.api_version,
                   engines=[{"name": e.name, "kind": e.kind, "description": e.description,
                             "default": e.is_default, "lookahead_ms": round(e.lookahead_ms, 1)}
                            for e in caps.engines],
                   voices=[{"id": v.id, "language": v.language, "description": v.description,
                            "missing": v.missing} for v in caps.voices],
                   limits={"max_audio_seconds": caps.limits.max_audio_seconds,
                           "max_message_bytes": caps.limits.max_message_bytes,
                           "max_concurrent_streams": caps.limits.max_concurrent_streams},
                   blendshape_names=list(caps.blendshape_names), bone_names=list(caps.bone_names),
                   clip_formats=list(caps.clip_formats))
        return out

    async def animate(self, audio: bytes, filename: str, form) -> Animation:
        req = pb.AnimateClipRequest(audio_file=audio, format_hint=filename.rsplit(".", 1)[-1] if "." in filename else "",
                                    fps=fps_from_form(form), stream_id=f"console:{filename}"[:120],
                                    style=style_from_form(form), engine=form.get("engine") or "",
                                    transcript=form.get("transcript") or "")
        call = self.stub.AnimateClip(req, timeout=300)
        return Animation.collect([r async for r in call])

    async def speak(self, form) -> SpeechResult:
        text = (form.get("text") or "").strip()
        if not text:
            raise FormError("text is empty: type what the avatar should say")
        rate = number(form, "rate") if form.get("rate") else 0.0
        start = pb.SpeakRequest(start=pb.SpeakStart(
            text=text, voice=form.get("voice") or "", language=form.get("language") or "", speaking_rate=rate,
            style=style_from_form(form), fps=fps_from_form(form), stream_id="console:speak"))

        async def requests():
            yield start

        call = self.stub.Speak(requests(), timeout=300)
        return SpeechResult.collect([r async for r in call])

    async def capture(self, data: bytes, filename: str) -> VideoCaptureResult:
        reqs = list(capture_video_requests(data, stream_id=f"console:{filename}"[:120]))

        async def requests():
            for r in reqs:
                yield r

        call = self.stub.CaptureVideo(requests(), timeout=600)
        return collect_video([r async for r in call])
