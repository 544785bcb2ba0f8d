"""espeak-ng voices through libespeak-ng (ctypes): ~100 languages, 22.05 kHz, a few ms per sentence.

libespeak-ng reports a phoneme event (IPA, output sample) for each phone it synthesises, so the phone
timings are exact, not aligned after the fact. The driver is the one the learned engine's training uses
(engine/expression/train/tts.py: Espeak); this module only adapts it to the TtsBackend interface.
"""
from __future__ import annotations

import ctypes
import re

from engine.tts.base import Synthesis, TtsBackend, Voice, VoiceMissing, phones_from_starts

# The languages we list (and test): espeak-ng voice name -> (BCP-47 language we answer to, description).
LANGUAGES = {
    "en-us": ("en-us", "English (US)"), "en": ("en-gb", "English (UK)"), "de": ("de", "German"),
    "fr": ("fr", "French"), "es": ("es", "Spanish (Spain)"), "cmn": ("cmn", "Chinese (Mandarin)"),
    "ja": ("ja", "Japanese"), "it": ("it", "Italian"), "pt-br": ("pt-br", "Portuguese (Brazil)"),
    "ru": ("ru", "Russian"), "nl": ("nl", "Dutch"), "pl": ("pl", "Polish"), "ko": ("ko", "Korean"),
    "hi": ("hi", "Hindi"), "ar": ("ar", "Arabic"), "tr": ("tr", "Turkish"), "sv": ("sv", "Swedish"),
}
BASE_WPM = 175  # espeak-ng's default speed; rate 1.0
# espeak-ng voices to use instead: 1.51's "cmn" reads Chinese characters through its pinyin *as English*
# ("你好" -> "(en)nɪ5θɹˈiː5 hˌeɪ5ə5θɹˈiː5", i.e. "ni three hey-a three"); "cmn-latn-pinyin" is the same
# Mandarin voice with its pinyin read as pinyin ("nˈiɜ χˈɑu2").
ESPEAK_VOICE = {"cmn": "cmn-latn-pinyin"}
# Mandarin's aspirated stops come as "th", "kh", "tsh", "tɕh": IPA "tʰ" etc., so that "th" is not read as the
# ARPAbet TH (a tongue between the teeth).
_ASPIRATED = re.compile(r"^(p|t|k|ts\.?|tɕ|tʂ|c)h$")
_IPA = 0x02  # espeak_TextToPhonemes: phonemes as IPA
_UTF8 = 1
_shared = None


def shared_driver():
    """The process's one libespeak-ng driver (it has global state): the espeak voices and the Piper phonemiser
    share it. RuntimeError if libespeak-ng cannot start."""
    global _shared
    if _shared is None:
        from engine.expression.train.tts import Espeak
        _shared = Espeak()
    return _shared


_CLAUSE_END = ",.;:!?"
_FULLWIDTH = {"，": ",", "、": ",", "。": ".", "；": ";", "：": ":", "！": "!", "？": "?"}
_LANGUAGE_SWITCH = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)?\)")


def ipa(es, text: str, voice: str) -> str:
    """Text -> espeak-ng's IPA as Piper's phonemiser makes it: each clause's phonemes followed by the
    punctuation that ended it (",", ".", "?", …: Piper voices were trained with them, they shape pauses and
    intonation), clauses joined by a space, espeak-ng's "(en)" language-switch marks removed. ValueError for
    an unknown voice."""
    if es.lib.espeak_SetVoiceByName(ESPEAK_VOICE.get(voice, voice).encode()) != 0:
        raise ValueError(f"espeak-ng has no voice {voice!r}")
    fn = es.lib.espeak_TextToPhonemes
    fn.restype = ctypes.c_char_p
    fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    raw = text.encode("utf-8")
    buf = ctypes.create_string_buffer(raw)
    base = ctypes.addressof(buf)
    ptr = ctypes.c_void_p(base)
    out = []
    while ptr.value:  # one clause per call; the pointer moves to the next clause (NULL after the last)
        begin = ptr.value - base
        r = fn(ctypes.byref(ptr), _UTF8, _IPA)
        end = ptr.value - base if ptr.value else len(raw)
        phones = _LANGUAGE_SWITCH.sub("", r.decode("utf-8", "replace")).strip() if r else ""
        clause = raw[begin:end].decode("utf-8", "replace")
        if ptr.value:  # espeak-ng has read one character of the next clause already
            clause = clause[:-1]
        clause = clause.rstrip()
        mark = _FULLWIDTH.get(clause[-1:], clause[-1:]) if clause else ""
        mark = mark if mark in _CLAUSE_END else ""
        if phones or (mark and out):
            out.append(phones + mark)
    return " ".join(out)


class EspeakBackend(TtsBackend):
    name = "espeak"

    def __init__(self):
        self._espeak = None
        self._error = ""
        self.sample_rate = 22050

    def _driver(self):
        if self._espeak is None and not self._error:
            try:
                self._espeak = shared_driver()
                self.sample_rate = self._espeak.sample_rate
            except RuntimeError as exc:
                self._error = str(exc)
        if self._espeak is None:
            raise VoiceMissing(f"espeak-ng cannot start ({self._error}); install the Debian package espeak-ng "
                               "(apt-get install espeak-ng)")
        return self._espeak

    def voices(self) -> list[Voice]:
        try:
            self._driver()
            missing = ""
        except VoiceMissing as exc:
            missing = str(exc)
        return [Voice(f"espeak:{name}", lang, self.name, self.sample_rate, f"espeak-ng {desc}", missing)
                for name, (lang, desc) in LANGUAGES.items()]

    def synth(self, text: str, voice: Voice, rate: float) -> Synthesis:
        es = self._driver()
        name = voice.id.split(":", 1)[1]
        try:
            x, events = es.synth(text, ESPEAK_VOICE.get(name, name), rate=int(round(BASE_WPM * rate)))
        except ValueError as exc:
            raise VoiceMissing(f"{exc}; install espeak-ng-data (apt-get install espeak-ng)") from None
        sr = es.sample_rate
        if not x.size:  # e.g. only punctuation: a pause, not an error
            return Synthesis(x, sr, [], [f"espeak-ng said nothing for {text[:60]!r}; a pause was sent instead"])
        # "(en)"/"(cmn)" mark a switch of language inside the text, not a phone: the phone before goes on.
        starts = [(s / sr, _ASPIRATED.sub("\\1ʰ", label)) for s, label in events if not label.startswith("(")]
        return Synthesis(x, sr, phones_from_starts(starts, x.size / sr))
