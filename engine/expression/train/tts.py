"""Speech with exact phone timings from espeak-ng (libespeak-ng via ctypes).

espeak-ng reports a phoneme event (IPA name + the output sample where the
phone starts) for every phone it synthesises, in ~100 languages; that makes
frame-exact viseme labels without any aligner. Needs the Debian package
``espeak-ng`` (libespeak-ng1 + espeak-ng-data).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import random

import numpy as np

_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA = 0x0001, 0x0002
_CHARS_UTF8 = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class Espeak:
    """One per process (libespeak-ng has global state)."""

    def __init__(self):
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as exc:
            raise RuntimeError("libespeak-ng not found: install the Debian package espeak-ng") from exc
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                                      _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed (is espeak-ng-data installed?)")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._cb)

    def _on_audio(self, wav, n, ev) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while ev[i].type != _EVENT_LIST_TERMINATED:
            e = ev[i]
            if e.type == _EVENT_PHONEME:
                self._events.append((int(e.sample), bytes(e.id.string).split(b"\0")[0].decode("utf-8", "replace")))
            i += 1
        return 0

    def synth(self, text: str, voice: str, rate: int = 170, pitch: int = 50, prange: int = 50
              ) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """-> (float32 audio at self.sample_rate, [(start sample, IPA phone or '' for a pause), ...])."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        for p, v in ((_RATE, rate), (_PITCH, pitch), (_RANGE, prange), (_VOLUME, 100)):
            self.lib.espeak_SetParameter(p, int(v), 0)
        self._chunks, self._events = [], []
        b = text.encode("utf-8")
        self.lib.espeak_Synth(b, len(b) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        x = np.concatenate(self._chunks).astype(np.float32) / 32768.0 if self._chunks else np.zeros(0, np.float32)
        return x, sorted(self._events, key=lambda e: e[0])


# Languages (espeak-ng voice names) and the letters their pseudo-words are made of.
LANGUAGES: dict[str, tuple[str, str]] = {
    "en-us": ("bcdfghjklmnprstvwyz", "aeiou"),
    "en": ("bcdfghjklmnprstvwz", "aeiou"),  # British English
    "de": ("bdfghjklmnprstvwzß", "aeiouäöü"),
    "fr": ("bcdfgjlmnprstvz", "aeiouéèàô"),
    "es": ("bcdfgjlmnñprstvz", "aeiou"),
    "it": ("bcdfglmnprstvz", "aeiou"),
    "pt-br": ("bcdfgjlmnprstvz", "aeiouãõé"),
    "nl": ("bdfghjklmnprstvwz", "aeiou"),
    "pl": ("bcdfghjklmnprstwzł", "aeiouy"),
    "sv": ("bdfghjklmnprstv", "aeiouyåäö"),
    "tr": ("bcçdfgğhjklmnprsştvyz", "aeıioöuü"),
    "id": ("bcdfghjklmnprstwy", "aeiou"),
    "ru": ("бвгджзклмнпрстфхцчшщ", "аеиоуыэюя"),
    "cmn": ("", ""),  # hanzi, see below
    "ja": ("", ""),  # kana, see below
}
_HANZI = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黑"
_KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんがぎぐげござじずぜぞだでどばびぶべぼぱぴぷぺぽ"

# A few real sentences per major language (common phrases, written for this project).
SENTENCES: dict[str, list[str]] = {
    "en-us": ["Hello, how are you doing today?", "The quick brown fox jumps over the lazy dog.",
              "Please bring me a cup of warm milk and some bread.", "We were walking along the beach at sunset.",
              "My favourite food is pizza with mushrooms.", "Could you open the window, please?",
              "Thank you very much for your help yesterday.", "She sells sea shells by the sea shore."],
    "de": ["Guten Morgen, wie geht es dir?", "Ich möchte gern einen Kaffee mit Milch.",
           "Das Wetter ist heute wirklich schön.", "Wir fahren morgen mit dem Zug nach Berlin."],
    "fr": ["Bonjour, comment allez-vous?", "Je voudrais un café et un croissant, s'il vous plaît.",
              "Il fait très beau aujourd'hui.", "Nous partons en vacances la semaine prochaine."],
    "es": ["Hola, ¿cómo estás?", "Me gustaría un vaso de agua, por favor.",
           "Mañana vamos a la playa con mis amigos.", "El perro corre por el parque."],
    "it": ["Buongiorno, come stai?", "Vorrei un caffè, per favore.", "Domani andiamo al mare."],
    "ru": ["Привет, как дела?", "Я хочу чашку чая с молоком.", "Завтра мы поедем в Москву."],
    "cmn": ["你好，你今天怎么样？", "我想喝一杯茶。", "明天我们去北京。"],
    "ja": ["こんにちは、おげんきですか。", "あしたはやまにいきます。"],
}

VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m6", "+m7", "+f1", "+f2", "+f3", "+f4", "+f5",
            "+klatt", "+klatt2", "+croak", "+Andy", "+Annie", "+Denis", "+Gene", "+Jacky", "+Lee", "+Mr serious",
            "+Tweaky", "+norbert", "+rob", "+steph", "+travis"]


def random_text(lang: str, rng: random.Random) -> str:
    """Pseudo-words (or real sentences) that the language's voice reads with its own rules."""
    if lang in SENTENCES and rng.random() < 0.25:
        return rng.choice(SENTENCES[lang])
    words = []
    for _ in range(rng.randint(3, 9)):
        if lang == "cmn":
            w = "".join(rng.choice(_HANZI) for _ in range(rng.randint(1, 3)))
        elif lang == "ja":
            w = "".join(rng.choice(_KANA) for _ in range(rng.randint(2, 5)))
        else:
            cons, vow = LANGUAGES[lang]
            w = ""
            for _ in range(rng.randint(1, 3)):
                w += (rng.choice(cons) if rng.random() < 0.85 else "") + rng.choice(vow)
                if rng.random() < 0.3:
                    w += rng.choice(cons)
        words.append(w)
        if rng.random() < 0.15:
            words.append(rng.choice([",", ".", "?", "!"]))
    sep = "" if lang in ("cmn", "ja") else " "
    text = sep.join(words).replace(" ,", ",").replace(" .", ".").replace(" ?", "?").replace(" !", "!")
    return text + "."
