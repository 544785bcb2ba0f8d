// Reconnect delays: exponential with full jitter, capped, reset after a good connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace avatarbridge {

struct BackoffPolicy {
  std::chrono::milliseconds initial{250};
  std::chrono::milliseconds max{8000};
  double multiplier = 2.0;
  double jitter = 0.2;  // +-20 % so that many clients do not reconnect in step
};

class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy = {}, uint64_t seed = 0x5eed);

  /** The delay before the next attempt; grows with each call until Reset(). */
  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }
  uint32_t attempts() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  uint32_t attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace avatarbridge
