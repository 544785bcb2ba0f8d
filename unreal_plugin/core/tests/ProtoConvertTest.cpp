// Malformed frames from a server: each is rejected with a message that says what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "ProtoConvert.h"
#include "avatarbridge/ArkitCurves.h"

using namespace avatarbridge;

namespace {
StreamHeaderInfo Header() {
  StreamHeaderInfo h;
  h.blendshape_names = CanonicalArkitNames();
  h.bone_names = CanonicalBoneNames();
  h.fps = 30;
  h.sample_rate = 16000;
  return h;
}
v1::Frame Good(uint64_t k) {
  v1::Frame f;
  f.set_index(k);
  f.set_sample_index((2 * k * 16000 + 30) / 60);
  f.set_time(static_cast<double>(f.sample_index()) / 16000);
  for (int i = 0; i < 52; ++i) f.add_weights(0.5f);
  for (int b = 0; b < 4; ++b) {
    f.add_rotations(0.f);
    f.add_rotations(0.f);
    f.add_rotations(0.f);
    f.add_rotations(1.f);
  }
  return f;
}
std::string Why(const v1::Frame& f, uint64_t expected = 3) {
  Frame out;
  std::string why;
  EXPECT_FALSE(ConvertFrame(f, Header(), expected, &out, &why));
  return why;
}
}  // namespace

TEST(ProtoConvert, AcceptsAGoodFrame) {
  Frame out;
  std::string why;
  v1::Frame f = Good(3);
  f.set_weights(17, 1.0005f);  // a rounding hair over 1 is clamped, not rejected
  ASSERT_TRUE(ConvertFrame(f, Header(), 3, &out, &why)) << why;
  EXPECT_EQ(out.weights.size(), 52u);
  EXPECT_FLOAT_EQ(out.weights[17], 1.f);
  EXPECT_FALSE(out.head_translation.has_value());
}

TEST(ProtoConvert, RejectsMalformedFramesSayingWhy) {
  v1::Frame f = Good(3);
  f.mutable_weights()->RemoveLast();
  EXPECT_NE(Why(f).find("51 weights, the header names 52"), std::string::npos);

  f = Good(3);
  f.add_rotations(0.f);
  EXPECT_NE(Why(f).find("17 rotation floats"), std::string::npos);

  f = Good(3);
  f.set_weights(5, std::numeric_limits<float>::quiet_NaN());
  EXPECT_NE(Why(f).find("eyeSquintLeft"), std::string::npos);

  f = Good(3);
  f.set_weights(0, 3.f);
  EXPECT_NE(Why(f).find("outside 0..1"), std::string::npos);

  f = Good(3);
  f.set_rotations(3, 0.2f);  // Head w: not a unit quaternion
  EXPECT_NE(Why(f).find("'Head' is not a unit quaternion"), std::string::npos);

  f = Good(3);
  f.set_time(9.0);
  EXPECT_NE(Why(f).find("does not match sample_index / sample_rate"), std::string::npos);

  EXPECT_NE(Why(Good(5)).find("frame index 5 where 3 was expected"), std::string::npos);
}
