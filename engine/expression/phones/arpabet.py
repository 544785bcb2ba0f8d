"""ARPAbet (CMU dictionary phones, stress digits allowed) -> our 15 visemes, and espeak-ng IPA -> ARPAbet.

One table each. IPA -> viseme is visemes.phone_to_viseme (the learned engine's labels); ARPAbet phones
map by the same place/manner rules, so both paths agree on a phone (tests check every ARPAbet phone
against its IPA form).
"""
from __future__ import annotations

from engine.expression.visemes import VISEME_INDEX, phone_to_viseme

# The 39 CMU phones (+ silence/noise fillers pocketsphinx emits) -> viseme. Rounded vowels are O or U,
# r-coloured ER is RR (lips protrude a little for English /r/), diphthongs take their first target's
# viseme here; timing.split_diphthongs gives them two targets when the caller wants that.
ARPABET_TO_VISEME: dict[str, str] = {
    "AA": "aa", "AE": "aa", "AH": "aa", "AO": "O", "AW": "aa", "AY": "aa",
    "EH": "E", "ER": "RR", "EY": "E", "IH": "I", "IY": "I",
    "OW": "O", "OY": "O", "UH": "U", "UW": "U",
    "B": "PP", "P": "PP", "M": "PP",
    "F": "FF", "V": "FF",
    "TH": "TH", "DH": "TH",
    "T": "DD", "D": "DD",
    "K": "kk", "G": "kk", "NG": "kk", "HH": "kk",
    "CH": "CH", "JH": "CH", "SH": "CH", "ZH": "CH",
    "S": "SS", "Z": "SS",
    "N": "nn", "L": "nn",
    "R": "RR",
    "W": "U", "Y": "I",
    "SIL": "sil", "SP": "sil", "+SPN+": "sil", "+NSN+": "sil",
}

# Diphthongs: (first, second) viseme targets, the second taking the later part of the phone.
DIPHTHONGS: dict[str, tuple[str, str]] = {"AW": ("aa", "U"), "AY": ("aa", "I"), "EY": ("E", "I"),
                                          "OW": ("O", "U"), "OY": ("O", "I")}

# espeak-ng IPA (stress and length marks removed) -> ARPAbet, longest match first. Used for words
# missing from the recogniser's dictionary (align.py), so it only needs espeak-ng's en-us inventory.
IPA_TO_ARPABET: dict[str, str] = {
    "aɪɚ": "AY ER", "aʊɚ": "AW ER", "oɹ": "AO R", "ɔɹ": "AO R", "ɑɹ": "AA R", "ɛɹ": "EH R", "ɪɹ": "IH R",
    "ʊɹ": "UH R", "ɜɹ": "ER",
    "aɪ": "AY", "aʊ": "AW", "ɔɪ": "OY", "oʊ": "OW", "əʊ": "OW", "eɪ": "EY", "tʃ": "CH", "dʒ": "JH",
    "ɚ": "ER", "ɝ": "ER", "ɜ": "ER", "ɐ": "AH", "ə": "AH", "ʌ": "AH", "ɑ": "AA", "ɒ": "AA", "a": "AE",
    "æ": "AE", "ɛ": "EH", "e": "EH", "ɪ": "IH", "ᵻ": "IH", "i": "IY", "ɔ": "AO", "o": "OW", "ʊ": "UH",
    "u": "UW", "p": "P", "b": "B", "m": "M", "f": "F", "v": "V", "θ": "TH", "ð": "DH", "t": "T",
    "d": "D", "ɾ": "T", "ʔ": "T", "k": "K", "ɡ": "G", "g": "G", "ŋ": "NG", "h": "HH", "ʃ": "SH",
    "ʒ": "ZH", "s": "S", "z": "Z", "n": "N", "l": "L", "ɫ": "L", "ɹ": "R", "r": "R", "w": "W",
    "j": "Y", "x": "K", "ç": "HH",
}
_IPA_KEYS = sorted(IPA_TO_ARPABET, key=len, reverse=True)
_IPA_DROP = set("ˈˌːˑ\u0303\u0329\u032f\u200d")


def base_phone(phone: str) -> str:
    """'AH0' -> 'AH'; pocketsphinx alternates such as 'SIL' unchanged."""
    return phone.upper().rstrip("012")


def arpabet_to_viseme(phone: str) -> str | None:
    """One ARPAbet phone (stress digits allowed) -> a viseme name, or None if it is not ARPAbet."""
    return ARPABET_TO_VISEME.get(base_phone(phone))


def label_to_viseme(label: str) -> str:
    """Any phone label timing.py accepts -> a viseme: a viseme name itself, ARPAbet, or IPA
    (visemes.phone_to_viseme). An empty label or one of none of these is silence."""
    if label in VISEME_INDEX:
        return label
    v = arpabet_to_viseme(label) if label.isascii() else None
    if v is None:
        v = phone_to_viseme(label) if label else "sil"
    return v or "sil"


def ipa_to_arpabet(ipa: str) -> list[str]:
    """An espeak-ng IPA string (phones may be space-separated) -> ARPAbet phones (no stress).

    Unknown symbols are skipped; an empty result means the word cannot be pronounced with our table.
    """
    out: list[str] = []
    for token in ipa.split():
        s = "".join(c for c in token if c not in _IPA_DROP)
        while s:
            for k in _IPA_KEYS:
                if s.startswith(k):
                    out.extend(IPA_TO_ARPABET[k].split())
                    s = s[len(k):]
                    break
            else:
                s = s[1:]  # a symbol no English phone uses (a tie or a tone mark): skip it
    return out
