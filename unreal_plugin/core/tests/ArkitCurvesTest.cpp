#include <gtest/gtest.h>

#include "avatarbridge/ArkitCurves.h"

using namespace avatarbridge;

TEST(ArkitCurves, CanonicalTableComesFromTheContract) {
  const auto& names = CanonicalArkitNames();
  ASSERT_EQ(names.size(), 52u);
  EXPECT_EQ(names[0], "eyeBlinkLeft");
  EXPECT_EQ(names[17], "jawOpen");
  EXPECT_EQ(names[51], "tongueOut");
  EXPECT_EQ(CanonicalBoneNames(), (std::vector<std::string>{"Head", "Neck", "LeftEye", "RightEye"}));
}

TEST(ArkitCurves, UnrealNamesArePascalCaseLikeEARFaceBlendShape) {
  EXPECT_EQ(ToUnrealCurveName("jawOpen"), "JawOpen");
  EXPECT_EQ(ToUnrealCurveName("eyeBlinkLeft"), "EyeBlinkLeft");
  EXPECT_EQ(ToUnrealCurveName("mouthSmileRight"), "MouthSmileRight");
  EXPECT_EQ(ToUnrealCurveName("tongueOut"), "TongueOut");
  CurveMap map(CanonicalArkitNames());
  // A few of EARFaceBlendShape's (and mh_arkit_mapping_pose's) names, at their enum positions.
  EXPECT_EQ(map.unreal_names()[0], "EyeBlinkLeft");
  EXPECT_EQ(map.unreal_names()[14], "JawForward");
  EXPECT_EQ(map.unreal_names()[18], "MouthClose");
  EXPECT_EQ(map.unreal_names()[43], "BrowInnerUp");
  EXPECT_EQ(map.unreal_names()[46], "CheekPuff");
  EXPECT_TRUE(map.unknown().empty());
  EXPECT_TRUE(map.missing().empty());
}

TEST(ArkitCurves, UnknownNamesAreIgnoredAndMissingOnesStayAtZero) {
  std::vector<std::string> header = {"jawOpen", "viseme_aa", "eyeBlinkLeft", "jawOpen"};
  CurveMap map(header);
  EXPECT_EQ(map.unknown(), (std::vector<std::string>{"viseme_aa", "jawOpen"}));  // duplicate ignored too
  EXPECT_EQ(map.missing().size(), 50u);
  std::vector<float> out;
  map.Apply({0.5f, 0.9f, 1.7f, 0.3f}, out);
  ASSERT_EQ(out.size(), 52u);
  EXPECT_FLOAT_EQ(out[17], 0.5f);
  EXPECT_FLOAT_EQ(out[0], 1.0f);  // clamped
  EXPECT_FLOAT_EQ(out[1], 0.0f);
}

TEST(ArkitCurves, LiveLinkFaceAngleCurves) {
  const auto& n = LiveLinkFaceAngleCurveNames();
  ASSERT_EQ(n.size(), 9u);
  EXPECT_EQ(n[0], "HeadYaw");
  EXPECT_EQ(n[8], "RightEyeRoll");
}

TEST(ArkitCurves, LiveLinkFaceMirrorIndexIsThePythonOutputs) {
  // bridge_server/outputs/livelink_face.py _mirror_index(ARKIT_NAMES), printed from the .venv (the same
  // permutation as SWAP in tests/test_livelink_face.py): eye, jaw, mouth, brow, cheek and nose Left<->Right.
  const std::vector<int> python = {7,  8,  9,  10, 11, 12, 13, 0,  1,  2,  3,  4,  5,  6,  14, 16, 15, 17,
                                   18, 19, 20, 22, 21, 24, 23, 26, 25, 28, 27, 30, 29, 31, 32, 33, 34, 36,
                                   35, 38, 37, 40, 39, 42, 41, 43, 45, 44, 46, 48, 47, 50, 49, 51};
  EXPECT_EQ(LiveLinkFaceMirrorIndex(), python);
}
