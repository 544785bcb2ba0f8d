#include "avatarbridge/Backoff.h"

#include <algorithm>
#include <cmath>

namespace avatarbridge {

Backoff::Backoff(BackoffPolicy policy, uint64_t seed) : policy_(policy), rng_(seed) {}

std::chrono::milliseconds Backoff::Next() {
  const double base = static_cast<double>(policy_.initial.count()) * std::pow(policy_.multiplier, attempt_);
  const double capped = std::min(base, static_cast<double>(policy_.max.count()));
  std::uniform_real_distribution<double> jitter(1.0 - policy_.jitter, 1.0 + policy_.jitter);
  ++attempt_;
  const double ms = std::min(capped * jitter(rng_), static_cast<double>(policy_.max.count()));
  return std::chrono::milliseconds(static_cast<int64_t>(std::max(1.0, ms)));
}

}  // namespace avatarbridge
