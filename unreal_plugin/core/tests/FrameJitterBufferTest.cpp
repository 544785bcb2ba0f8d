#include <gtest/gtest.h>

#include "avatarbridge/FrameJitterBuffer.h"

using namespace avatarbridge;

namespace {
TimedFrame At(double t, uint64_t index) {
  TimedFrame f;
  f.play_time = t;
  f.frame.index = index;
  f.frame.time = t;
  f.frame.weights = {static_cast<float>(index)};
  return f;
}
}  // namespace

TEST(FrameJitterBuffer, OrdersOutOfOrderFramesByPlayTime) {
  FrameJitterBuffer buf;
  EXPECT_EQ(buf.Push(At(0.10, 3)), FrameJitterBuffer::PushResult::Accepted);
  EXPECT_EQ(buf.Push(At(0.00, 0)), FrameJitterBuffer::PushResult::OutOfOrder);
  EXPECT_EQ(buf.Push(At(0.0667, 2)), FrameJitterBuffer::PushResult::OutOfOrder);
  EXPECT_EQ(buf.Push(At(0.0333, 1)), FrameJitterBuffer::PushResult::OutOfOrder);
  TimedFrame before, after;
  bool hb, ha;
  buf.BracketCopy(0.05, &before, &hb, &after, &ha);
  ASSERT_TRUE(hb && ha);
  EXPECT_EQ(before.frame.index, 1u);
  EXPECT_EQ(after.frame.index, 2u);
  EXPECT_EQ(buf.size(), 3u);  // frame 0 is behind the clock: discarded
  EXPECT_EQ(buf.stats().out_of_order, 3u);
}

TEST(FrameJitterBuffer, DropsDuplicatesAndLateFrames) {
  FrameJitterBuffer buf;
  buf.Push(At(0.0, 0));
  buf.Push(At(0.1, 1));
  EXPECT_EQ(buf.Push(At(0.1, 1)), FrameJitterBuffer::PushResult::Duplicate);
  TimedFrame before, after;
  bool hb, ha;
  buf.BracketCopy(0.12, &before, &hb, &after, &ha);  // the clock shows frame 1
  EXPECT_EQ(before.frame.index, 1u);
  EXPECT_FALSE(ha);
  EXPECT_EQ(buf.Push(At(0.05, 9)), FrameJitterBuffer::PushResult::Late);   // behind what was shown
  EXPECT_EQ(buf.Push(At(0.1, 1)), FrameJitterBuffer::PushResult::Late);    // the shown one again
  EXPECT_EQ(buf.Push(At(0.2, 2)), FrameJitterBuffer::PushResult::Accepted);
  const JitterStats s = buf.stats();
  EXPECT_EQ(s.duplicates, 1u);
  EXPECT_EQ(s.late, 2u);
  EXPECT_EQ(s.accepted, 3u);
}

TEST(FrameJitterBuffer, KeepsTheNewestWhenFull) {
  FrameJitterBuffer buf(4);
  for (int i = 0; i < 6; ++i) buf.Push(At(i * 0.1, i));
  EXPECT_EQ(buf.size(), 4u);
  EXPECT_EQ(buf.stats().overflow, 2u);
  TimedFrame before, after;
  bool hb, ha;
  buf.BracketCopy(0.0, &before, &hb, &after, &ha);
  EXPECT_FALSE(hb);
  EXPECT_EQ(after.frame.index, 2u);
  EXPECT_NEAR(buf.newest_time(), 0.5, 1e-12);
}
