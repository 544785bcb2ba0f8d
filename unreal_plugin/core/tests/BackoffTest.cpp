#include <gtest/gtest.h>

#include "avatarbridge/Backoff.h"

using namespace avatarbridge;
using std::chrono::milliseconds;

TEST(Backoff, GrowsWithJitterUpToTheCapAndResets) {
  BackoffPolicy p;
  p.initial = milliseconds(100);
  p.max = milliseconds(1000);
  p.multiplier = 2.0;
  p.jitter = 0.2;
  Backoff b(p, 42);
  const double expect[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (double e : expect) {
    const auto d = b.Next().count();
    EXPECT_GE(d, e * 0.8 - 1) << e;
    EXPECT_LE(d, std::min(e * 1.2, 1000.0) + 1) << e;
  }
  EXPECT_EQ(b.attempts(), 7u);
  b.Reset();
  EXPECT_LE(b.Next().count(), 121);
}
