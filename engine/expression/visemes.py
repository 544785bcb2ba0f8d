"""The viseme inventory of learned-v1 and its viseme -> ARKit-52 pose table.

Inventory: the 15 Oculus/OpenXR visemes (the ``viseme_*`` morph targets many
rigs ship beside the 52 ARKit shapes). The model classifies each 10 ms of
audio into these 15 classes; the face is the posterior-weighted mix of the
poses below (so a rig that has the 15 viseme shapes can use the posteriors
directly, and an ARKit rig gets the mix).

Phones come as IPA (espeak-ng's phoneme events) and are mapped by place and
manner of articulation, language-independently (docs/learned_engine.md).
"""
from __future__ import annotations

import unicodedata

import numpy as np

from engine.rig import ARKIT_INDEX, NUM_BLENDSHAPES
from engine.rig.arkit import VISEMES
VISEME_INDEX = {v: i for i, v in enumerate(VISEMES)}
NUM_VISEMES = len(VISEMES)

# Multi-letter IPA phones first (affricates), then the first letter decides.
_MULTI = {"tʃ": "CH", "dʒ": "CH", "tɕ": "CH", "dʑ": "CH", "ʈʂ": "CH", "ts": "SS", "dz": "SS",
          "pf": "FF"}
_SINGLE: dict[str, str] = {}
for _v, _chars in {
    "PP": "pbmɓʙ",
    "FF": "fvɱʋɸβ",
    "TH": "θð",
    "DD": "tdɾʈɖɗɽ",
    "kk": "kgɡŋqɢxɣχʁʔhɦħʕcɟ",
    "CH": "ʃʒɕʑʂʐçʝ",
    "SS": "sz",
    "nn": "nlɫɭɳɲʎɬɮʟ",
    "RR": "rɹɻʀɚɝ",
    "aa": "aɑæɐʌɒᵻ",
    "E": "eɛəɜœɘɵ",
    "I": "iɪɨjʏ",
    "O": "oɔɤø",
    "U": "uʊwɯyɥʉ",
}.items():
    for _c in _chars:
        _SINGLE[_c] = _v


def phone_to_viseme(phone: str) -> str | None:
    """An IPA phone (with any stress/length marks) -> one of VISEMES.

    A pause ('') is 'sil'; a symbol that is no phone of its own (e.g. a separate
    palatalisation mark) gives None: it continues the previous phone's viseme.
    """
    # Drop stress, length, ties and combining diacritics: only the base letters decide.
    p = "".join(c for c in unicodedata.normalize("NFD", phone)
                if not unicodedata.combining(c) and c not in "ˈˌːˑ͡‿_-'|#")
    if not phone:
        return "sil"
    if not p:
        return None
    for k, v in _MULTI.items():
        if p.startswith(k):
            return v
    return _SINGLE.get(p[0])


def _lr(name: str, w: float) -> dict[str, float]:
    return {name + "Left": w, name + "Right": w}


# Viseme -> ARKit pose at full articulation (intensity 1). Jaw opening per class follows
# typical measured openings (open vowels ~ 0.5-0.6, mid ~ 0.35-0.4, closures ~ 0.05).
POSES: dict[str, dict[str, float]] = {
    "sil": {},
    "PP": {"jawOpen": 0.04, "mouthClose": 0.04, **_lr("mouthPress", 0.45), "mouthRollLower": 0.15,
           "mouthRollUpper": 0.10},
    "FF": {"jawOpen": 0.07, "mouthRollLower": 0.45, **_lr("mouthUpperUp", 0.20), "mouthShrugUpper": 0.05},
    "TH": {"jawOpen": 0.12, **_lr("mouthLowerDown", 0.15), "tongueOut": 0.30},
    "DD": {"jawOpen": 0.14, **_lr("mouthLowerDown", 0.15), **_lr("mouthUpperUp", 0.10),
           **_lr("mouthStretch", 0.10)},
    "kk": {"jawOpen": 0.20, **_lr("mouthLowerDown", 0.12), **_lr("mouthStretch", 0.10)},
    "CH": {"jawOpen": 0.10, "mouthFunnel": 0.45, "mouthPucker": 0.20, **_lr("mouthUpperUp", 0.20),
           **_lr("mouthLowerDown", 0.20)},
    "SS": {"jawOpen": 0.06, **_lr("mouthStretch", 0.30), **_lr("mouthSmile", 0.10),
           **_lr("mouthUpperUp", 0.15), **_lr("mouthLowerDown", 0.15)},
    "nn": {"jawOpen": 0.13, **_lr("mouthLowerDown", 0.10), **_lr("mouthUpperUp", 0.05)},
    "RR": {"jawOpen": 0.15, "mouthFunnel": 0.30, "mouthPucker": 0.20},
    "aa": {"jawOpen": 0.60, **_lr("mouthLowerDown", 0.30), **_lr("mouthUpperUp", 0.12)},
    "E": {"jawOpen": 0.38, **_lr("mouthStretch", 0.25), **_lr("mouthLowerDown", 0.25),
          **_lr("mouthSmile", 0.10), **_lr("mouthUpperUp", 0.10)},
    "I": {"jawOpen": 0.20, **_lr("mouthStretch", 0.40), **_lr("mouthSmile", 0.20),
          **_lr("mouthUpperUp", 0.15), **_lr("mouthLowerDown", 0.15)},
    "O": {"jawOpen": 0.42, "mouthFunnel": 0.55, "mouthPucker": 0.15, **_lr("mouthLowerDown", 0.10)},
    "U": {"jawOpen": 0.15, "mouthPucker": 0.70, "mouthFunnel": 0.25},
}


def pose_matrix() -> np.ndarray:
    """(NUM_VISEMES, 52) float32: row v = the ARKit weights of viseme v."""
    m = np.zeros((NUM_VISEMES, NUM_BLENDSHAPES), np.float32)
    for v, spec in POSES.items():
        for name, w in spec.items():
            m[VISEME_INDEX[v], ARKIT_INDEX[name]] = w
    return m


# Jaw opening per viseme: the regression target the model also learns (docs).
JAW = np.array([POSES[v].get("jawOpen", 0.0) for v in VISEMES], np.float32)
