#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>
#include <random>

#include "avatarbridge/ArkitCurves.h"
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

// LiveLinkFaceAngles must equal bridge_server/outputs/livelink_face.py face_angles (radians, the app's
// mirror convention by default). The expected numbers below were printed by that Python function from
// the repository's .venv (float64, then rounded to float32 as the packet does); each test names the
// Python test whose inputs it reuses.
namespace {
void ExpectAngles(const std::array<float, 9>& got, const std::array<double, 9>& want, double tol) {
  static const char* kNames[9] = {"HeadYaw",     "HeadPitch",    "HeadRoll",     "LeftEyeYaw", "LeftEyePitch",
                                  "LeftEyeRoll", "RightEyeYaw", "RightEyePitch", "RightEyeRoll"};
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(got[i], want[i], tol) << kNames[i];
}
}  // namespace

TEST(UnrealConversion, LiveLinkFaceAnglesLeftTurnAndChinDownAsThePythonOutput) {
  // tests/test_livelink_face.py::test_head_yaw_sign_for_a_left_turn: Head = 30 degrees about canonical
  // +Y (a turn to the subject's own left), then 30 degrees about +X (chin down); the rest identity.
  // face_angles: [0.5235987755982988, 0, ...] (mirror=1), HeadYaw -0.5235987755982988 with mirror=0;
  // chin down [0, 0.5235987755982988, 0, ...] either way.
  const Quat id{};
  const double a = 0.5235987755982988;
  ExpectAngles(LiveLinkFaceAngles(Axis(0, 1, 0, 30), id, id, id), {a, 0, 0, 0, 0, 0, 0, 0, 0}, 1e-7);
  ExpectAngles(LiveLinkFaceAngles(Axis(0, 1, 0, 30), id, id, id, /*mirror=*/false), {-a, 0, 0, 0, 0, 0, 0, 0, 0},
               1e-7);
  ExpectAngles(LiveLinkFaceAngles(Axis(1, 0, 0, 30), id, id, id), {0, a, 0, 0, 0, 0, 0, 0, 0}, 1e-7);
  ExpectAngles(LiveLinkFaceAngles(Axis(1, 0, 0, 30), id, id, id, false), {0, a, 0, 0, 0, 0, 0, 0, 0}, 1e-7);
}

TEST(UnrealConversion, LiveLinkFaceAnglesOfAKnownGazeAsThePythonOutput) {
  // tests/test_outputs_livelinkface_recordings.py::gaze_frames(yaw=0.45, pitch=0.3): both eyes 0.45 rad to
  // the subject's left and 0.3 rad down, rotations from engine/rig/eyes.py eye_quats (float32 as sent).
  // face_angles: [0, 0, 0, 0.4499999909462548, 0.3000000070777656, -4.845998259267823e-09, (same again)].
  const Quat id{};
  const Quat eye{0.14567141234874725f, 0.22060111165046692f, -0.03334059938788414f, 0.9638482332229614f};
  ExpectAngles(LiveLinkFaceAngles(id, id, eye, eye),
               {0, 0, 0, 0.4499999909462548, 0.3000000070777656, -4.845998259267823e-09, 0.4499999909462548,
                0.3000000070777656, -4.845998259267823e-09},
               1e-7);
}

TEST(UnrealConversion, LiveLinkFaceConvergingEyesGiveTheRecordingsLeftMinusRightYaw) {
  // tests/test_outputs_livelinkface_recordings.py::test_converging_eyes_give_the_recordings_left_minus_right_yaw:
  // each eye turned inward by half the recordings' mean LeftEyeYaw - RightEyeYaw (-0.05667700917727274):
  // the left eye about -Y (toward the subject's right), the right eye about +Y.
  // face_angles: LeftEyeYaw -0.02833850532751544, RightEyeYaw +0.02833850532751544, the rest 0.
  const Quat id{};
  const Quat left{0.f, -0.01416877843439579f, 0.f, 0.9998996257781982f};
  const Quat right{0.f, 0.01416877843439579f, 0.f, 0.9998996257781982f};
  const auto a = LiveLinkFaceAngles(id, id, left, right);
  ExpectAngles(a, {0, 0, 0, -0.02833850532751544, 0, 0, 0.02833850532751544, 0, 0}, 1e-8);
  EXPECT_NEAR(a[3] - a[6], -0.05667700917727274, 1e-7);  // the sign the app records: convergence
}

TEST(UnrealConversion, LiveLinkFaceAnglesOfAGeneralPoseAsThePythonOutput) {
  // Every curve non-zero, so order, sides, signs and Neck-then-Head are all pinned. Inputs: the float32
  // quaternions of 25 degrees about (0.3, 1, 0.2) (Head), 12 about (1, -0.4, 0.5) (Neck), 18 about
  // (0.6, -1, 0.1) (LeftEye), 22 about (-0.3, 0.8, 0.4) (RightEye); expected: face_angles of them, as
  // float32, with mirror=True and mirror=False (the same function test_head_yaw_sign_for_a_left_turn calls).
  const Quat head{0.0610827766f, 0.203609258f, 0.0407218523f, 0.976296008f};
  const Quat neck{0.0880288482f, -0.035211537f, 0.0440144241f, 0.994521916f};
  const Quat left{0.0801905915f, -0.133650988f, 0.0133650983f, 0.987688363f};
  const Quat right{-0.060677141f, 0.161805704f, 0.0809028521f, 0.981627166f};
  const std::array<double, 9> mirrored = {0.371138901,  0.232119486, 0.256247073,  -0.268589735, 0.162695959,
                                          0.0050324793, 0.316403002, -0.145821989, 0.141158551};
  const auto m = LiveLinkFaceAngles(head, neck, left, right);
  for (int i = 0; i < 9; ++i) EXPECT_FLOAT_EQ(m[i], static_cast<float>(mirrored[i])) << i;
  const auto u = LiveLinkFaceAngles(head, neck, left, right, /*mirror=*/false);
  for (int i = 0; i < 9; ++i) {
    const double sign = (i % 3 == 1) ? 1.0 : -1.0;  // mirror=0: yaw and roll negated, pitch kept
    EXPECT_FLOAT_EQ(u[i], static_cast<float>(sign * mirrored[i])) << i;
  }
}

TEST(UnrealConversion, LiveLinkFaceHeadCurveIsNeckThenHead) {
  // 21 + 9 degrees of left turn make HeadYaw = 30 degrees in radians; the left eye 10 degrees toward the
  // subject's right (eyes are relative to the head) gives a negative LeftEyeYaw on the left eye's curve.
  const Quat id{};
  const auto a = LiveLinkFaceAngles(Axis(0, 1, 0, 21), Axis(0, 1, 0, 9), Axis(0, 1, 0, -10), id);
  EXPECT_NEAR(a[0], 30.0 * M_PI / 180.0, 1e-6);
  EXPECT_NEAR(a[3], -10.0 * M_PI / 180.0, 1e-6);
  EXPECT_NEAR(a[6], 0.0, 1e-7);
}

TEST(UnrealConversion, LiveLinkFaceCurvesAreThePacketsCurves) {
  // What livelinkface:// puts in a packet's 61 floats (tests/test_livelink_face.py::check_packets: column k
  // carries weight SWAP[k], then the 9 angles): the weights Left<->Right swapped under mirror.
  const auto& names = CanonicalArkitNames();
  auto slot = [&](const char* n) { return static_cast<size_t>(std::find(names.begin(), names.end(), n) - names.begin()); };
  std::vector<float> w(52, 0.f);
  w[slot("eyeBlinkLeft")] = 0.8f;
  w[slot("jawLeft")] = 0.3f;
  w[slot("mouthSmileRight")] = 0.6f;
  w[slot("jawOpen")] = 0.5f;
  const Quat id{};
  const auto c = LiveLinkFaceCurves(w, Axis(0, 1, 0, 30), id, id, id);
  ASSERT_EQ(c.size(), 61u);
  EXPECT_EQ(c[slot("eyeBlinkRight")], 0.8f);
  EXPECT_EQ(c[slot("eyeBlinkLeft")], 0.f);
  EXPECT_EQ(c[slot("jawRight")], 0.3f);
  EXPECT_EQ(c[slot("mouthSmileLeft")], 0.6f);
  EXPECT_EQ(c[slot("jawOpen")], 0.5f);
  EXPECT_NEAR(c[52], 0.5235987755982988, 1e-7);  // HeadYaw, after the 52 weights
  const auto u = LiveLinkFaceCurves(w, Axis(0, 1, 0, 30), id, id, id, /*mirror=*/false);
  for (size_t k = 0; k < 52; ++k) EXPECT_EQ(u[k], w[k]) << names[k];
  EXPECT_NEAR(u[52], -0.5235987755982988, 1e-7);
}

TEST(UnrealConversion, NlerpTakesTheShortArc) {
  const Quat a = Axis(0, 1, 0, 10);
  Quat b = Axis(0, 1, 0, 30);
  b = Quat{-b.x, -b.y, -b.z, -b.w};  // same rotation, other hemisphere
  const Rotator r = UnrealRotator(ToUnrealQuat(Nlerp(a, b, 0.5f)));
  EXPECT_NEAR(r.yaw, -20.0, 0.1);
}
