// Canonical (right-handed, Y up, metres, subject faces +Z, its left is +X) -> Unreal (left-handed,
// Z up, centimetres, a character faces +X, its left is -Y). docs/conventions.md derives these.
#pragma once

#include <array>
#include <vector>

#include "avatarbridge/Types.h"

namespace avatarbridge {

/** Unreal's FRotator in degrees. */
struct Rotator {
  double pitch = 0.0, yaw = 0.0, roll = 0.0;
};

/** (x, y, z) m -> (100 z, -100 x, 100 y) cm. */
Vec3 ToUnrealPosition(const Vec3& v);

/** (x, y, z, w) -> (-z, x, -y, w): the axis map is a reflection, so the vector part maps to minus
 *  the mapped axis. A turn to the subject's left (+ about canonical +Y) becomes a negative yaw. */
Quat ToUnrealQuat(const Quat& q);

/** Unreal's FQuat::Rotator() of an Unreal-space quaternion (yaw, then pitch, then roll). */
Rotator UnrealRotator(const Quat& unreal_q);

/** Hamilton product a * b (apply b, then a). */
Quat Multiply(const Quat& a, const Quat& b);

/** Normalised linear interpolation along the shorter arc. */
Quat Nlerp(const Quat& a, const Quat& b, float alpha);

/**
 * The 9 Live Link Face angle curves (HeadYaw .. RightEyeRoll, LiveLinkFaceAngleCurveNames() order) from
 * canonical Head, Neck, LeftEye, RightEye rotations, exactly as the server's livelinkface:// output sends
 * them (bridge_server/outputs/livelink_face.py face_angles; conventions and the recordings they come
 * from: docs/output_formats.md). Radians. The head curve is the whole head (Neck then Head), the eyes
 * relative to the head; the Euler split is FQuat::Rotator's (yaw, pitch, roll), computed in double
 * precision with the same formulas as face_angles (no gimbal-lock branch: that differs from
 * UnrealRotator only within 0.09 degrees of +-90 degrees pitch).
 *
 * With `mirror` (the default, the Live Link Face app's convention and the server's `mirror=1`):
 * the Yaw curves = +(turn to the subject's left), the Pitch curves = +(chin / gaze down), the Roll
 * curves = +(tilt to the subject's right shoulder); the eye curves stay on the subject's own sides
 * (LeftEyeYaw is the subject's left eye), while the 52 weights are swapped Left<->Right
 * (LiveLinkFaceCurves does both).
 * Without `mirror` (`mirror=0`): yaw and roll change sign, pitch does not.
 */
std::array<float, 9> LiveLinkFaceAngles(const Quat& head, const Quat& neck, const Quat& left_eye,
                                        const Quat& right_eye, bool mirror = true);

/**
 * The 61 curve values of one Live Link Face packet, as livelinkface:// sends them: the 52 ARKit weights
 * in canonical order (CurveMap::Apply's output) with, under `mirror`, each xxxLeft column carrying the
 * xxxRight weight and vice versa (LiveLinkFaceMirrorIndex()), then LiveLinkFaceAngles(..., mirror).
 * Column names stay CurveMap::unreal_names() + LiveLinkFaceAngleCurveNames().
 */
std::vector<float> LiveLinkFaceCurves(const std::vector<float>& weights52, const Quat& head, const Quat& neck,
                                      const Quat& left_eye, const Quat& right_eye, bool mirror = true);

}  // namespace avatarbridge
