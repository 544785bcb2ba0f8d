#include "avatarbridge/FrameJitterBuffer.h"

namespace avatarbridge {

FrameJitterBuffer::PushResult FrameJitterBuffer::Push(TimedFrame frame) {
  std::lock_guard<std::mutex> lock(mu_);
  const double t = frame.play_time;
  if (t <= consumed_) {  // the clock already showed a frame at or after this one
    ++stats_.late;
    return PushResult::Late;
  }
  if (frames_.count(t)) {
    ++stats_.duplicates;
    return PushResult::Duplicate;
  }
  PushResult result = PushResult::Accepted;
  if (t < newest_pushed_) {
    ++stats_.out_of_order;
    result = PushResult::OutOfOrder;
  } else {
    newest_pushed_ = t;
  }
  frames_.emplace(t, std::move(frame));
  ++stats_.accepted;
  if (frames_.size() > capacity_) {  // a clock that stopped: keep the newest frames
    frames_.erase(frames_.begin());
    ++stats_.overflow;
    result = PushResult::Overflow;
  }
  return result;
}

void FrameJitterBuffer::Bracket(double t, const TimedFrame** before, const TimedFrame** after) {
  // Caller holds mu_.
  *before = nullptr;
  *after = nullptr;
  auto it = frames_.upper_bound(t);  // first frame later than t
  if (it != frames_.begin()) {
    auto prev = std::prev(it);
    frames_.erase(frames_.begin(), prev);  // older than the one we show: done with
    *before = &prev->second;
    if (prev->first > consumed_) consumed_ = prev->first;
  }
  if (it != frames_.end()) *after = &it->second;
}

bool FrameJitterBuffer::BracketCopy(double t, TimedFrame* before, bool* has_before, TimedFrame* after,
                                    bool* has_after) {
  std::lock_guard<std::mutex> lock(mu_);
  const TimedFrame* b = nullptr;
  const TimedFrame* a = nullptr;
  Bracket(t, &b, &a);
  *has_before = b != nullptr;
  *has_after = a != nullptr;
  if (b) *before = *b;
  if (a) *after = *a;
  return b || a;
}

size_t FrameJitterBuffer::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return frames_.size();
}

JitterStats FrameJitterBuffer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

double FrameJitterBuffer::newest_time() const {
  std::lock_guard<std::mutex> lock(mu_);
  return frames_.empty() ? -1.0 : frames_.rbegin()->first;
}

void FrameJitterBuffer::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  frames_.clear();
  consumed_ = -1e300;
  newest_pushed_ = -1e300;
}

}  // namespace avatarbridge
