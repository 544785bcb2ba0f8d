// Samples the jitter buffer at the audio playback time: interpolation, and what to show when
// frames stop coming (hold the last pose, then ease to neutral; blend back in when they resume).
#pragma once

#include <cstddef>
#include <vector>

#include "avatarbridge/FrameJitterBuffer.h"
#include "avatarbridge/Types.h"

namespace avatarbridge {

/** What the face does when the stream stalls. */
struct StallPolicy {
  double hold_s = 0.25;    // keep the last pose this long past the last frame's time
  double ease_s = 0.5;     // then ease to neutral over this long
  double recover_s = 0.1;  // when frames come back, blend from the shown pose over this long
};

/** A pose in canonical order: 52 weights, 4 rotations (canonical space). */
struct Pose {
  std::vector<float> weights;
  std::vector<Quat> rotations;

  static Pose Neutral(size_t num_weights, size_t num_bones);
  /** a + (b - a) * alpha per weight, nlerp per rotation. */
  static Pose Blend(const Pose& a, const Pose& b, float alpha);
};

enum class PlayState {
  Waiting,  // no frame has reached the clock yet: neutral
  Playing,  // interpolating between two frames (or just past the newest, within a frame period)
  Holding,  // stalled: the last pose, held
  Easing,   // stalled: easing to neutral
  Neutral,  // stalled for longer than hold + ease
};

const char* PlayStateName(PlayState state);

struct PlayerOutput {
  Pose pose;
  PlayState state = PlayState::Waiting;
  double frame_time = -1.0;  // play time of the frame at or before t (-1 when none)
};

class PosePlayer {
 public:
  /** `capacity`: frames the jitter buffer holds (a whole clip sent at once needs clip seconds x fps). */
  PosePlayer(size_t num_weights, size_t num_bones, double fps, StallPolicy policy = {}, size_t capacity = 1200);

  FrameJitterBuffer& buffer() { return buffer_; }
  const StallPolicy& policy() const { return policy_; }

  /** The pose for the audio playback position `t` (seconds on the local audio clock). Call from one thread. */
  PlayerOutput Evaluate(double t);

  /** Forget everything (a new utterance). */
  void Reset();

 private:
  Pose FromFrame(const Frame& f) const;

  size_t num_weights_, num_bones_;
  double period_;
  StallPolicy policy_;
  FrameJitterBuffer buffer_;
  Pose neutral_;
  Pose last_shown_;
  PlayState last_state_ = PlayState::Waiting;
  bool recovering_ = false;
  double recover_start_ = 0.0;
  Pose recover_from_;
};

/**
 * When to start audio playback so that frames are there when the audio reaches them: the server
 * needs `lookahead_ms` of audio past a frame before it can send it, plus network jitter. Audio sent
 * at local time s plays at s + StartDelaySeconds().
 */
struct PlaybackSchedule {
  double lookahead_ms = 0.0;  // from the ExpressionHeader
  double jitter_ms = 100.0;   // your network/scheduling budget

  double StartDelaySeconds() const { return (lookahead_ms + jitter_ms) / 1000.0; }
};

}  // namespace avatarbridge
