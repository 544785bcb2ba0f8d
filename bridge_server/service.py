"""The AvatarBridge gRPC servicer: each RPC goes to its family's handler (bridge_server/rpc/); it never computes."""
from __future__ import annotations

from avatarbridge.v1 import bridge_pb2 as pb
from avatarbridge.v1 import bridge_pb2_grpc as pb_grpc
from bridge_server import validation
from bridge_server.config import ServerConfig
from bridge_server.rpc import capture, expression, speak, video
from bridge_server.rpc.calls import Front
from bridge_server.rpc.messages import API_VERSION
from bridge_server.workers import WorkerPool
from engine.rig import ARKIT_NAMES, BONE_NAMES

CLIP_FORMATS = ["wav", "flac", "ogg", "mp3", "aiff", "m4a", "opus", "webm"]


class BridgeService(pb_grpc.AvatarBridgeServicer):
    def __init__(self, cfg: ServerConfig, pool: WorkerPool, version: str, video_pool: WorkerPool | None = None):
        self.front = Front(cfg, pool, version, video_pool)

    @property
    def calls(self):
        return self.front.calls

    def begin_drain(self) -> None:
        self.front.begin_drain()

    async def GetCapabilities(self, request, context):
        front = self.front
        rows = front.pool.engines + (front.video_pool.engines if front.video_pool else [])
        if front.pool.capture_engine:
            rows = rows + [front.pool.capture_engine]
        engines = [pb.EngineInfo(name=e.name, kind=e.kind, description=e.description, is_default=e.is_default,
                                 lookahead_ms=e.lookahead_s * 1000) for e in rows]
        cfg = front.cfg
        return pb.Capabilities(
            server_version=front.version, api_version=API_VERSION, engines=engines,
            blendshape_names=ARKIT_NAMES, bone_names=BONE_NAMES, supported_fps=validation.SUPPORTED_FPS,
            audio_encodings=[pb.AUDIO_ENCODING_PCM16, pb.AUDIO_ENCODING_FLOAT32], clip_formats=CLIP_FORMATS,
            limits=pb.Limits(max_audio_seconds=cfg.max_audio_seconds, max_message_bytes=cfg.max_message_bytes,
                             max_concurrent_streams=cfg.max_concurrent_streams,
                             max_pending_frames=cfg.max_pending_frames,
                             min_sample_rate=validation.MIN_RATE, max_sample_rate=validation.MAX_RATE,
                             max_channels=validation.MAX_CHANNELS),
            voices=[pb.VoiceInfo(id=v.id, language=v.language, engine=v.engine, sample_rate=v.sample_rate,
                                 description=v.description, missing=v.missing) for v in front.pool.voices])

    async def StreamExpression(self, request_iterator, context):
        await expression.stream_expression(self.front, request_iterator, context)

    async def AnimateClip(self, request, context):
        await expression.animate_clip(self.front, request, context)

    async def CaptureStream(self, request_iterator, context):
        await capture.capture_stream(self.front, request_iterator, context)

    async def CaptureVideo(self, request_iterator, context):
        await capture.capture_video(self.front, request_iterator, context)

    async def Speak(self, request_iterator, context):
        await speak.speak(self.front, request_iterator, context)

    async def GenerateVideo(self, request, context):
        await video.generate_video(self.front, request, context)
