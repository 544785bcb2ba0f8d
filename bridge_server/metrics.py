"""Prometheus metrics (served on --metrics-port at /metrics)."""
from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry()

# multiprocess_mode: with `serve --fronts N` each front writes its values to PROMETHEUS_MULTIPROC_DIR and the
# supervisor serves the sum over the live fronts (bridge_server/fronts.py); ignored in a single process.
LIVE_STREAMS = Gauge("avatar_bridge_live_streams", "Streams being served now", ["rpc"], registry=REGISTRY,
                     multiprocess_mode="livesum")
STREAMS = Counter("avatar_bridge_streams_total", "Streams ended, by RPC and final gRPC status code",
                  ["rpc", "code"], registry=REGISTRY)
FRAMES_SENT = Counter("avatar_bridge_frames_sent_total", "Expression frames written to clients",
                      ["rpc"], registry=REGISTRY)
AUDIO_SECONDS = Counter("avatar_bridge_audio_seconds_total", "Seconds of audio animated", ["rpc"],
                        registry=REGISTRY)
_LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
FRAME_LATENCY = Histogram(
    "avatar_bridge_frame_latency_seconds",
    "StreamExpression: frame written to the client minus arrival of the audio chunk that completed it",
    buckets=_LATENCY_BUCKETS, registry=REGISTRY)
WORKER_RTT = Histogram("avatar_bridge_worker_roundtrip_seconds", "Audio chunk sent to a worker until its frames came back",
                       buckets=_LATENCY_BUCKETS, registry=REGISTRY)
# Where a live chunk's latency goes (the worker stamps when it received the chunk and when its engine call
# returned; one monotonic clock for the host's processes): to_worker = front read it .. worker received it (the
# front's send queue, ZeroMQ, the worker busy with an earlier batch); in_worker = batch window + engine call;
# from_worker = engine call returned .. the front's loop read the frames; write = .. written to the client.
LATENCY_STAGE = Histogram("avatar_bridge_latency_stage_seconds",
                          "StreamExpression: each audio chunk's server latency by stage (to_worker, in_worker, "
                          "from_worker, write)", ["stage"], buckets=_LATENCY_BUCKETS, registry=REGISTRY)
STAGE_TO_WORKER, STAGE_IN_WORKER, STAGE_FROM_WORKER, STAGE_WRITE = (
    LATENCY_STAGE.labels(s) for s in ("to_worker", "in_worker", "from_worker", "write"))
LOOP_LAG = Histogram("avatar_bridge_event_loop_lag_seconds",
                     "How late the front's event loop ran a timer due every 50 ms (time every stream of this front "
                     "waited behind other work)", buckets=_LATENCY_BUCKETS, registry=REGISTRY)
WORKERS_ALIVE = Gauge("avatar_bridge_workers_alive", "Engine workers connected and ready", registry=REGISTRY,
                      multiprocess_mode="livesum")
WORKER_RESTARTS = Counter("avatar_bridge_worker_restarts_total", "Engine workers restarted after dying",
                          registry=REGISTRY)

# GenerateVideo (docs/video.md "Monitoring"): from the video worker's per-block stats.
VIDEO_GPU_MEMORY = Gauge("avatar_bridge_video_gpu_memory_bytes", "Video engine GPU memory after the last block",
                         ["kind"], registry=REGISTRY)
VIDEO_STREAM_FPS = Gauge("avatar_bridge_video_stream_fps", "Frames per second of the last block, per live video stream",
                         ["stream"], registry=REGISTRY)
VIDEO_BLOCK_SECONDS = Gauge("avatar_bridge_video_block_seconds", "Seconds of the last block's DiT and VAE decode",
                            ["part"], registry=REGISTRY)
VIDEO_TTFF = Histogram("avatar_bridge_video_ttff_seconds", "GenerateVideo: request received until its first frame "
                       "was written to the client", buckets=(0.25, 0.5, 0.75, 1.0, 1.2, 1.5, 2, 3, 5, 10, 30, 120),
                       registry=REGISTRY)


def video_block(stream: str, stats: dict) -> None:
    if not stats:
        return
    VIDEO_GPU_MEMORY.labels("allocated").set(stats.get("gpu_mem_bytes", 0))
    VIDEO_GPU_MEMORY.labels("peak").set(stats.get("gpu_peak_bytes", 0))
    VIDEO_STREAM_FPS.labels(stream or "-").set(stats.get("fps", 0.0))
    VIDEO_BLOCK_SECONDS.labels("dit").set(stats.get("dit_s", 0.0))
    VIDEO_BLOCK_SECONDS.labels("vae").set(stats.get("vae_s", 0.0))


def video_stream_ended(stream: str) -> None:
    try:
        VIDEO_STREAM_FPS.remove(stream or "-")
    except KeyError:
        pass


def serve_metrics(host: str, port: int) -> int:
    """Start the /metrics HTTP endpoint; return the bound port (-1 when disabled)."""
    if port < 0:
        return -1
    server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    return server.server_address[1]


async def watch_loop_lag(period_s: float = 0.05) -> None:
    """Observe LOOP_LAG until cancelled: one sleep per period, its lateness observed (a few µs per period)."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period_s
        await asyncio.sleep(period_s)
        LOOP_LAG.observe(max(0.0, loop.time() - due))
