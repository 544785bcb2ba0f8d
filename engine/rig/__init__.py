"""Rig conventions shared by every engine: the ARKit-52 table and the bone list."""
from engine.rig.arkit import ARKIT_NAMES, ARKIT_INDEX, BONE_NAMES, NUM_BLENDSHAPES, NUM_BONES

__all__ = ["ARKIT_NAMES", "ARKIT_INDEX", "BONE_NAMES", "NUM_BLENDSHAPES", "NUM_BONES"]
