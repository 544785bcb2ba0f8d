"""Checks on client requests; each failure names the field and the fix."""
from __future__ import annotations

import grpc

from avatarbridge.v1 import bridge_pb2 as pb
from bridge_server.workers import StreamError
from engine.rig.emotions import EMOTION_NAMES
from engine.worker.specs import (CaptureSettingsSpec, CaptureSpec, ClipSpec, EngineInfo, SpeakSpec, StreamSpec, StyleSpec,
                                 VoiceInfo)

SUPPORTED_FPS = (30, 60)
MIN_RATE, MAX_RATE = 8000, 48000
MAX_CHANNELS = 2
ENCODING_NAMES = {pb.AUDIO_ENCODING_PCM16: "pcm16", pb.AUDIO_ENCODING_FLOAT32: "float32"}
# The contract's Emotion enum names the presets of the one emotion table (EMOTION_HAPPY -> "happy"); a name
# missing from the enum fails here at import, so the two cannot drift apart.
EMOTIONS = {pb.Emotion.Value(f"EMOTION_{name.upper()}"): name for name in EMOTION_NAMES}


def invalid(message: str) -> StreamError:
    return StreamError(grpc.StatusCode.INVALID_ARGUMENT, message)


def check_fps(fps: int, field: str) -> int:
    if fps not in SUPPORTED_FPS:
        raise invalid(f"{field}={fps} is not supported; use 30 or 60")
    return fps


def check_engine(name: str, engines: list[EngineInfo], field: str) -> str:
    names = [e.name for e in engines]
    if name and name not in names:
        raise invalid(f"{field}={name!r} is not an engine of this server; available: {', '.join(names)} "
                      "(or leave it empty for the default)")
    return name


def style_spec(style: pb.ExpressionStyle, field: str, stream_id: str) -> StyleSpec:
    if style.emotion not in EMOTIONS:
        raise invalid(f"{field}.emotion={style.emotion} is unknown; use one of {sorted(EMOTIONS)}")
    out = {"emotion": EMOTIONS[style.emotion]}
    defaults = StyleSpec()  # a knob the client leaves unset takes the one default table's value
    for name, lo, hi in (("emotion_strength", 0, 1), ("intensity", 0, 2), ("head_motion", 0, 2)):
        value = getattr(style, name) if style.HasField(name) else getattr(defaults, name)
        if not (lo <= value <= hi):  # also rejects NaN
            raise invalid(f"{field}.{name}={value} is out of range; use {lo}..{hi}")
        out[name] = value
    # Same stream id -> same blinks and idle motion, so takes are reproducible.
    out["seed"] = style.seed or (_stable_hash(stream_id) if stream_id else 0)
    return StyleSpec(**out)


def stream_config(h: pb.StreamHeader, engines: list[EngineInfo]) -> StreamSpec:
    if h.encoding not in ENCODING_NAMES:
        raise invalid(f"header.encoding={pb.AudioEncoding.Name(h.encoding) if h.encoding in pb.AudioEncoding.values() else h.encoding} "
                      "is not supported; use AUDIO_ENCODING_PCM16 or AUDIO_ENCODING_FLOAT32")
    if not MIN_RATE <= h.sample_rate <= MAX_RATE:
        raise invalid(f"header.sample_rate={h.sample_rate} is not supported; use {MIN_RATE}..{MAX_RATE} Hz "
                      "(e.g. 16000, 44100 or 48000)")
    if not 1 <= h.channels <= MAX_CHANNELS:
        raise invalid(f"header.channels={h.channels} is not supported; use 1 (mono) or 2 (stereo, downmixed)")
    check_fps(h.fps, "header.fps")
    if len(h.stream_id) > 128:
        raise invalid("header.stream_id is longer than 128 characters; use a shorter id")
    return StreamSpec(encoding=ENCODING_NAMES[h.encoding], sample_rate=h.sample_rate, channels=h.channels,
                      fps=h.fps, engine=check_engine(h.engine, engines, "header.engine"),
                      style=style_spec(h.style, "header.style", h.stream_id))


def clip_config(r: pb.AnimateClipRequest, engines: list[EngineInfo], max_seconds: float) -> ClipSpec:
    if not r.audio_file:
        raise invalid("audio_file is empty; send the bytes of a wav/flac/ogg/mp3 file")
    check_fps(r.fps, "fps")
    if len(r.stream_id) > 128:
        raise invalid("stream_id is longer than 128 characters; use a shorter id")
    return ClipSpec(fps=r.fps, engine=check_engine(r.engine, engines, "engine"), format_hint=r.format_hint,
                    style=style_spec(r.style, "style", r.stream_id), max_audio_seconds=max_seconds,
                    **transcript_fields(r.transcript, r.language),
                    phones=phone_list(r.phones) if len(r.phones) else [])


MAX_TRANSCRIPT_BYTES = 100_000  # ~15 k words: far more than 10 minutes of speech


def transcript_fields(text: str, language: str) -> dict:
    """Size and shape only: whether the text fits the audio is the worker's call (it aligns, and falls back
    to the audio with a warning), so a wrong transcript never costs the client its animation."""
    size = len(text.encode("utf-8"))
    if size > MAX_TRANSCRIPT_BYTES:
        raise invalid(f"transcript is {size} bytes, over the limit of {MAX_TRANSCRIPT_BYTES}; send the text "
                      "spoken in this clip only, or split the clip")
    if len(language) > 35 or not all(c.isalnum() or c in "-_" for c in language):
        raise invalid(f"language={language[:40]!r} is not a BCP-47 tag; use e.g. 'en' or 'en-US' (empty = en)")
    return {"transcript": text.strip(), "language": language or "en"} if text.strip() else {}


def _stable_hash(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode()) or 1


def capture_settings(s: pb.CaptureSettings, field: str) -> CaptureSettingsSpec:
    max_faces = s.max_faces or 1
    if not 1 <= max_faces <= 4:
        raise invalid(f"{field}.max_faces={s.max_faces} is out of range; use 1..4 (0 = 1)")
    out = {"max_faces": max_faces, "smoothing": s.smoothing if s.HasField("smoothing") else True,
           "mirrored": s.mirrored, "face_index": -1}
    if s.HasField("face_index"):
        if s.face_index >= max_faces:
            raise invalid(f"{field}.face_index={s.face_index} needs max_faces > {s.face_index} "
                          f"(it is {max_faces}); raise max_faces or leave face_index unset for the largest face")
        out["face_index"] = s.face_index
    return CaptureSettingsSpec(**out)


def capture_config(h, field: str, server_cfg, skip_audio: bool = False) -> CaptureSpec:
    if len(h.stream_id) > 128:
        raise invalid(f"{field}.stream_id is longer than 128 characters; use a shorter id")
    return CaptureSpec(settings=capture_settings(h.settings, f"{field}.settings"),
                       model_path=server_cfg.face_landmarker, max_image_pixels=server_cfg.max_image_pixels,
                       skip_audio=skip_audio)


MAX_SPEAK_TEXT_BYTES = 20_000  # ~3 000 words, ~20 minutes of speech: split longer texts into several calls
MIN_SPEAKING_RATE, MAX_SPEAKING_RATE = 0.5, 2.0


def control_char(text: str) -> int:
    """Index of the first control character other than tab / line breaks, or -1."""
    for i, c in enumerate(text):
        if (ord(c) < 32 and c not in "\t\n\r") or 0x7F <= ord(c) < 0xA0:
            return i
    return -1


def speak_config(r: pb.SpeakStart, voices: list[VoiceInfo], engines: list[EngineInfo]) -> SpeakSpec:
    """A SpeakStart -> the worker's config: the voice resolved here, so an unknown one fails before any work."""
    from engine.tts.registry import resolve

    text = r.text
    if not text.strip():
        raise invalid("start.text is empty; send the UTF-8 text to speak")
    size = len(text.encode("utf-8"))
    if size > MAX_SPEAK_TEXT_BYTES:
        raise invalid(f"start.text is {size} bytes, over the limit of {MAX_SPEAK_TEXT_BYTES} bytes; split it into "
                      "several Speak calls (e.g. by paragraph)")
    bad = control_char(text)
    if bad >= 0:
        raise invalid(f"start.text has a control character U+{ord(text[bad]):04X} at character {bad}; remove it "
                      "(tabs and line breaks are fine)")
    if len(r.language) > 35 or not all(c.isalnum() or c in "-_" for c in r.language):
        raise invalid(f"start.language={r.language[:40]!r} is not a BCP-47 tag; use e.g. 'en', 'zh-CN', 'ja' "
                      "(empty = en)")
    rate = r.speaking_rate or 1.0
    if not MIN_SPEAKING_RATE <= rate <= MAX_SPEAKING_RATE:
        raise invalid(f"start.speaking_rate={r.speaking_rate:g} is out of range; use {MIN_SPEAKING_RATE:g}.."
                      f"{MAX_SPEAKING_RATE:g} (1 = the voice's normal speed, 0 = 1)")
    check_fps(r.fps, "start.fps")
    if len(r.stream_id) > 128:
        raise invalid("start.stream_id is longer than 128 characters; use a shorter id")
    voice, why = resolve(voices, r.voice, r.language)
    if voice is None:
        raise invalid("start." + why)
    if voice.missing:
        raise StreamError(grpc.StatusCode.FAILED_PRECONDITION, f"voice {voice.id!r} cannot speak: {voice.missing}")
    default = next((e.name for e in engines if e.is_default), "")
    return SpeakSpec(text=text, voice=voice.id, speaking_rate=rate, fps=r.fps, engine=default,
                     style=style_spec(r.style, "start.style", r.stream_id))


MAX_PHONES = 200_000


def phone_list(phones, field: str = "phones") -> list[list]:
    """AnimateClipRequest.phones -> [[start, end, label], ...], each checked (the field and index named)."""
    import math

    if len(phones) > MAX_PHONES:
        raise invalid(f"{field} has {len(phones)} entries, over the limit of {MAX_PHONES}; send one clip's phones")
    out, prev = [], -math.inf
    for i, ph in enumerate(phones):
        if not (math.isfinite(ph.start) and math.isfinite(ph.end)) or ph.start < 0 or ph.end <= ph.start:
            raise invalid(f"{field}[{i}] has start={ph.start:g}, end={ph.end:g}; times are seconds on the audio's "
                          "clock with 0 <= start < end")
        if ph.start < prev - 1e-6:
            raise invalid(f"{field}[{i}] starts at {ph.start:g} s, before {field}[{i - 1}] ({prev:g} s); send phones "
                          "in time order")
        if len(ph.phone) > 16:
            raise invalid(f"{field}[{i}].phone={ph.phone[:20]!r} is longer than 16 characters; send one phone "
                          "(IPA, ARPAbet or a viseme name)")
        prev = ph.start
        out.append([ph.start, ph.end, ph.phone])
    return out
