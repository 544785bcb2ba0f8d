"""Preview renderer: rigged glTF avatars driven by frames, rendered offscreen on the CPU (docs/render.md).

    avatar = Avatar.load("brunette-t.glb")
    with FaceRenderer(avatar, 512, 512) as r:
        rgb = r.render(weights, rotations)   # (52,) ARKit weights, (16,) xyzw Head/Neck/LeftEye/RightEye
"""
from engine.render.avatar import Avatar, Pose
from engine.render.frames import FramesError, FrameTrack, load_frames
from engine.render.gltf import AvatarError
from engine.render.renderer import FaceRenderer
from engine.render.transforms import axis_angle_quat

__all__ = ["Avatar", "AvatarError", "FaceRenderer", "FramesError", "FrameTrack", "Pose", "axis_angle_quat",
           "load_frames"]
