"""Which voices a worker has, and which voice a (voice, language) request means.

Built-in backends: espeak-ng (every listed language), Festival (two US-English voices) and Piper (the ONNX
voices in the piper_voices folder, engine/tts/piper.py). More backends
plug in through the server setting tts_plugins (env AVATAR_BRIDGE_TTS_PLUGINS): comma-separated
"module:callable", each callable returning a TtsBackend (docs/speak.md, "Adding a voice").
"""
from __future__ import annotations

import importlib

from engine.tts.base import TtsBackend

PIPER = "engine.tts.piper:PiperBackend"
BUILTIN = ("engine.tts.espeak:EspeakBackend", "engine.tts.festival:FestivalBackend", PIPER)
# Default voice per language, best first; the first one installed wins (docs/speak.md says why).
DEFAULTS = {
    "en-us": ("festival:us-slt-hts", "espeak:en-us"),
    "en-gb": ("espeak:en",),
}
# Tags we answer to -> the language the voices are listed under.
ALIASES = {"en": "en-us", "en-uk": "en-gb", "zh": "cmn", "zh-cn": "cmn", "zh-hans": "cmn", "zh-cmn": "cmn",
           "zh-hans-cn": "cmn", "pt": "pt-br", "jp": "ja"}


def load_backends(plugins: str = "", piper_voices: str = "") -> list[TtsBackend]:
    """The built-in backends (the Piper one over ``piper_voices``), then each plugin's (the tts_plugins setting,
    comma-separated module:callable). A plugin that cannot load raises ValueError naming it."""
    specs = list(BUILTIN)
    specs += [s.strip() for s in plugins.split(",") if s.strip()]
    out = []
    for spec in specs:
        module, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
            backend = factory(piper_voices or None) if spec == PIPER else factory()
        except Exception as exc:
            raise ValueError(f"TTS plugin {spec!r} (tts_plugins) cannot be loaded: {type(exc).__name__}: {exc}; "
                             "give 'module:callable' returning an engine.tts.base.TtsBackend") from None
        if not isinstance(backend, TtsBackend):
            raise ValueError(f"TTS plugin {spec!r} returned {type(backend).__name__}, not an "
                             "engine.tts.base.TtsBackend")
        out.append(backend)
    return out


def normalize_language(tag: str) -> str:
    t = tag.strip().lower().replace("_", "-") or "en"
    return ALIASES.get(t, t)


def resolve(voices: list, voice: str, language: str):
    """(voice, "") or (None, why: the field, what is installed). voices: rows with the fields of base.Voice
    (id, language, engine, missing): the worker's Voice or the front's VoiceInfo."""
    by_id = {v.id: v for v in voices}
    if voice:
        v = by_id.get(voice) or by_id.get(_unique_suffix(voices, voice))
        if v is None:
            return None, (f"voice={voice!r} is not installed on this server; installed: "
                          f"{', '.join(sorted(by_id))} (or leave voice empty for the language's default)")
        if language and not _same_language(normalize_language(language), v.language):
            return None, (f"voice={v.id!r} speaks {v.language!r}, not language={language!r}; leave language "
                          "empty or pick a voice of that language")
        return v, ""
    lang = normalize_language(language)
    cands = [v for v in voices if v.language == lang] or [v for v in voices if _same_language(lang, v.language)]
    if not cands:
        langs = sorted({v.language for v in voices})
        return None, (f"language={language!r} has no installed voice; installed languages: {', '.join(langs)}")
    order = DEFAULTS.get(lang, ())
    ranked = sorted(cands, key=lambda v: (bool(v.missing), order.index(v.id) if v.id in order else 99,
                                          v.engine != "espeak"))
    return ranked[0], ""


def _same_language(a: str, b: str) -> bool:
    return a == b or a.split("-")[0] == b.split("-")[0]


def _unique_suffix(voices: list, name: str) -> str:
    """'us-slt-hts' -> 'festival:us-slt-hts' when exactly one backend has that voice name."""
    hits = [v.id for v in voices if v.id.split(":", 1)[-1] == name]
    return hits[0] if len(hits) == 1 else ""
