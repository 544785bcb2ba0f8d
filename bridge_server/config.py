"""Server configuration: defaults < TOML file < environment (AVATAR_BRIDGE_*) < flags."""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051  # 0 = pick a free port (written to ready_file)
    workers: int = 0  # 0 = one per CPU core this process may use
    metrics_port: int = 9464  # Prometheus /metrics; 0 = pick a free port, -1 = off
    metrics_host: str = "127.0.0.1"
    max_message_bytes: int = 4 * 1024 * 1024  # largest request message
    max_audio_seconds: float = 3600.0  # per stream or clip
    max_clip_seconds: float = 600.0  # AnimateClip decodes whole files; keep them bounded
    max_concurrent_streams: int = 1000  # 0 = unlimited
    max_pending_frames: int = 600  # per stream, waiting for a slow client (10 s at 60 fps)
    max_inflight_chunks: int = 8  # audio chunks a stream may have inside a worker
    header_timeout_s: float = 10.0  # a stream must send its header within this
    idle_timeout_s: float = 60.0  # no audio for this long ends a stream (DEADLINE_EXCEEDED)
    grace_s: float = 10.0  # SIGTERM: time live streams get to flush before the server exits
    worker_timeout_s: float = 10.0  # a busy worker silent for this long is killed and restarted
    # Live audio may wait this long in a worker for other streams' chunks to share its engine call (0 = off);
    # it never waits once every live stream of that worker has sent (docs/server.md "Batching").
    batch_window_ms: float = 5.0
    # Weights folder for the default learned engine (config.json + model.npz, from `avatar-bridge train-expression
    # --out`); empty = the package's. Workers get it in their WorkerConfig (engine/worker/specs.py).
    learned_weights: str = ""
    # Speak: more TTS backends, comma-separated "module:callable" each returning an engine.tts.base.TtsBackend
    # (docs/speak.md); workers get it in their WorkerConfig.
    tts_plugins: str = ""
    # Speak: folder of Piper voices (<voice>.onnx + .onnx.json); empty = $AVATAR_BRIDGE_MODELS_DIR/piper (where
    # `avatar-bridge models fetch piper:<voice>` puts them). Workers get it in their WorkerConfig.
    piper_voices: str = ""
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    log_level: str = "info"
    log_format: str = "json"  # json | text
    face_landmarker: str = ""  # MediaPipe face_landmarker.task; empty = $AVATAR_BRIDGE_FACE_LANDMARKER or the models dir
    max_image_pixels: int = 4096 * 4096  # capture: largest image / video frame
    max_video_bytes: int = 512 * 1024 * 1024  # CaptureVideo: largest file (held in memory while decoded)
    outputs: str = ""  # plugin-free mirrors, comma-separated URLs (bridge_server/outputs): livelinkface://h:p, vmc://h:p
    video_ckpt_dir: str = ""  # Wan2.2-S2V-14B folder; set = GenerateVideo on (docs/video.md)
    video_lora: str = ""  # LiveAvatar liveavatar.safetensors (file or folder); set = causal streaming mode
    video_device: str = ""  # cuda, cuda:1, cpu; empty = cuda when available
    video_warmup: str = ""  # a size (704*384): the video worker loads, compiles and runs once at start; empty = off
    video_num_gpus_dit: int = 1  # > 1: the video worker owns a rank group (docs/multi_gpu.md); cpu = test mode
    video_vae_parallel: int = 0  # 1 = with the rank group, one more GPU decodes the VAE (--enable_vae_parallel)
    video_rank_timeout_s: float = 120.0  # rank group: collective timeout; no frames for 2x this = hung -> UNAVAILABLE
    ready_file: str = ""  # if set, write {"port":..,"metrics_port":..,"pid":..} here once serving
    # Transport security (bridge_server/security.py, docs/security.md). A non-loopback --host needs TLS, tokens or
    # insecure = true; metrics_host stays 127.0.0.1 unless set.
    tls_cert: str = ""  # server certificate chain (PEM); with tls_key = TLS
    tls_key: str = ""  # its private key (PEM)
    tls_client_ca: str = ""  # CA (PEM) that signs client certificates; set = mutual TLS (a client cert is required)
    auth_token_file: str = ""  # accepted bearer tokens, one a line; re-read on SIGHUP
    insecure: bool = False  # allow a plaintext, token-less bind on a non-loopback address
    # Front processes sharing the port (SO_REUSEPORT), each with its share of the workers; one metrics view
    # (bridge_server/fronts.py, docs/scaling.md). 1 = this process serves alone.
    fronts: int = 1

    @staticmethod
    def env_name(field: str) -> str:
        return "AVATAR_BRIDGE_" + field.upper()

    @classmethod
    def load(cls, toml_path: str | None = None, overrides: dict | None = None,
             environ: dict | None = None) -> "ServerConfig":
        cfg = cls()
        known = {f.name: f for f in fields(cls)}
        environ = os.environ if environ is None else environ
        toml_path = toml_path or environ.get("AVATAR_BRIDGE_CONFIG")
        layers: list[tuple[str, dict]] = []
        if toml_path:
            with open(toml_path, "rb") as fh:
                data = tomllib.load(fh)
            data = data.get("server", data)
            layers.append((f"config file {toml_path}", data))
        layers.append(("environment", {name: environ[cls.env_name(name)] for name in known
                                       if cls.env_name(name) in environ}))
        layers.append(("flags", {k: v for k, v in (overrides or {}).items() if v is not None}))
        for source, data in layers:
            for key, value in data.items():
                key = key.replace("-", "_")
                if key not in known:
                    raise ValueError(f"unknown setting {key!r} in {source}; known: {', '.join(sorted(known))}")
                setattr(cfg, key, _coerce(value, type(getattr(cfg, key)), key, source))
                if key == "batch_window_ms" and not 0.0 <= cfg.batch_window_ms <= 50.0:
                    raise ValueError(f"setting batch_window_ms from {source} must be within 0..50 ms, got {value!r}; "
                                     "it adds up to that much latency to every live frame")
                if key == "fronts" and not 1 <= cfg.fronts <= 64:
                    raise ValueError(f"setting fronts from {source} must be within 1..64, got {value!r}; "
                                     "one front per core is the most that helps")
                if key == "learned_weights" and value and not all(
                        os.path.isfile(os.path.join(str(value), f)) for f in ("config.json", "model.npz")):
                    raise ValueError(f"setting learned_weights from {source}: {value!r} is not a learned weights "
                                     "folder (config.json + model.npz); point it at the --out folder of "
                                     "avatar-bridge train-expression, or leave it empty for the shipped weights")
        return cfg

    def resolved_workers(self) -> int:
        # The cores this process may run on (taskset, a container's cpuset), not the host's count.
        return self.workers or max(1, len(os.sched_getaffinity(0)))


def _coerce(value, typ, key: str, source: str):
    try:
        if typ is bool and isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return typ(value)
    except (TypeError, ValueError):
        raise ValueError(f"setting {key} from {source} must be {typ.__name__}, got {value!r}") from None
