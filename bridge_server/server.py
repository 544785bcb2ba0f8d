"""Build and run the gRPC server: service, health, reflection, metrics, signals."""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from avatarbridge.v1 import bridge_pb2 as pb
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc
from bridge_server import __version__, metrics, outputs, security
from bridge_server.config import ServerConfig
from bridge_server.service import BridgeService
from bridge_server.rpc.video import start_video_pool
from bridge_server.workers import WorkerPool
from engine.worker.specs import WorkerConfig

log = logging.getLogger("bridge_server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AvatarBridge"].full_name


def grpc_options(cfg: ServerConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.max_send_message_length", cfg.max_message_bytes),
        ("grpc.keepalive_time_ms", int(cfg.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(cfg.keepalive_timeout_s * 1000)),
        # Let clients ping every 10 s without a GOAWAY (Unity/Unreal clients keep idle streams alive).
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Off, so a second server on a taken port fails; on for `serve --fronts N` (bridge_server/fronts.py).
        ("grpc.so_reuseport", 1 if os.environ.get("AVATAR_BRIDGE_FRONT_INDEX") else 0),
    ]


def worker_config(cfg: ServerConfig) -> WorkerConfig:
    """The expression workers' settings, passed as one typed argument."""
    def path(p: str) -> str:
        return os.path.abspath(p) if p else ""
    return WorkerConfig(batch_window_ms=cfg.batch_window_ms, learned_weights=path(cfg.learned_weights),
                        tts_plugins=cfg.tts_plugins, piper_voices=path(cfg.piper_voices),
                        # a benchmark's switch (bench/speak_bench.py): Festival's voice loaded before the first call
                        tts_prewarm=os.environ.get("AVATAR_BRIDGE_TTS_PREWARM") == "1")


def settle_heap() -> None:
    """What start-up made (modules, the gRPC core, the worker pool) lives as long as the process: hand it to the
    collector's permanent generation, so a full collection under load walks only what the streams made. A full
    pass over the start-up heap (~40,000 objects) takes 10-20 ms, a stall of every stream of this front at once;
    under load that lands in the latency tail."""
    gc.collect()
    gc.freeze()


async def serve(cfg: ServerConfig) -> int:
    try:
        outputs.parse_targets(cfg.outputs)  # fail before starting workers
    except ValueError as exc:
        raise SystemExit(f"avatar-bridge serve: {exc}") from None
    sec = security.server_security_or_exit(cfg)  # TLS/token files and the non-loopback rule, before workers start
    pool = WorkerPool(cfg.resolved_workers(), cfg.worker_timeout_s, cfg.max_inflight_chunks,
                      cfg.log_level, cfg.log_format, extra_args=["--config", worker_config(cfg).to_json().decode()])
    await pool.start()
    video_pool = await start_video_pool(cfg)
    service = BridgeService(cfg, pool, __version__, video_pool)
    server = grpc.aio.server(options=grpc_options(cfg), interceptors=sec.interceptors)
    pb_grpc.add_AvatarBridgeServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        address = f"{cfg.host}:{cfg.port}"
        port = (server.add_secure_port(address, sec.credentials) if sec.credentials
                else server.add_insecure_port(address))
    except RuntimeError as exc:
        await pool.stop()
        raise SystemExit(f"cannot listen on {cfg.host}:{cfg.port} ({exc}); is another server running? "
                         "pick another --port") from None
    await server.start()
    try:
        metrics_port = metrics.serve_metrics(cfg.metrics_host, cfg.metrics_port)
    except OSError as exc:
        await server.stop(None)
        await pool.stop()
        if video_pool:
            await video_pool.stop()
        raise SystemExit(f"avatar-bridge serve: cannot serve metrics on {cfg.metrics_host}:{cfg.metrics_port} "
                         f"({exc.strerror or exc}); pick another --metrics-port, 0 for any free port, or -1 "
                         "to turn metrics off") from None
    settle_heap()
    lag_watch = asyncio.get_running_loop().create_task(metrics.watch_loop_lag())
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", extra={"address": f"{cfg.host}:{port}", "metrics_port": metrics_port,
                               "workers": pool.count, "version": __version__, "security": sec.describe()})
    if cfg.ready_file:
        tmp = cfg.ready_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"port": port, "metrics_port": metrics_port, "pid": os.getpid(),
                       "worker_pids": pool.worker_pids()}, fh)
        os.replace(tmp, cfg.ready_file)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if sec.tokens:
        loop.add_signal_handler(signal.SIGHUP, sec.tokens.reload)
    await stop.wait()

    lag_watch.cancel()
    log.info("draining", extra={"live_streams": len(service.calls), "grace_s": cfg.grace_s})
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    service.begin_drain()
    await _wait_calls(service, cfg.grace_s)
    await server.stop(1.0)  # cancels whatever outlived the grace period
    await pool.stop()
    if video_pool:
        await video_pool.stop()
    log.info("stopped")
    return 0


async def _wait_calls(service: BridgeService, grace_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + grace_s
    while service.calls and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
