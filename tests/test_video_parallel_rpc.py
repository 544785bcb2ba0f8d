"""GenerateVideo over real gRPC with a video worker that owns a 2-rank group (CPU test mode, gloo): frames
stream as with one process; a rank killed during a request ends the stream with UNAVAILABLE (stated bound: 15 s
after the kill) and the next request gets a fresh group."""
from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

import video_ckpt as vc  # noqa: E402
from avatarbridge.v1 import bridge_pb2 as pb  # noqa: E402
from conftest import Server, shared_file  # noqa: E402
from test_video_parallel import AUD  # noqa: E402
from test_video_rpc import collect, wav_bytes  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ckpt = vc.write_all(str(tmp_path_factory.mktemp("video_par_rpc_ckpt")))
    srv = Server(tmp_path_factory.mktemp("video_par_server"), workers=1,
                 extra=["--video-ckpt-dir", ckpt, "--video-lora", os.path.join(ckpt, "liveavatar.safetensors"),
                        "--video-device", "cpu", "--video-num-gpus-dit", "2", "--video-rank-timeout-s", "60"])
    yield srv
    srv.stop()


def request() -> pb.GenerateVideoRequest:
    image = shared_file("images/hallo_3.jpg").read_bytes()  # the server checks for a face
    return pb.GenerateVideoRequest(image=image, audio_file=wav_bytes(AUD, 16000), prompt="a man is talking",
                                   size="64*64", seed=5, stream_id="v", infer_frames=12)


def ranks_of(server_pid: int) -> list[int]:
    """The rank processes: spawned children of the server's video worker."""
    def ppid(pid):
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[1])
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            pid = int(d)
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            if b"multiprocessing.spawn" in cmd and ppid(ppid(pid)) == server_pid:
                out.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return sorted(out)


def test_rank_group_streams_and_a_killed_rank_is_unavailable(server):
    hdr, frames, status = collect(list(server.stub.GenerateVideo(request(), timeout=600)))
    assert len(frames) == hdr.expected_frames == status.frames_sent == 22
    ranks = ranks_of(server.proc.pid)
    assert len(ranks) == 2
    os.kill(ranks[1], signal.SIGSTOP)  # it cannot finish the next request, whatever the timing
    killer = threading.Timer(2.0, os.kill, (ranks[1], signal.SIGKILL))
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        list(server.stub.GenerateVideo(request(), timeout=600))
    assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "exited (code -9)" in ei.value.details() and "restarts on the next request" in ei.value.details()
    assert time.monotonic() - t0 < 2.0 + 15
    hdr, frames, status = collect(list(server.stub.GenerateVideo(request(), timeout=600)))  # a fresh group
    assert len(frames) == status.frames_sent == 22
    assert ranks_of(server.proc.pid) not in ([], ranks)
