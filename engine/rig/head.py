"""How a head turn is shared between the Neck and Head bones, and how far the eyes counter-rotate.

One home for these numbers: the audio engines (DSP, learned) and the video capture all split a head rotation
the same way, so a rig driven by any of them moves alike.
"""
from __future__ import annotations

# Neck carries this share of the head rotation and Head (its child) the rest: a real neck takes about a third
# of a head turn, and an all-Head turn looks like a bobble-head on full-body rigs.
NECK_SHARE = 0.3
# The eyes counter-rotate this share of the head's yaw and pitch (the vestibulo-ocular reflex keeps the gaze on
# its target while the head moves); less than 1 so the gaze still drifts a little with the head, as people do.
VOR = 0.6
