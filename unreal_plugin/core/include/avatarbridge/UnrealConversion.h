// Canonical (right-handed, Y up, metres, subject faces +Z, its left is +X) -> Unreal (left-handed,
// Z up, centimetres, a character faces +X, its left is -Y). docs/conventions.md derives these.
#pragma once

#include <array>

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
 * The 9 Live Link Face angle curves (HeadYaw .. RightEyeRoll) from canonical Head, Neck, LeftEye,
 * RightEye rotations, exactly as the server's livelinkface:// output sends them
 * (docs/output_formats.md): Unreal rotator degrees / 180 in Epic's ARKit frame; the head is
 * Neck then Head. A left turn gives a negative HeadYaw; chin down a positive HeadPitch.
 */
std::array<float, 9> LiveLinkFaceAngles(const Quat& head, const Quat& neck, const Quat& left_eye,
                                        const Quat& right_eye);

}  // namespace avatarbridge
