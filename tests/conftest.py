"""Shared fixtures: a real bridge server on a free loopback port, real media from ../shared."""
from __future__ import annotations

import json
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request

import grpc
import numpy as np
import pytest

from avatarbridge.v1 import bridge_pb2 as pb
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

# Limits small enough that tests can hit them quickly.
TEST_SERVER_ARGS = ["--max-message-bytes", str(1024 * 1024), "--max-pending-frames", "60",
                    "--max-clip-seconds", "120", "--max-audio-seconds", "1200", "--idle-timeout-s", "3",
                    "--header-timeout-s", "2",
                    "--grace-s", "5", "--max-image-pixels", str(2000 * 2000)]
FACE_MODEL = SHARED / "models" / "face_landmarker.task"
if FACE_MODEL.exists():
    TEST_SERVER_ARGS += ["--face-landmarker", str(FACE_MODEL)]


def shared_file(rel: str) -> pathlib.Path:
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"shared test media {path} is missing (see ../shared/data/MANIFEST.md)")
    return path


def load_audio(rel: str, rate: int | None = None) -> tuple[np.ndarray, int]:
    """Real speech from ../shared as mono float32 (optionally resampled)."""
    import soundfile as sf
    import soxr

    x, sr = sf.read(str(shared_file(rel)), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if rate and rate != sr:
        x, sr = soxr.resample(x, sr, rate).astype(np.float32), rate
    return x, sr


def pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


class Server:
    def __init__(self, tmp: pathlib.Path, workers: int = 2, extra: list[str] | None = None):
        self.ready = tmp / f"ready-{time.monotonic_ns()}.json"
        self.log = open(tmp / f"server-{time.monotonic_ns()}.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge_server.cli", "serve", "--port", "0", "--metrics-port", "0",
             "--workers", str(workers), "--ready-file", str(self.ready), *TEST_SERVER_ARGS, *(extra or [])],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"server did not start (rc={self.proc.poll()}):\n{self.log.read()}")
            time.sleep(0.05)
        info = json.loads(self.ready.read_text())
        self.port, self.metrics_port, self.worker_pids = info["port"], info["metrics_port"], info["worker_pids"]
        self.target = f"127.0.0.1:{self.port}"
        self.channel = grpc.insecure_channel(self.target)
        self.stub = pb_grpc.AvatarBridgeStub(self.channel)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, labels: str = "") -> float:
        key = f"{name}{{{labels}}}" if labels else name
        for line in self.metrics().splitlines():
            if line.startswith(key + " "):
                return float(line.split()[-1])
        return 0.0

    def logs(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("server"))
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path):
    """A server of its own, for tests that kill workers or stop the server."""
    servers = []

    def make(**kw):
        servers.append(Server(tmp_path, **kw))
        return servers[-1]

    yield make
    for s in servers:
        s.stop(signal.SIGKILL) if s.proc.poll() is None else None


def header(rate=16000, fps=30, channels=1, encoding=pb.AUDIO_ENCODING_PCM16, stream_id="t", **kw):
    return pb.ExpressionRequest(header=pb.StreamHeader(encoding=encoding, sample_rate=rate, channels=channels,
                                                       fps=fps, stream_id=stream_id, **kw))


def audio(data: bytes):
    return pb.ExpressionRequest(audio=pb.AudioChunk(data=data))


END = pb.ExpressionRequest(end=pb.EndOfAudio())


def chunks(data: bytes, size: int):
    return [audio(data[i:i + size]) for i in range(0, len(data), size)]


def split(responses):
    """(header, frames, status) from a list of ExpressionResponse."""
    hdr = [r.header for r in responses if r.WhichOneof("msg") == "header"]
    frames = [f for r in responses if r.WhichOneof("msg") == "frames" for f in r.frames.frames]
    status = [r.status for r in responses if r.WhichOneof("msg") == "status"]
    return (hdr[0] if hdr else None), frames, (status[0] if status else None)


def assert_still_serving(srv: Server) -> None:
    """After a bad request, the server must go on serving a good one."""
    x = np.zeros(1600, np.float32)
    resp = list(srv.stub.StreamExpression(iter([header(), audio(pcm16(x)), END]), timeout=30))
    hdr, frames, status = split(resp)
    assert hdr is not None and status is not None and len(frames) == 3
