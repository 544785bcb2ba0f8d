"""Typed messages that cross the process seam, beside the wire format (protocol.py).

The front builds a spec once from a validated request; it crosses as JSON once (``as_dict`` / ``from_dict``,
field by field) and the worker reads attributes. The worker answers with ``Opened`` and ``Done`` the same way.
Nothing on either side looks settings up by string, and nothing is validated twice: the front's validation
(bridge_server/validation.py) is the one check, the worker trusts a spec.

This module imports nothing from the engines (only the config base class), so the front may import it
(tests/test_layering.py).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import ClassVar

from engine.config import ConfigMixin


class Spec(ConfigMixin):
    """A config (from_dict / as_dict, engine/config.py) that crosses the seam as JSON (to_json / from_json)."""

    def to_json(self) -> bytes:
        return json.dumps(self.as_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body):
        return cls.from_dict(json.loads(bytes(body)))


@dataclass(frozen=True)
class StyleSpec(Spec):
    """ExpressionStyle, validated; the engines take it as is (engine.expression.base.Style)."""

    emotion: str = "neutral"  # neutral | happy | sad | angry | surprised (engine.rig.emotions)
    emotion_strength: float = 0.5  # 0..1
    intensity: float = 1.0  # 0..2, mouth articulation
    head_motion: float = 1.0  # 0..2, head and eye motion
    seed: int = 0  # blinks and idle motion; the front derives one from the stream id when 0


@dataclass(frozen=True)
class StreamSpec(Spec):
    """OPEN: a live StreamExpression stream."""

    encoding: str  # pcm16 | float32
    sample_rate: int
    channels: int
    fps: int
    engine: str = ""  # empty = the default engine
    style: StyleSpec = field(default_factory=StyleSpec)
    _nested: ClassVar[dict] = {"style": StyleSpec}

    @property
    def frame_bytes(self) -> int:
        """Bytes per interleaved sample frame."""
        return {"pcm16": 2, "float32": 4}[self.encoding] * self.channels


@dataclass(frozen=True)
class ClipSpec(Spec):
    """CLIP: a whole audio file (AnimateClip), optionally with its transcript or phone timings."""

    fps: int
    engine: str = ""
    format_hint: str = ""
    style: StyleSpec = field(default_factory=StyleSpec)
    max_audio_seconds: float = 0.0  # 0 = no limit
    transcript: str = ""
    language: str = ""
    phones: list = field(default_factory=list)  # [[start, end, label], ...]
    _nested: ClassVar[dict] = {"style": StyleSpec}


@dataclass(frozen=True)
class CaptureSettingsSpec(Spec):
    """CaptureSettings, validated: the fields of engine.capture.CaptureSettings that a client sets."""

    max_faces: int = 1
    smoothing: bool = True
    mirrored: bool = False
    face_index: int = -1


@dataclass(frozen=True)
class CaptureSpec(Spec):
    """CAPTURE (camera images) and VIDEO (a video file)."""

    settings: CaptureSettingsSpec = field(default_factory=CaptureSettingsSpec)
    model_path: str = ""  # empty = look the model up
    max_image_pixels: int = 4096 * 4096
    skip_audio: bool = False  # VIDEO: do not send the file's audio track back
    _nested: ClassVar[dict] = {"settings": CaptureSettingsSpec}


@dataclass(frozen=True)
class SpeakSpec(Spec):
    """SPEAK: text to speak with a resolved voice."""

    text: str
    voice: str
    fps: int
    speaking_rate: float = 1.0
    engine: str = ""
    style: StyleSpec = field(default_factory=StyleSpec)
    _nested: ClassVar[dict] = {"style": StyleSpec}


@dataclass(frozen=True)
class VideoInfoSpec(Spec):
    """What a captured video file is (CaptureVideo's VideoInfo)."""

    width: int = 0
    height: int = 0
    fps: float = 0.0
    duration: float = 0.0
    frame_count: int = 0
    codec: str = ""
    has_audio: bool = False
    audio_sample_rate: int = 0
    audio_channels: int = 0


@dataclass(frozen=True)
class Opened(Spec):
    """OPENED: the worker took the stream; what its header says."""

    engine: str
    lookahead_s: float = 0.0
    viseme_names: list = field(default_factory=list)
    unmeasured_blendshapes: list = field(default_factory=list)
    # Speak
    voice: str = ""
    language: str = ""
    tts_engine: str = ""
    sample_rate: int = 0
    # CaptureVideo: the file's properties; GenerateVideo: the video made (engine = its model, frame_count =
    # the frames expected)
    video: VideoInfoSpec | None = None
    warnings: list = field(default_factory=list)  # GenerateVideo: the portrait and audio checks' warnings
    _nested: ClassVar[dict] = {"video": VideoInfoSpec}


@dataclass(frozen=True)
class Done(Spec):
    """DONE: the stream's totals and warnings, for its final status."""

    audio_seconds: float = 0.0
    warnings: list = field(default_factory=list)
    face_lost_frames: int = 0
    # Speak
    sentences: int = 0
    synthesis_seconds: float = 0.0
    stopped_at: float = -1.0  # a barge-in's position in seconds; -1 = spoke to the end
    # GenerateVideo
    frames: int = 0
    generation_seconds: float = 0.0
    ttff_s: float | None = None  # request in the worker -> first frame encoded


@dataclass(frozen=True)
class Hush(Spec):
    """HUSH: a barge-in on a Speak stream at this playback position (seconds on the stream's clock)."""

    at_time: float


@dataclass(frozen=True)
class ErrorReply(Spec):
    """ERROR: the stream is over; code is a gRPC status code name."""

    message: str
    code: str = "INTERNAL"


@dataclass(frozen=True)
class WorkerConfig(Spec):
    """Everything an expression worker is started with, in one argument (--config): no environment edits."""

    batch_window_ms: float = 0.0  # how long live audio may wait to share an engine call with other streams'
    learned_weights: str = ""  # folder of weights for the default learned engine; empty = the shipped ones
    tts_plugins: str = ""  # extra TTS backends, comma-separated module:callable
    piper_voices: str = ""  # folder of Piper voices; empty = the models folder's piper/
    tts_prewarm: bool = False  # load Festival's voice at start, not on the first Speak



@dataclass(frozen=True)
class EngineInfo(Spec):
    """One GetCapabilities row: an engine a worker has loaded."""

    name: str
    kind: str  # expression | capture | video
    description: str = ""
    lookahead_s: float = 0.0
    is_default: bool = False


@dataclass(frozen=True)
class VoiceInfo(Spec):
    """One Speak voice a worker has (the fields of engine.tts.base.Voice that a client sees)."""

    id: str
    language: str
    engine: str
    sample_rate: int = 0
    description: str = ""
    missing: str = ""  # non-empty: the voice's files are missing; the text says how to install them


@dataclass(frozen=True)
class WorkerInfo(Spec):
    """READY: what a worker has loaded."""

    pid: int
    engines: list = field(default_factory=list)  # [EngineInfo]
    capture_engine: EngineInfo | None = None
    voices: list = field(default_factory=list)  # [VoiceInfo]
    _nested: ClassVar[dict] = {"capture_engine": EngineInfo}

    @classmethod
    def from_dict(cls, d: dict):
        info = super().from_dict(d)
        return dataclasses.replace(info, engines=[EngineInfo.from_dict(e) for e in info.engines],
                                   voices=[VoiceInfo.from_dict(v) for v in info.voices])


@dataclass(frozen=True)
class VideoSpec(Spec):
    """CLIP to the video worker: a GenerateVideo request, validated; the payload is the image then the audio."""

    image_bytes: int  # the payload's first image_bytes are the portrait
    prompt: str = ""
    size: str = ""  # "W*H"; empty = the mode's default (GenParams.for_mode); parsed by the worker
    seed: int = 0  # 0 = the mode's default
    model: str = ""  # liveavatar | s2v; empty = liveavatar when the server has the LoRA
    sample_steps: int = 0
    sample_guide_scale: float = 0.0
    sample_shift: float = 0.0
    sample_solver: str = ""
    infer_frames: int = 0
    num_clip: int = 0
    encoding: str = "jpeg"  # jpeg | rgb
    jpeg_quality: int = 90
    max_audio_seconds: float = 3600.0


@dataclass(frozen=True)
class VideoWorkerConfig(Spec):
    """Everything the video worker is started with, in one argument (--config)."""

    ckpt_dir: str
    lora: str = ""  # LiveAvatar LoRA; empty = S2V only
    device: str = ""  # cuda, cuda:1, cpu; empty = cuda when available
    warmup: str = ""  # a size (704*384): load, compile and run once at start
    face_landmarker: str = ""  # the portrait check's face_landmarker.task; empty = look it up
    num_gpus_dit: int = 1  # > 1: own a rank group (docs/multi_gpu.md)
    vae_parallel: bool = False
    rank_timeout_s: float = 120.0
