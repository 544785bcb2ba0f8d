#include "avatarbridge/PosePlayer.h"

#include <algorithm>

#include "avatarbridge/UnrealConversion.h"

namespace avatarbridge {
namespace {
float Smoothstep(double x) {
  x = std::clamp(x, 0.0, 1.0);
  return static_cast<float>(x * x * (3.0 - 2.0 * x));
}
}  // namespace

const char* PlayStateName(PlayState state) {
  switch (state) {
    case PlayState::Waiting: return "waiting";
    case PlayState::Playing: return "playing";
    case PlayState::Holding: return "holding";
    case PlayState::Easing: return "easing";
    case PlayState::Neutral: return "neutral";
  }
  return "?";
}

Pose Pose::Neutral(size_t num_weights, size_t num_bones) {
  Pose p;
  p.weights.assign(num_weights, 0.f);
  p.rotations.assign(num_bones, Quat{});
  return p;
}

Pose Pose::Blend(const Pose& a, const Pose& b, float alpha) {
  Pose out = a;
  for (size_t i = 0; i < out.weights.size() && i < b.weights.size(); ++i)
    out.weights[i] = a.weights[i] + (b.weights[i] - a.weights[i]) * alpha;
  for (size_t i = 0; i < out.rotations.size() && i < b.rotations.size(); ++i)
    out.rotations[i] = Nlerp(a.rotations[i], b.rotations[i], alpha);
  return out;
}

PosePlayer::PosePlayer(size_t num_weights, size_t num_bones, double fps, StallPolicy policy, size_t capacity)
    : num_weights_(num_weights), num_bones_(num_bones), period_(1.0 / fps), policy_(policy), buffer_(capacity),
      neutral_(Pose::Neutral(num_weights, num_bones)), last_shown_(neutral_) {}

Pose PosePlayer::FromFrame(const Frame& f) const {
  Pose p = neutral_;
  for (size_t i = 0; i < num_weights_ && i < f.weights.size(); ++i) p.weights[i] = f.weights[i];
  for (size_t i = 0; i < num_bones_ && i < f.rotations.size(); ++i) p.rotations[i] = f.rotations[i];
  return p;
}

PlayerOutput PosePlayer::Evaluate(double t) {
  TimedFrame before, after;
  bool has_before = false, has_after = false;
  buffer_.BracketCopy(t, &before, &has_before, &after, &has_after);

  PlayerOutput out;
  if (!has_before) {
    out.pose = neutral_;
    out.state = last_state_ == PlayState::Waiting ? PlayState::Waiting : PlayState::Neutral;
  } else {
    out.frame_time = before.play_time;
    const double since = t - before.play_time;
    if (has_after && after.play_time - before.play_time <= 2.5 * period_) {
      // Normal: interpolate between neighbours on the audio clock.
      const double span = after.play_time - before.play_time;
      const float alpha = static_cast<float>(span > 0 ? since / span : 0.0);
      out.pose = Pose::Blend(FromFrame(before.frame), FromFrame(after.frame), alpha);
      out.state = PlayState::Playing;
    } else if (since <= 1.5 * period_) {
      out.pose = FromFrame(before.frame);  // the next frame is due any moment
      out.state = PlayState::Playing;
    } else {
      // A stall (nothing next, or a gap: the server restarted or audio was dropped).
      const double stalled = since - 1.5 * period_;
      const Pose last = FromFrame(before.frame);
      if (stalled <= policy_.hold_s) {
        out.pose = last;
        out.state = PlayState::Holding;
      } else if (stalled <= policy_.hold_s + policy_.ease_s) {
        out.pose = Pose::Blend(last, neutral_, Smoothstep((stalled - policy_.hold_s) / policy_.ease_s));
        out.state = PlayState::Easing;
      } else {
        out.pose = neutral_;
        out.state = PlayState::Neutral;
      }
    }
  }

  // Coming back from a stall: blend from what was on screen instead of popping.
  const bool was_stalled = last_state_ == PlayState::Holding || last_state_ == PlayState::Easing ||
                           last_state_ == PlayState::Neutral;
  if (out.state == PlayState::Playing && was_stalled && policy_.recover_s > 0) {
    recovering_ = true;
    recover_start_ = t;
    recover_from_ = last_shown_;
  }
  if (recovering_ && out.state == PlayState::Playing) {
    const double a = (t - recover_start_) / policy_.recover_s;
    if (a >= 1.0) {
      recovering_ = false;
    } else {
      out.pose = Pose::Blend(recover_from_, out.pose, Smoothstep(a));
    }
  } else if (out.state != PlayState::Playing) {
    recovering_ = false;
  }
  last_state_ = out.state;
  last_shown_ = out.pose;
  return out;
}

void PosePlayer::Reset() {
  buffer_.Clear();
  last_shown_ = neutral_;
  last_state_ = PlayState::Waiting;
  recovering_ = false;
}

}  // namespace avatarbridge
