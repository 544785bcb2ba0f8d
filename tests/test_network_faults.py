"""Faults across a network: the server in one network namespace, its clients in another, joined by a wire
that can delay, drop and cut packets (tests/netns.py, tests/netwire.py).

One server for the module (2 workers, short keepalive and watchdog so faults show within seconds); each test
states the time within which the fault must be detected. docs/reliability.md "Faults across a network".
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from netns import NetPair

WHY = NetPair.unavailable()
pytestmark = pytest.mark.skipif(bool(WHY), reason=f"network namespaces unavailable: {WHY}")

HELLO = str(ROOT / "examples" / "hello.wav")  # 10.7 s
LINE = str(ROOT / "examples" / "line.wav")  # 6.3 s
KEEPALIVE_S, KEEPALIVE_TIMEOUT_S = 2.0, 3.0  # the server's keepalive in these tests
WORKER_TIMEOUT_S = 4.0  # the watchdog's limit in these tests
PORT = 50051


def _insecure_flag() -> list[str]:
    """`--insecure` where serve has it (a non-loopback bind without TLS may need it), else nothing."""
    out = subprocess.run([sys.executable, "-m", "bridge_server.cli", "serve", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60).stdout
    return ["--insecure"] if "--insecure" in out else []


class NetServer:
    def __init__(self, net: NetPair, tmp):
        self.net = net
        self.ready = tmp / "ready.json"
        self.log_path = tmp / "server.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [*net.exec_args(net.server_ns), sys.executable, "-m", "bridge_server.cli", "serve",
             "--host", net.server_ip, "--port", str(PORT), "--metrics-port", "-1", "--workers", "2",
             "--ready-file", str(self.ready), "--log-format", "json", "--log-level", "info",
             "--keepalive-time-s", str(KEEPALIVE_S), "--keepalive-timeout-s", str(KEEPALIVE_TIMEOUT_S),
             "--worker-timeout-s", str(WORKER_TIMEOUT_S), "--max-pending-frames", "60", *_insecure_flag()],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while not self.ready.exists():
            assert self.proc.poll() is None and time.monotonic() < deadline, \
                f"server did not start (rc={self.proc.poll()}):\n{self.log_path.read_text()}"
            time.sleep(0.05)
        self.worker_pids = json.loads(self.ready.read_text())["worker_pids"]
        self.target = f"{net.server_ip}:{PORT}"

    def ended(self, stream_id: str) -> list[dict]:
        """The server's "stream ended" log records for this stream id."""
        out = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                rec = json.loads(line)
                if rec.get("msg") == "stream ended" and rec.get("stream_id") == stream_id:
                    out.append(rec)
        return out

    def wait_ended(self, stream_id: str, count: int, timeout: float) -> tuple[dict, float]:
        """Block until the server has logged `count` ends of this stream id; (the last, when it was seen)."""
        deadline = time.monotonic() + timeout
        while len(recs := self.ended(stream_id)) < count:
            assert time.monotonic() < deadline, \
                f"the server did not end stream {stream_id!r} within {timeout} s; its log:\n" + self.log_path.read_text()[-4000:]
            time.sleep(0.05)
        return recs[count - 1], time.monotonic()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Client:
    """tests/netfault_client.py inside the client namespace; its JSON events, read as they come."""

    def __init__(self, net: NetPair, target: str, mode: str, wav: str, *extra: str):
        self.proc = subprocess.Popen(
            [*net.exec_args(net.client_ns), sys.executable, str(ROOT / "tests" / "netfault_client.py"), mode,
             target, wav, *extra], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})

    def next(self, event: str | None = None, timeout: float = 60) -> dict:
        """The next event (skipping others until `event`, when given)."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.proc.stdout.readline()  # the client always ends with done/error, then exits
            assert line, f"the client exited (rc={self.proc.wait(10)}) before {event or 'its next event'}"
            ev = json.loads(line)
            if event is None or ev["event"] == event or ev["event"] in ("done", "error"):
                return ev
            assert time.monotonic() < deadline

    def end(self) -> dict:
        ev = self.next("done")
        self.proc.wait(30)
        return ev

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with NetPair() as pair:
        srv = NetServer(pair, tmp_path_factory.mktemp("netfaults"))
        try:
            yield pair, srv
        finally:
            srv.stop()


@pytest.fixture
def clients():
    made: list[Client] = []
    yield made
    for c in made:
        c.kill()


def _expected_frames(ev: dict, fps: int = 30) -> int:
    return math.ceil(ev["samples"] * fps / ev["rate"])


def test_loss_and_delay_keep_every_frame(net, clients):
    pair, srv = net
    pair.control("set loss=0 delay_ms=0")
    clients.append(Client(pair, srv.target, "stream", LINE, "--fast"))
    clean = clients[-1].end()
    assert clean["event"] == "done", clean
    # 5 % of packets dropped each way, 40 ms each way (80 ms RTT): TCP retransmits, the stream is exact.
    pair.control("set loss=0.05 delay_ms=40")
    try:
        clients.append(Client(pair, srv.target, "stream", LINE))
        lossy = clients[-1].end()
    finally:
        pair.control("set loss=0 delay_ms=0")
    assert lossy["event"] == "done", lossy
    assert lossy["frames"] == lossy["frames_sent"] == _expected_frames(lossy)
    assert lossy["digest"] == clean["digest"], "frames over the lossy link differ from the clean link's"


def test_partition_mid_stream_is_detected_by_keepalive(net, clients):
    pair, srv = net
    before = len(srv.ended("stream"))
    client_keepalive_s, client_timeout_s = 2.0, 2.0
    clients.append(Client(pair, srv.target, "stream", HELLO, "--keepalive-ms", str(int(client_keepalive_s * 1000)),
                          "--keepalive-timeout-ms", str(int(client_timeout_s * 1000))))
    c = clients[-1]
    assert c.next("frames")["event"] == "frames"
    pair.control("cut")
    cut_at = time.monotonic()
    try:
        err = c.next()
        assert err["event"] == "error" and err["code"] == "UNAVAILABLE", err
        # The client's keepalive: a ping unanswered for keepalive + timeout; 2 s slack for a loaded machine.
        assert err["t"] - cut_at < client_keepalive_s + client_timeout_s + 2.0, err
        rec, seen = srv.wait_ended("stream", before + 1, timeout=30)
        assert rec["code"] == "CANCELLED", rec
        print(f"measured: partition detected by the client in {err['t'] - cut_at:.2f} s, "
              f"by the server in {seen - cut_at:.2f} s")
        assert seen - cut_at < KEEPALIVE_S + KEEPALIVE_TIMEOUT_S + 2.0, \
            f"the server took {seen - cut_at:.1f} s to end the partitioned stream"
    finally:
        pair.control("heal")
    # After the partition heals, the same server serves a new client in full.
    clients.append(Client(pair, srv.target, "stream", LINE, "--fast"))
    ok = clients[-1].end()
    assert ok["event"] == "done" and ok["frames"] == _expected_frames(ok), ok


def test_client_that_never_reads_is_ended_and_others_are_served(net, clients):
    pair, srv = net
    # 20 x 10.7 s of speech sent as fast as the server takes it, nothing read back.
    clients.append(Client(pair, srv.target, "noread", HELLO, "--repeat", "20"))
    stuck = clients[-1]
    assert stuck.next("started")["event"] == "started"
    # The server ends it within seconds (it cannot tell the client, which is not reading) and frees its slot.
    rec, _ = srv.wait_ended("noread", 1, timeout=60)
    assert rec["code"] == "RESOURCE_EXHAUSTED", rec
    assert rec["seconds"] < 30, rec
    print(f"measured: non-reading client's stream ended by the server after {rec['seconds']:.2f} s")
    # Another client on the same server is unaffected.
    clients.append(Client(pair, srv.target, "stream", LINE, "--fast"))
    ok = clients[-1].end()
    assert ok["event"] == "done" and ok["frames"] == ok["frames_sent"] == _expected_frames(ok), ok
    # When the stuck client finally reads, it gets the frames that were sent, then the reason.
    stuck.proc.stdin.write("read\n")
    stuck.proc.stdin.flush()
    err = stuck.next("error")
    assert err["event"] == "error" and err["code"] == "RESOURCE_EXHAUSTED", err
    assert "stopped reading" in err["details"] and "max_pending_frames" in err["details"], err


def test_stopped_worker_is_killed_and_only_its_streams_fail(net, clients):
    pair, srv = net
    # Two live streams at once: the pool gives each its own worker (least loaded first).
    a = Client(pair, srv.target, "stream", HELLO)
    clients.append(a)
    assert a.next("frames")["event"] == "frames"
    b = Client(pair, srv.target, "stream", HELLO)
    clients.append(b)
    assert b.next("frames")["event"] == "frames"
    victim = srv.worker_pids[0]  # a's worker: the first stream went to the first idle worker
    os.kill(victim, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        err = a.next()
        ok = b.end()
    finally:
        try:
            os.kill(victim, signal.SIGKILL)  # no-op once the watchdog has done it
        except ProcessLookupError:
            pass
    assert err["event"] == "error" and err["code"] == "UNAVAILABLE", err
    assert f"pid {victim}" in err["details"] and "worker_timeout_s" in err["details"], err
    # The watchdog looks every second: worker_timeout_s + 1 s, plus 2 s slack for a loaded machine.
    print(f"measured: stopped worker's stream failed {err['t'] - stopped_at:.2f} s after SIGSTOP")
    assert err["t"] - stopped_at < WORKER_TIMEOUT_S + 1.0 + 2.0, err
    assert ok["event"] == "done" and ok["frames"] == ok["frames_sent"] == _expected_frames(ok), ok
