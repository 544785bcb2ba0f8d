// Frames wait here between the network and the audio clock that plays them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

#include "avatarbridge/Types.h"

namespace avatarbridge {

/** A frame placed on the player's audio clock: `play_time` = segment start + frame.time. */
struct TimedFrame {
  double play_time = 0.0;  // seconds on the local audio clock (what the audio device plays)
  Frame frame;
};

struct JitterStats {
  uint64_t accepted = 0;
  uint64_t duplicates = 0;    // same play time as a queued frame
  uint64_t late = 0;          // arrived after the clock had passed it: dropped
  uint64_t out_of_order = 0;  // arrived before an earlier frame, put in place
  uint64_t overflow = 0;      // the oldest queued frame dropped because the buffer was full
};

/**
 * Orders frames by play time, whatever order they arrive in; drops late and duplicate ones.
 * Thread-safe: the network thread pushes, the game/audio thread reads.
 */
class FrameJitterBuffer {
 public:
  enum class PushResult { Accepted, OutOfOrder, Duplicate, Late, Overflow };

  explicit FrameJitterBuffer(size_t capacity = 1200) : capacity_(capacity) {}

  PushResult Push(TimedFrame frame);

  /**
   * The frames around `t`: `before` = the latest with play_time <= t, `after` = the first later one.
   * Frames older than `before` are discarded, and t becomes the "consumed" mark: anything pushed
   * later with play_time < the consumed `before` frame is late.
   */
  void Bracket(double t, const TimedFrame** before, const TimedFrame** after);

  /** Copies of the bracket (safe to use after the lock is released). */
  bool BracketCopy(double t, TimedFrame* before, bool* has_before, TimedFrame* after, bool* has_after);

  size_t size() const;
  JitterStats stats() const;
  /** Play time of the newest queued frame, or -1 when empty. */
  double newest_time() const;
  void Clear();

 private:
  mutable std::mutex mu_;
  std::map<double, TimedFrame> frames_;
  size_t capacity_;
  double consumed_ = -1e300;  // play time of the last frame handed out as `before`
  double newest_pushed_ = -1e300;
  JitterStats stats_;
};

}  // namespace avatarbridge
