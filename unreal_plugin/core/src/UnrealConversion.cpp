#include "avatarbridge/UnrealConversion.h"

#include "avatarbridge/ArkitCurves.h"

#include <algorithm>
#include <cmath>

namespace avatarbridge {
namespace {
constexpr double kRadToDeg = 57.295779513082320876798154814105;
}

Vec3 ToUnrealPosition(const Vec3& v) { return Vec3{100.f * v.z, -100.f * v.x, 100.f * v.y}; }

Quat ToUnrealQuat(const Quat& q) { return Quat{-q.z, q.x, -q.y, q.w}; }

Rotator UnrealRotator(const Quat& q) {
  // FQuat::Rotator(): yaw, pitch, roll with the same singularity handling at +-90 degrees pitch.
  const double X = q.x, Y = q.y, Z = q.z, W = q.w;
  const double singularity = Z * X - W * Y;
  const double yaw_y = 2.0 * (W * Z + X * Y);
  const double yaw_x = 1.0 - 2.0 * (Y * Y + Z * Z);
  constexpr double kThreshold = 0.4999995;
  Rotator r;
  r.yaw = std::atan2(yaw_y, yaw_x) * kRadToDeg;
  if (singularity < -kThreshold) {
    r.pitch = -90.0;
    r.roll = -r.yaw - 2.0 * std::atan2(X, W) * kRadToDeg;
  } else if (singularity > kThreshold) {
    r.pitch = 90.0;
    r.roll = r.yaw - 2.0 * std::atan2(X, W) * kRadToDeg;
  } else {
    r.pitch = std::asin(std::clamp(2.0 * singularity, -1.0, 1.0)) * kRadToDeg;
    r.roll = std::atan2(-2.0 * (W * X + Y * Z), 1.0 - 2.0 * (X * X + Y * Y)) * kRadToDeg;
  }
  auto wrap = [](double a) { a = std::fmod(a + 180.0, 360.0); return (a < 0 ? a + 360.0 : a) - 180.0; };
  r.roll = wrap(r.roll);
  return r;
}

Quat Multiply(const Quat& a, const Quat& b) {
  return Quat{a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y, a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
              a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w, a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z};
}

Quat Nlerp(const Quat& a, const Quat& b, float alpha) {
  const float dot = a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
  const float s = dot < 0.f ? -1.f : 1.f;  // shorter arc
  Quat q{a.x + (s * b.x - a.x) * alpha, a.y + (s * b.y - a.y) * alpha, a.z + (s * b.z - a.z) * alpha,
         a.w + (s * b.w - a.w) * alpha};
  const float n = std::sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w);
  if (n < 1e-12f) return a;
  return Quat{q.x / n, q.y / n, q.z / n, q.w / n};
}

std::array<float, 9> LiveLinkFaceAngles(const Quat& head, const Quat& neck, const Quat& left_eye,
                                        const Quat& right_eye, bool mirror) {
  // bridge_server/outputs/livelink_face.py face_angles, step for step and in double precision as there
  // (numpy float64), so both sides round the same values to float32.
  struct QuatD {
    double x, y, z, w;
  };
  auto d = [](const Quat& q) { return QuatD{q.x, q.y, q.z, q.w}; };
  auto mul = [](const QuatD& a, const QuatD& b) {
    return QuatD{a.w * b.x + a.x * b.w + a.y * b.z - a.z * b.y, a.w * b.y - a.x * b.z + a.y * b.w + a.z * b.x,
                 a.w * b.z + a.x * b.y - a.y * b.x + a.z * b.w, a.w * b.w - a.x * b.x - a.y * b.y - a.z * b.z};
  };
  const QuatD parts[3] = {mul(d(neck), d(head)), d(left_eye), d(right_eye)};  // the head: Neck then Head
  std::array<float, 9> out{};
  for (int i = 0; i < 3; ++i) {
    const QuatD& q = parts[i];
    const double X = -q.z, Y = q.x, Z = -q.y, W = q.w;  // ToUnrealQuat
    // FQuat::Rotator()'s formulas (radians), without its gimbal-lock branch, as face_angles.
    const double yaw = std::atan2(2.0 * (W * Z + X * Y), 1.0 - 2.0 * (Y * Y + Z * Z));
    const double pitch = std::asin(std::clamp(2.0 * (Z * X - W * Y), -1.0, 1.0));
    const double roll = std::atan2(-2.0 * (W * X + Y * Z), 1.0 - 2.0 * (X * X + Y * Y));
    // Unreal's rotator in our +X-facing frame has pitch = -(chin down); the app's is +(chin down). The
    // app's mirror convention then negates yaw and roll (docs/output_formats.md, "Sides and signs").
    const double sign = mirror ? -1.0 : 1.0;
    out[3 * i + 0] = static_cast<float>(sign * yaw);
    out[3 * i + 1] = static_cast<float>(-pitch);
    out[3 * i + 2] = static_cast<float>(-sign * roll);
  }
  return out;
}

std::vector<float> LiveLinkFaceCurves(const std::vector<float>& weights52, const Quat& head, const Quat& neck,
                                      const Quat& left_eye, const Quat& right_eye, bool mirror) {
  const std::vector<int>& perm = LiveLinkFaceMirrorIndex();
  const size_t n = weights52.size();
  std::vector<float> out(n);
  for (size_t k = 0; k < n; ++k) {
    const size_t from = mirror && k < perm.size() ? static_cast<size_t>(perm[k]) : k;
    out[k] = weights52[from < n ? from : k];
  }
  const std::array<float, 9> angles = LiveLinkFaceAngles(head, neck, left_eye, right_eye, mirror);
  out.insert(out.end(), angles.begin(), angles.end());
  return out;
}

}  // namespace avatarbridge
