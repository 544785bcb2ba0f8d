#include <gtest/gtest.h>

#include "avatarbridge/PosePlayer.h"

using namespace avatarbridge;

namespace {
TimedFrame Frame1(double t, float w) {
  TimedFrame f;
  f.play_time = t;
  f.frame.time = t;
  f.frame.weights.assign(52, 0.f);
  f.frame.weights[17] = w;  // jawOpen
  f.frame.rotations.assign(4, Quat{});
  return f;
}
}  // namespace

TEST(PosePlayer, InterpolatesOnTheAudioClock) {
  PosePlayer p(52, 4, 30.0);
  EXPECT_EQ(p.Evaluate(0.0).state, PlayState::Waiting);
  p.buffer().Push(Frame1(0.0, 0.0f));
  p.buffer().Push(Frame1(1.0 / 30, 0.6f));
  const PlayerOutput o = p.Evaluate(0.5 / 30);
  EXPECT_EQ(o.state, PlayState::Playing);
  EXPECT_NEAR(o.pose.weights[17], 0.3f, 1e-5);
}

TEST(PosePlayer, StallHoldsThenEasesToNeutralThenRecoversSmoothly) {
  StallPolicy pol;
  pol.hold_s = 0.2;
  pol.ease_s = 0.4;
  pol.recover_s = 0.1;
  PosePlayer p(52, 4, 30.0, pol);
  for (int k = 0; k <= 30; ++k) p.buffer().Push(Frame1(k / 30.0, 0.8f));
  EXPECT_EQ(p.Evaluate(0.99).state, PlayState::Playing);
  const double last = 1.0, grace = 1.5 / 30;
  PlayerOutput o = p.Evaluate(last + grace + 0.1);  // nothing new: hold
  EXPECT_EQ(o.state, PlayState::Holding);
  EXPECT_FLOAT_EQ(o.pose.weights[17], 0.8f);
  o = p.Evaluate(last + grace + 0.2 + 0.2);  // half way through the ease
  EXPECT_EQ(o.state, PlayState::Easing);
  EXPECT_NEAR(o.pose.weights[17], 0.4f, 1e-4);
  o = p.Evaluate(last + grace + 0.7);
  EXPECT_EQ(o.state, PlayState::Neutral);
  EXPECT_FLOAT_EQ(o.pose.weights[17], 0.f);
  // Frames resume (say after a reconnect): blend in from neutral instead of popping.
  const double t = 2.0;
  p.buffer().Push(Frame1(t, 1.0f));
  p.buffer().Push(Frame1(t + 1 / 30.0, 1.0f));
  o = p.Evaluate(t);
  EXPECT_EQ(o.state, PlayState::Playing);
  EXPECT_LT(o.pose.weights[17], 0.05f);
  o = p.Evaluate(t + 0.05);  // half of recover_s
  EXPECT_NEAR(o.pose.weights[17], 0.5f, 0.05);
  p.buffer().Push(Frame1(t + 2 / 30.0, 1.0f));
  p.buffer().Push(Frame1(t + 3 / 30.0, 1.0f));
  p.buffer().Push(Frame1(t + 4 / 30.0, 1.0f));
  o = p.Evaluate(t + 0.11);
  EXPECT_FLOAT_EQ(o.pose.weights[17], 1.0f);
}

TEST(PosePlayer, AGapInTheMiddleIsAStallNotAnInterpolation) {
  PosePlayer p(52, 4, 30.0);
  p.buffer().Push(Frame1(0.0, 1.0f));
  p.buffer().Push(Frame1(3.0, 0.0f));  // 3 s later (audio dropped while the server was away)
  const PlayerOutput o = p.Evaluate(1.5);
  EXPECT_EQ(o.state, PlayState::Neutral);
}

TEST(PlaybackSchedule, DelayIsTheHeadersLookaheadPlusTheJitterBudget) {
  PlaybackSchedule s{40.0, 120.0};
  EXPECT_NEAR(s.StartDelaySeconds(), 0.16, 1e-12);
}
