"""espeak-ng voices through libespeak-ng (ctypes): ~100 languages, 22.05 kHz, a few ms per sentence.

libespeak-ng reports a phoneme event (IPA, output sample) for each phone it synthesises, so the phone
timings are exact, not aligned after the fact. The driver is the one the learned engine's training uses
(engine/expression/train/tts.py: Espeak); this module only adapts it to the TtsBackend interface.
"""
from __future__ import annotations

import ctypes

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


def ipa(es, text: str, voice: str) -> str:
    """Text -> espeak-ng's IPA (clauses joined by a space), as Piper's phonemiser makes it. ValueError for an
    unknown voice."""
    if es.lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"espeak-ng has no voice {voice!r}")
    fn = es.lib.espeak_TextToPhonemes
    fn.restype = ctypes.c_char_p
    fn.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    buf = ctypes.create_string_buffer(text.encode("utf-8"))
    ptr = ctypes.c_void_p(ctypes.addressof(buf))
    out = []
    while ptr.value:  # one clause per call; the pointer moves on (NULL at the end)
        r = fn(ctypes.byref(ptr), _UTF8, _IPA)
        if r:
            out.append(r.decode("utf-8", "replace").strip())
    return " ".join(o for o in out if o)


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
            x, events = es.synth(text, name, rate=int(round(BASE_WPM * rate)))
        except ValueError as exc:
            raise VoiceMissing(f"{exc}; install espeak-ng-data (apt-get install espeak-ng)") from None
        sr = es.sample_rate
        if not x.size:  # e.g. only punctuation: a pause, not an error
            return Synthesis(x, sr, [], [f"espeak-ng said nothing for {text[:60]!r}; a pause was sent instead"])
        # "(en)"/"(cmn)" mark a switch of language inside the text, not a phone: the phone before goes on.
        starts = [(s / sr, label) for s, label in events if not label.startswith("(")]
        return Synthesis(x, sr, phones_from_starts(starts, x.size / sr))
