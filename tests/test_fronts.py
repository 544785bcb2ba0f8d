"""`serve --fronts N`: several front processes on one port (SO_REUSEPORT), one metrics view, isolation."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("avatar_bridge_")}


def _load(target: str, streams: int, seconds: float, out: pathlib.Path, started: pathlib.Path | None = None):
    argv = [sys.executable, str(ROOT / "tests" / "lb_load.py"), "--target", target, "--streams", str(streams),
            "--channels", str(streams), "--seconds", str(seconds), "--out", str(out)]  # one connection each
    if started:
        argv += ["--started", str(started)]
    return subprocess.Popen(argv, cwd=ROOT)


def _wait(cond, what: str, timeout: float = 60.0, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc is None or proc.poll() is None, f"exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_fronts_share_the_port_and_a_dead_front_loses_only_its_streams(tmp_path):
    ready = tmp_path / "ready.json"
    server = subprocess.Popen([sys.executable, "-m", "bridge_server.cli", "serve", "--fronts", "2", "--workers", "2",
                               "--port", "0", "--metrics-port", "0", "--ready-file", str(ready), "--grace-s", "3",
                               "--log-format", "text"], cwd=ROOT, stderr=open(tmp_path / "server.log", "w"))
    try:
        _wait(ready.exists, "the fronts to start", 120, server)
        info = json.loads(ready.read_text())
        assert len(info["front_pids"]) == 2 and len(info["worker_pids"]) == 2
        target, mport = f"127.0.0.1:{info['port']}", info["metrics_port"]
        # 16 connections, spread over the two fronts by the kernel; one front is killed mid-stream.
        started, out = tmp_path / "started", tmp_path / "load.json"
        load = _load(target, 16, 5.0, out, started)
        _wait(started.exists, "every stream to have frames", 60, load)
        killed_at = time.time()
        os.kill(info["front_pids"][0], signal.SIGKILL)
        assert load.wait(90) == 0
        rows = json.loads(out.read_text())["streams"]
        ok = [r for r in rows if r["code"] == "OK"]
        lost = [r for r in rows if r["code"] != "OK"]
        assert ok and lost, f"both fronts should have had streams: {rows}"
        for r in ok:  # the other front's streams: untouched
            assert r["frames"] == r["expected"], r
        for r in lost:  # the killed front's: UNAVAILABLE at once, so the client reconnects
            assert r["code"] == "UNAVAILABLE", r
            assert r["ended"] - killed_at < 1.0, r
        # The supervisor starts another front; the metrics are the sum over the fronts, dead one's counts kept.
        _wait(lambda: _metrics(mport).get("avatar_bridge_workers_alive") == 2.0, "a replacement front", 120)
        m = _metrics(mport)
        assert m['avatar_bridge_streams_total{code="OK",rpc="StreamExpression"}'] == len(ok)
        assert m['avatar_bridge_live_streams{rpc="StreamExpression"}'] == 0.0
        assert m['avatar_bridge_frames_sent_total{rpc="StreamExpression"}'] >= sum(r["frames"] for r in ok)
        out2 = tmp_path / "load2.json"
        load = _load(target, 4, 1.0, out2)
        assert load.wait(60) == 0
        assert [(r["code"], r["frames"]) for r in json.loads(out2.read_text())["streams"]] == [("OK", 30)] * 4
        assert _metrics(mport)['avatar_bridge_streams_total{code="OK",rpc="StreamExpression"}'] == len(ok) + 4
        server.send_signal(signal.SIGTERM)  # every front drains; the supervisor exits 0
        assert server.wait(60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(30)


def test_fronts_refuse_a_taken_port_and_bad_counts(tmp_path):
    with socket.socket() as held:  # a plain listener, as a server without SO_REUSEPORT has
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "bridge_server.cli", "serve", "--fronts", "2", "--port", str(port),
                            "--metrics-port", "-1"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "bridge_server.cli", "serve", "--fronts", "0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "fronts" in r.stderr and "1..64" in r.stderr and "Traceback" not in r.stderr
