"""The canonical ARKit-52 blendshape order and the bone list.

This mirrors the ``ArkitBlendshape`` and ``Bone`` enums of
``proto/avatarbridge/v1/bridge.proto`` (the contract is the source of truth;
``tests/test_contract.py`` fails if the two ever differ). Engines import this
module instead of the generated stubs so that compute never depends on gRPC.
"""

ARKIT_NAMES: tuple[str, ...] = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft",
    "eyeSquintLeft", "eyeWideLeft",
    "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight",
    "jawForward", "jawLeft", "jawRight", "jawOpen",
    "mouthClose", "mouthFunnel", "mouthPucker", "mouthLeft", "mouthRight",
    "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft", "mouthFrownRight",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthPressLeft", "mouthPressRight", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight",
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)

ARKIT_INDEX: dict[str, int] = {name: i for i, name in enumerate(ARKIT_NAMES)}

# Quaternions in Frame.rotations come in this order, 4 floats (x, y, z, w) each.
BONE_NAMES: tuple[str, ...] = ("Head", "Neck", "LeftEye", "RightEye")

NUM_BLENDSHAPES = len(ARKIT_NAMES)
NUM_BONES = len(BONE_NAMES)

assert NUM_BLENDSHAPES == 52 and len(set(ARKIT_NAMES)) == 52

# The 15 OVR / Oculus Lipsync visemes, in the order of Frame.visemes (when a stream carries them) and of the
# presets the VMC output sends: the inventory shared by the engines that predict visemes and the edges that
# forward them.
VISEMES: tuple[str, ...] = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR",
                            "aa", "E", "I", "O", "U")
