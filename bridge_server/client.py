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

# Client-side transport security (docs/security.md); flags win over these environment variables.
ENV_TLS_CA = "AVATAR_BRIDGE_TLS_CA"  # CA certificate (PEM) that signed the server's certificate -> TLS
ENV_TOKEN_FILE = "AVATAR_BRIDGE_TOKEN_FILE"  # file whose first non-comment line is the bearer token
ENV_CLIENT_CERT = "AVATAR_BRIDGE_TLS_CLIENT_CERT"  # this client's certificate (PEM), for mutual TLS
ENV_CLIENT_KEY = "AVATAR_BRIDGE_TLS_CLIENT_KEY"  # ... and its private key (PEM)
CONNECT_TIMEOUT_S = 5.0  # a CLI client waits this long for a server before saying there is none


@dataclass
class ChannelSecurity:
    """How a client reaches the server: TLS roots (None = plaintext), a client certificate, a bearer token."""

    tls_ca: bytes | None = None
    client_cert: bytes | None = None
    client_key: bytes | None = None
    token: str = ""

    @classmethod
    def from_files(cls, tls_ca: str | None = None, token_file: str | None = None, tls_client_cert: str | None = None,
                   tls_client_key: str | None = None) -> "ChannelSecurity":
        """Reads the files; OSError / ValueError with a message naming the flag and the file."""
        if bool(tls_client_cert) != bool(tls_client_key):
            raise ValueError("--tls-client-cert and --tls-client-key go together (mutual TLS)")
        if tls_client_cert and not tls_ca:
            raise ValueError("--tls-client-cert needs --tls-ca too: mutual TLS is TLS plus a client certificate")
        return cls(tls_ca=_read_file(tls_ca, "--tls-ca") if tls_ca else None,
                   client_cert=_read_file(tls_client_cert, "--tls-client-cert") if tls_client_cert else None,
                   client_key=_read_file(tls_client_key, "--tls-client-key") if tls_client_key else None,
                   token=read_token_file(token_file) if token_file else "")

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def _read_file(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise OSError(f"cannot read {flag} {path}: {exc.strerror or exc}") from None


def read_token_file(path: str) -> str:
    """The first line that is neither blank nor a # comment; the token itself never appears in an error."""
    for line in _read_file(path, "--token-file").decode("utf-8", "replace").splitlines():
        if line.strip() and not line.strip().startswith("#"):
            return line.strip()
    raise ValueError(f"--token-file {path} holds no token (one line with the token)")


class _TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call (over TLS or, on loopback / --insecure, plaintext)."""

    def __init__(self, metadata):
        self.metadata = tuple(metadata)

    def _details(self, d):
        return _CallDetails(d.method, d.timeout, (*(d.metadata or ()), *self.metadata), d.credentials,
                            d.wait_for_ready, d.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method, self.timeout, self.metadata = method, timeout, metadata
        self.credentials, self.wait_for_ready, self.compression = credentials, wait_for_ready, compression


def open_channel(target: str, security: ChannelSecurity | None = None, options=CHANNEL_OPTIONS) -> grpc.Channel:
    """A channel to `target`: TLS when security has a CA, with the bearer token on every call when it has one."""
    security = security or ChannelSecurity()
    if security.tls_ca is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=security.tls_ca, private_key=security.client_key,
                                             certificate_chain=security.client_cert)
        channel = grpc.secure_channel(target, creds, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    return grpc.intercept_channel(channel, _TokenInterceptor(security.metadata)) if security.token else channel


def wait_for_server(channel: grpc.Channel, target: str, timeout: float, tls: bool) -> None:
    """Fail fast: raise ConnectionError('no server at HOST:PORT ...') unless the channel connects within timeout."""
    ready = grpc.channel_ready_future(channel)
    try:
        ready.result(timeout=timeout)
        return
    except grpc.FutureTimeoutError:
        ready.cancel()
    # Ask once without waiting, so the error says why (refused, TLS handshake, name not resolved).
    why = ""
    try:
        pb_grpc.AvatarBridgeStub(channel).GetCapabilities(pb.GetCapabilitiesRequest(), timeout=2.0)
    except grpc.RpcError as exc:
        why = exc.details() or exc.code().name
    else:
        return
    low = why.lower()
    if "ssl" in low or "handshake" in low or "tls" in low or "certificate" in low:
        hint = ("the TLS handshake failed: check --tls-ca (the CA that signed the server's certificate), the "
                "host name in the certificate, and --tls-client-cert/--tls-client-key if the server wants one"
                if tls else "the server may want TLS: give --tls-ca FILE (docs/security.md)")
        raise ConnectionError(f"cannot connect to {target}: {hint} ({why})")
    if not tls and ("socket closed" in low or "connection reset" in low):
        raise ConnectionError(f"cannot connect to {target}: it closed the connection; if it is a TLS server, give "
                              f"--tls-ca FILE (docs/security.md) ({why})")
    if tls and ("socket closed" in low or "connection reset" in low or "eof" in low):
        raise ConnectionError(f"cannot connect to {target}: the connection closed during TLS setup; is it a "
                              f"plaintext server (drop --tls-ca) or does it want a client certificate? ({why})")
    raise ConnectionError(f"no server at {target} (nothing answered within {timeout:g} s: {why}); start one with "
                          "`avatar-bridge serve`, or check the host and port")



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


class ClientSetupError(RuntimeError):
    """A client flag or file that cannot be used (reported as one line by the CLI)."""


def add_connection_args(ap) -> None:
    """The flags every CLI client command takes to reach a --server (TLS, token, connect deadline)."""
    g = ap.add_argument_group("connection to --server (docs/security.md)")
    g.add_argument("--tls-ca", metavar="FILE",
                   help="CA certificate (PEM) that signed the server's certificate: connect with TLS "
                        f"(env {ENV_TLS_CA})")
    g.add_argument("--token-file", metavar="FILE",
                   help=f"file holding the bearer token the server wants (env {ENV_TOKEN_FILE})")
    g.add_argument("--tls-client-cert", metavar="FILE",
                   help=f"this client's certificate (PEM) for a mutual-TLS server (env {ENV_CLIENT_CERT})")
    g.add_argument("--tls-client-key", metavar="FILE", help=f"its private key (PEM) (env {ENV_CLIENT_KEY})")
    g.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT_S, metavar="S",
                   help=f"seconds to wait for the server before failing with 'no server at HOST:PORT' "
                        f"(default {CONNECT_TIMEOUT_S:g})")


_CONNECTION_FLAGS = (("tls_ca", ENV_TLS_CA), ("token_file", ENV_TOKEN_FILE), ("tls_client_cert", ENV_CLIENT_CERT),
                     ("tls_client_key", ENV_CLIENT_KEY))


def cli_client(args, target: str, environ=None) -> "BridgeClient":
    """The CLI's client: with --server, the connection flags (or their environment variables) apply and a missing
    server fails within --connect-timeout; the embedded server is plaintext loopback and takes none of them."""
    environ = os.environ if environ is None else environ
    timeout = getattr(args, "connect_timeout", CONNECT_TIMEOUT_S)
    if not getattr(args, "server", None):
        given = [name for name, _ in _CONNECTION_FLAGS if getattr(args, name, None)]
        if given:
            raise ClientSetupError(f"--{given[0].replace('_', '-')} needs --server HOST:PORT (the embedded server "
                                   "is plaintext on loopback)")
        return BridgeClient.connect(target, None, max(timeout, 30.0))
    files = {name: getattr(args, name, None) or environ.get(env) or None for name, env in _CONNECTION_FLAGS}
    try:
        security = ChannelSecurity.from_files(**files)
    except ValueError as exc:
        raise ClientSetupError(str(exc)) from None
    return BridgeClient.connect(target, security, timeout)


class BridgeClient:
    def __init__(self, target: str, security: ChannelSecurity | None = None):
        self.target = target
        self.security = security or ChannelSecurity()
        self.channel = open_channel(target, self.security)
        self.stub = pb_grpc.AvatarBridgeStub(self.channel)

    @classmethod
    def connect(cls, target: str, security: ChannelSecurity | None = None,
                timeout: float = CONNECT_TIMEOUT_S) -> "BridgeClient":
        """A client whose server answered within `timeout` (ConnectionError 'no server at ...' otherwise)."""
        client = cls(target, security)
        try:
            wait_for_server(client.channel, target, timeout, client.security.tls_ca is not None)
        except BaseException:
            client.close()
            raise
        return client

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
def embedded_server(workers: int = 1, extra_args: Iterable[str] = (), ready_info: dict | None = None) -> Iterator[str]:
    """Start `avatar-bridge serve` on a free loopback port for the duration of the block (ready_info, when given,
    receives the server's ready file: port, metrics_port, pids)."""
    with tempfile.TemporaryDirectory() as tmp:
        ready = os.path.join(tmp, "ready.json")
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge_server.cli", "serve", "--host", "127.0.0.1", "--port", "0",
             "--metrics-port", "-1",
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
                info = json.load(fh)
            if ready_info is not None:
                ready_info.update(info)
            yield f"127.0.0.1:{info['port']}"
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
