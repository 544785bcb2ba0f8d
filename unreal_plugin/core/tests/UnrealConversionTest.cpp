#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "avatarbridge/UnrealConversion.h"

using namespace avatarbridge;

namespace {
Quat Axis(float x, float y, float z, double deg) {
  const double h = deg * M_PI / 360.0;
  return Quat{static_cast<float>(x * std::sin(h)), static_cast<float>(y * std::sin(h)),
              static_cast<float>(z * std::sin(h)), static_cast<float>(std::cos(h))};
}
Vec3 Rotate(const Quat& q, const Vec3& v) {  // q v q*, the same formula as FQuat::RotateVector
  const Quat p{v.x, v.y, v.z, 0.f};
  const Quat c{-q.x, -q.y, -q.z, q.w};
  const Quat r = Multiply(Multiply(q, p), c);
  return Vec3{r.x, r.y, r.z};
}
void ExpectNear(const Vec3& a, const Vec3& b, float tol) {
  EXPECT_NEAR(a.x, b.x, tol);
  EXPECT_NEAR(a.y, b.y, tol);
  EXPECT_NEAR(a.z, b.z, tol);
}
}  // namespace

TEST(UnrealConversion, PositionMetresToCentimetresZUp) {
  // Subject's forward (+Z) -> Unreal +X, its left (+X) -> Unreal -Y, up (+Y) -> Unreal +Z.
  ExpectNear(ToUnrealPosition({1.f, 2.f, 3.f}), {300.f, -100.f, 200.f}, 1e-4f);
}

TEST(UnrealConversion, RotationsCommuteWithTheAxisMap) {
  // Rotating then converting equals converting then rotating, for any rotation and vector.
  std::mt19937 rng(7);
  std::normal_distribution<float> n;
  for (int i = 0; i < 200; ++i) {
    Quat q{n(rng), n(rng), n(rng), n(rng)};
    const float len = std::sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w);
    q = Quat{q.x / len, q.y / len, q.z / len, q.w / len};
    const Vec3 v{n(rng), n(rng), n(rng)};
    ExpectNear(ToUnrealPosition(Rotate(q, v)), Rotate(ToUnrealQuat(q), ToUnrealPosition(v)), 2e-3f);
  }
}

TEST(UnrealConversion, LeftTurnIsNegativeUnrealYaw) {
  // +30 degrees about canonical +Y: the subject turns to its own left.
  const Quat ue = ToUnrealQuat(Axis(0, 1, 0, 30));
  const Vec3 fwd = Rotate(ue, {1.f, 0.f, 0.f});  // an Unreal character faces +X, its left is -Y
  EXPECT_LT(fwd.y, -0.49f);
  const Rotator r = UnrealRotator(ue);
  EXPECT_NEAR(r.yaw, -30.0, 1e-4);
  EXPECT_NEAR(r.pitch, 0.0, 1e-4);
  EXPECT_NEAR(r.roll, 0.0, 1e-4);
}

TEST(UnrealConversion, ChinDownIsNegativeUnrealPitchAndRightTiltPositiveRoll) {
  const Rotator down = UnrealRotator(ToUnrealQuat(Axis(1, 0, 0, 20)));  // + about canonical +X: chin down
  EXPECT_NEAR(down.pitch, -20.0, 1e-4);
  EXPECT_NEAR(down.yaw, 0.0, 1e-4);
  const Quat tilt = ToUnrealQuat(Axis(0, 0, 1, 15));  // + about +Z: top of the head to the right shoulder
  const Vec3 up = Rotate(tilt, {0.f, 0.f, 1.f});
  EXPECT_GT(up.y, 0.25f);  // the character's right is Unreal +Y
  EXPECT_NEAR(UnrealRotator(tilt).roll, 15.0, 1e-4);
}

TEST(UnrealConversion, LiveLinkFaceAnglesMatchTheUdpOutput) {
  // Same numbers as tests/test_livelink_face.py::test_head_yaw_sign_for_a_left_turn.
  const Quat id{};
  auto a = LiveLinkFaceAngles(Axis(0, 1, 0, 30), id, id, id);
  EXPECT_NEAR(a[0], -30.0 / 180.0, 1e-6);
  EXPECT_NEAR(a[1], 0.0, 1e-6);
  a = LiveLinkFaceAngles(Axis(1, 0, 0, 30), id, id, id);
  EXPECT_NEAR(a[1], 30.0 / 180.0, 1e-6);
  // The head curve is the whole head: Neck then Head.
  a = LiveLinkFaceAngles(Axis(0, 1, 0, 21), Axis(0, 1, 0, 9), Axis(0, 1, 0, -10), id);
  EXPECT_NEAR(a[0], -30.0 / 180.0, 1e-5);
  EXPECT_NEAR(a[3], 10.0 / 180.0, 1e-5);  // the left eye looks to the subject's right
}

TEST(UnrealConversion, NlerpTakesTheShortArc) {
  const Quat a = Axis(0, 1, 0, 10);
  Quat b = Axis(0, 1, 0, 30);
  b = Quat{-b.x, -b.y, -b.z, -b.w};  // same rotation, other hemisphere
  const Rotator r = UnrealRotator(ToUnrealQuat(Nlerp(a, b, 0.5f)));
  EXPECT_NEAR(r.yaw, -20.0, 0.1);
}
