"""The emotion presets: each is a base pose of ARKit-52 weights that articulation plays on top of.

One table for every engine and edge: the engines scale a pose by emotion_strength, the server and CLIs take
their list of accepted names from it, and the contract's Emotion enum names the same five.
"""
from __future__ import annotations

EMOTIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "happy": {"mouthSmileLeft": 0.55, "mouthSmileRight": 0.55, "cheekSquintLeft": 0.35,
              "cheekSquintRight": 0.35, "eyeSquintLeft": 0.20, "eyeSquintRight": 0.20,
              "mouthDimpleLeft": 0.10, "mouthDimpleRight": 0.10},
    "sad": {"mouthFrownLeft": 0.45, "mouthFrownRight": 0.45, "browInnerUp": 0.55,
            "mouthShrugLower": 0.15, "mouthPressLeft": 0.10, "mouthPressRight": 0.10},
    "angry": {"browDownLeft": 0.60, "browDownRight": 0.60, "noseSneerLeft": 0.35,
              "noseSneerRight": 0.35, "mouthPressLeft": 0.30, "mouthPressRight": 0.30,
              "eyeSquintLeft": 0.25, "eyeSquintRight": 0.25},
    "surprised": {"eyeWideLeft": 0.55, "eyeWideRight": 0.55, "browInnerUp": 0.50,
                  "browOuterUpLeft": 0.55, "browOuterUpRight": 0.55, "jawOpen": 0.12},
}

EMOTION_NAMES: tuple[str, ...] = tuple(EMOTIONS)
