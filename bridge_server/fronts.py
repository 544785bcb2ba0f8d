"""`serve --fronts N`: N front processes share one port (SO_REUSEPORT), with one metrics view.

One Python gRPC front tops out near one core, about half of it per-message gRPC work (docs/scaling.md), so
more streams need more front processes, not a faster event loop. Here a small supervisor (this module, no gRPC
in it) starts N ordinary `serve` processes on the same address; the kernel spreads incoming connections over
them. Each front owns its connections, its streams and its own engine workers (the workers are partitioned:
W workers over N fronts), so every guarantee of one server holds per front unchanged: credit-based flow
control, bounded buffers, a dead worker ends only its streams. A front that dies ends only the streams on its
connections (the client sees UNAVAILABLE and reconnects, landing on a live front) and is started again.

Metrics: the fronts write Prometheus values into a shared directory (prometheus_client's multiprocess mode,
PROMETHEUS_MULTIPROC_DIR) and the supervisor serves the sum on the one --metrics-port.

Shutdown: SIGTERM/SIGINT to the supervisor is passed to every front, which drains as a single server does;
the supervisor exits 0 once they have.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import fields

from bridge_server.config import ServerConfig

log = logging.getLogger("bridge_server.fronts")
FRONT_ENV = "AVATAR_BRIDGE_FRONT_INDEX"  # set in each front: it binds with SO_REUSEPORT (server.grpc_options)
START_TIMEOUT_S = 120.0
RESTART_DELAY_S = 1.0


def split_workers(total: int, fronts: int) -> list[int]:
    """Engine workers per front: `total` dealt out evenly, at least one each."""
    return [max(1, total // fronts + (1 if i < total % fronts else 0)) for i in range(fronts)]


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (not listen) host:port with SO_REUSEPORT: turns port 0 into a real port the fronts can share, and
    fails at once if a server without SO_REUSEPORT already holds it. Closed once the fronts listen."""
    family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    return sock


def front_argv(cfg: ServerConfig, port: int, workers: int, ready_file: str) -> list[str]:
    """`serve` with every setting of `cfg` as a flag (flags win over the front's own config file and
    environment, so each front runs exactly the supervisor's configuration), except its own slice."""
    own = {"port": port, "workers": workers, "metrics_port": -1, "ready_file": ready_file, "fronts": 1}
    argv = [sys.executable, "-m", "bridge_server.cli", "serve"]
    for f in fields(ServerConfig):
        flag, value = "--" + f.name.replace("_", "-"), own.get(f.name, getattr(cfg, f.name))
        if isinstance(value, bool):  # a switch (--insecure): present or absent
            argv += [flag] if value else []
        else:
            argv += [flag, str(value)]
    return argv


class Front:
    def __init__(self, index: int, workers: int, tmp: str):
        self.index, self.workers, self.tmp = index, workers, tmp
        self.proc: subprocess.Popen | None = None
        self.ready_file = ""
        self.info: dict = {}

    def start(self, cfg: ServerConfig, port: int, env: dict) -> None:
        self.ready_file = os.path.join(self.tmp, f"front{self.index}-{time.monotonic_ns()}.json")
        self.info = {}
        self.proc = subprocess.Popen(front_argv(cfg, port, self.workers, self.ready_file),
                                     env=dict(env, **{FRONT_ENV: str(self.index)}))

    def poll_ready(self) -> bool:
        if not self.info and os.path.exists(self.ready_file):
            with open(self.ready_file) as fh:
                self.info = json.load(fh)
        return bool(self.info)


def serve_multiprocess_metrics(host: str, port: int, path: str) -> int:
    if port < 0:
        return -1
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server.server_address[1]


def run_fronts(cfg: ServerConfig) -> int:
    n = cfg.fronts
    tmp = tempfile.mkdtemp(prefix="avatar-bridge-fronts-")
    metrics_dir = os.path.join(tmp, "metrics")
    os.mkdir(metrics_dir)
    try:
        return _run(cfg, n, tmp, metrics_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(cfg: ServerConfig, n: int, tmp: str, metrics_dir: str) -> int:
    try:
        reservation = reserve_port(cfg.host, cfg.port)
    except OSError as exc:
        print(f"avatar-bridge serve: cannot listen on {cfg.host}:{cfg.port} ({exc.strerror or exc}); is another "
              "server running? pick another --port", file=sys.stderr)
        return 1
    port = reservation.getsockname()[1]
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=metrics_dir)
    total = cfg.resolved_workers()
    fronts = [Front(i, w, tmp) for i, w in enumerate(split_workers(total, n))]
    if total < n:
        log.warning("fewer workers than fronts: each front gets one", extra={"workers": total, "fronts": n})

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    for f in fronts:
        f.start(cfg, port, env)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not all(f.poll_ready() for f in fronts):
        dead = [f for f in fronts if f.proc.poll() is not None]
        if dead or stop.is_set() or time.monotonic() > deadline:
            why = (f"front {dead[0].index} exited with code {dead[0].proc.returncode} during start-up" if dead else
                   "interrupted" if stop.is_set() else f"fronts did not start within {START_TIMEOUT_S:.0f} s")
            _stop_all(fronts, grace_s=5.0)
            reservation.close()
            print(f"avatar-bridge serve: {why}", file=sys.stderr)
            return 1
        stop.wait(0.05)
    reservation.close()  # every front listens on the port now; it stays taken while any one does

    metrics_port = serve_multiprocess_metrics(cfg.metrics_host, cfg.metrics_port, metrics_dir)
    log.info("serving", extra={"address": f"{cfg.host}:{port}", "metrics_port": metrics_port, "fronts": n,
                               "workers": total, "front_pids": [f.proc.pid for f in fronts]})
    if cfg.ready_file:
        info = {"port": port, "metrics_port": metrics_port, "pid": os.getpid(),
                "front_pids": [f.proc.pid for f in fronts],
                "worker_pids": [pid for f in fronts for pid in f.info.get("worker_pids", [])]}
        with open(cfg.ready_file + ".tmp", "w") as fh:
            json.dump(info, fh)
        os.replace(cfg.ready_file + ".tmp", cfg.ready_file)

    while not stop.wait(0.1):
        for f in fronts:
            code = f.proc.poll()
            if code is None:
                continue
            # Only its own connections' streams were lost; the others keep serving on the shared port.
            log.error("front exited; starting another", extra={"front": f.index, "pid": f.proc.pid,
                                                               "returncode": code})
            from prometheus_client import multiprocess
            multiprocess.mark_process_dead(f.proc.pid, metrics_dir)  # drop its live gauges
            if stop.wait(RESTART_DELAY_S):
                break
            f.start(cfg, port, env)

    log.info("draining", extra={"fronts": n, "grace_s": cfg.grace_s})
    _stop_all(fronts, grace_s=cfg.grace_s + 15.0)  # each front: grace, then its own worker shutdown
    log.info("stopped")
    return 0


def _stop_all(fronts: list[Front], grace_s: float) -> None:
    live = [f.proc for f in fronts if f.proc and f.proc.poll() is None]
    for p in live:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in live:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
