"""Live Link Face output through a real server: subjects and device ids per stream, continuous timecode,
repeated --outputs flags, bad options refused at start-up, and receivers that vanish mid-stream."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from conftest import END, Server, chunks, header, load_audio, pcm16, split
from test_livelink_face import JFK, Receiver, decode
from test_vmc_output import Receiver as VmcReceiver


def stream(srv, x, sr, stream_id: str, fps: int = 30):
    reqs = [header(rate=sr, fps=fps, stream_id=stream_id), *chunks(pcm16(x), 3200), END]
    return split(list(srv.stub.StreamExpression(iter(reqs), timeout=60)))


@pytest.mark.parametrize("option, message", [
    ("subjct=Face", r"unknown option 'subjct'.*known options: subject="),
    ("device=AvatarBridge", r"device='AvatarBridge' is not a 36-character UUID"),
    ("subject=" + "x" * 256, r"subject= is 256 bytes; Live Link Face packets carry at most 255"),
    ("subject=NPC_{npc}", r"the placeholders are \{stream_id\} and \{speaker\}"),
    ("mirror=yes", r"mirror='yes' is not 0 or 1"),
])
def test_bad_options_stop_the_server_at_start_up_naming_the_option(tmp_path, option, message):
    with pytest.raises(RuntimeError, match=message) as err:
        Server(tmp_path, workers=1, extra=["--outputs", f"livelinkface://127.0.0.1:11111?{option}"])
    assert "Traceback" not in str(err.value)


def test_unknown_vmc_option_key_stops_the_server(tmp_path):
    with pytest.raises(RuntimeError, match=r"unknown option 'name'.*known options: names="):
        Server(tmp_path, workers=1, extra=["--outputs", "vmc://127.0.0.1:39539?name=pascal"])


def test_repeated_outputs_flags_all_mirror(tmp_path):
    llf, vmc = Receiver(), VmcReceiver()
    x, sr = load_audio(JFK)
    srv = Server(tmp_path, workers=1, extra=["--outputs", f"vmc://127.0.0.1:{vmc.port}",
                                             "--outputs", f"livelinkface://127.0.0.1:{llf.port}?pace=0"])
    try:
        hdr, frames, status = stream(srv, x[: 2 * sr], sr, "both")
        packets = llf.wait_for(len(frames), timeout=10)
        deadline = time.monotonic() + 10
        while vmc.count("/VMC/Ext/Blend/Apply") < len(frames) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        srv.stop()
        vmc.close()
    assert len(packets) == len(frames) == 60
    assert vmc.count("/VMC/Ext/Blend/Apply") == len(frames)


def test_subject_template_gives_each_speaker_one_subject_and_device_and_timecode_keeps_rising(tmp_path):
    """Two clips of npc1 one after the other, then npc1 and npc2 at the same time, to one receiver with
    subject=NPC_{speaker}: each device id only ever carries one subject (Unreal re-creates a subject when
    a device's name changes), npc1's clips share subject and device, and its timecode never goes back."""
    rx = Receiver()
    x, sr = load_audio(JFK)
    x = x[: 2 * sr]
    srv = Server(tmp_path, workers=2, extra=["--outputs", f"livelinkface://127.0.0.1:{rx.port}?pace=0&subject=NPC_{{speaker}}"])
    try:
        n1 = len(stream(srv, x, sr, "npc1/clip-1")[1])
        time.sleep(0.3)
        n2 = len(stream(srv, x, sr, "npc1/clip-2")[1])
        results = {}
        threads = [threading.Thread(target=lambda s=s: results.update({s: stream(srv, x, sr, s)})) for s in
                   ("npc1/clip-3", "npc2/clip-1")]
        [t.start() for t in threads]
        [t.join() for t in threads]
        total = n1 + n2 + sum(len(r[1]) for r in results.values())
        packets = [decode(p) for _, p in rx.wait_for(total, timeout=15)]
    finally:
        srv.stop()
    assert len(packets) == total == 240
    by_device: dict[str, set] = {}
    for p in packets:
        by_device.setdefault(p["device"], set()).add(p["subject"])
    assert sorted(map(sorted, by_device.values())) == [["NPC_npc1"], ["NPC_npc2"]]
    npc1 = [p["frame"] + p["subframe"] for p in packets if p["subject"] == "NPC_npc1"]
    clip1, clip2 = npc1[:n1], npc1[n1:n1 + n2]
    # The clips arrive faster than real time: the second is stamped one frame after the first one's end.
    assert min(clip2) == pytest.approx(max(clip1) + 1, abs=2e-3)
    assert np.all(np.diff(npc1) > 0.99), "a subject's timecode went back"


def test_same_subject_gives_the_same_device_id_after_a_restart(tmp_path):
    ids = []
    x, sr = load_audio(JFK)
    for _ in range(2):
        rx = Receiver()
        srv = Server(tmp_path, workers=1, extra=["--outputs", f"livelinkface://127.0.0.1:{rx.port}?pace=0&subject=Ada"])
        try:
            n = len(stream(srv, x[:sr // 2], sr, "any")[1])
            ids.append({decode(p)["device"] for _, p in rx.wait_for(n, timeout=10)})
        finally:
            srv.stop()
    assert ids[0] == ids[1] and len(ids[0]) == 1


def test_a_receiver_that_vanishes_mid_stream_does_not_touch_grpc(tmp_path):
    """The receiver closes its socket after a few packets (ICMP port unreachable from then on): the gRPC stream
    still delivers every frame, identical to a run without outputs, and the server serves the next stream."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    port = rx.getsockname()[1]
    x, sr = load_audio(JFK)
    x = x[: 3 * sr]
    srv = Server(tmp_path, workers=1, extra=["--outputs", f"livelinkface://127.0.0.1:{port}"])
    try:
        got = {}
        t = threading.Thread(target=lambda: got.update(r=stream(srv, x, sr, "s", fps=60)))
        t.start()
        for _ in range(5):
            rx.recv(2048)
        rx.close()  # gone mid-stream
        t.join()
        hdr, frames, status = got["r"]
        assert len(frames) == status.frames_sent == 180
        hdr2, frames2, status2 = stream(srv, x, sr, "s", fps=60)
        assert [f.weights for f in frames2] == [f.weights for f in frames]
        time.sleep(3.5)  # the paced tails end
        logs = srv.logs()
        assert srv.proc.poll() is None
    finally:
        srv.stop()
    assert "Traceback" not in logs and "livelinkface output closed" in logs
