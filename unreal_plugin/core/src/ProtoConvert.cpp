#include "ProtoConvert.h"

#include <cmath>

namespace avatarbridge {

StreamHeaderInfo FromProto(const v1::ExpressionHeader& h) {
  StreamHeaderInfo out;
  out.stream_id = h.stream_id();
  out.blendshape_names.assign(h.blendshape_names().begin(), h.blendshape_names().end());
  out.bone_names.assign(h.bone_names().begin(), h.bone_names().end());
  out.fps = h.fps();
  out.lookahead_ms = h.lookahead_ms();
  out.sample_rate = h.sample_rate();
  out.engine = h.engine();
  out.api_version = h.api_version();
  return out;
}

StreamStatusInfo FromProto(const v1::StreamStatus& s) {
  StreamStatusInfo out;
  out.frames_sent = s.frames_sent();
  out.audio_seconds = s.audio_seconds();
  out.warnings.assign(s.warnings().begin(), s.warnings().end());
  out.engine = s.engine();
  return out;
}

void ToProto(const ExpressionStyle& s, v1::ExpressionStyle* out) {
  out->set_emotion(static_cast<v1::Emotion>(s.emotion));
  if (s.emotion_strength) out->set_emotion_strength(*s.emotion_strength);
  if (s.intensity) out->set_intensity(*s.intensity);
  if (s.head_motion) out->set_head_motion(*s.head_motion);
  out->set_seed(s.seed);
}

void ToProto(const StreamSettings& s, v1::StreamHeader* out) {
  out->set_encoding(s.encoding == AudioEncoding::Pcm16 ? v1::AUDIO_ENCODING_PCM16 : v1::AUDIO_ENCODING_FLOAT32);
  out->set_sample_rate(s.sample_rate);
  out->set_channels(s.channels);
  out->set_fps(s.fps);
  out->set_stream_id(s.stream_id);
  out->set_engine(s.engine);
  ToProto(s.style, out->mutable_style());
}

bool ConvertFrame(const v1::Frame& f, const StreamHeaderInfo& header, uint64_t expected_index, Frame* out,
                  std::string* why) {
  const size_t nw = header.blendshape_names.size(), nb = header.bone_names.size();
  if (f.index() != expected_index) {
    *why = "frame index " + std::to_string(f.index()) + " where " + std::to_string(expected_index) + " was expected";
    return false;
  }
  if (static_cast<size_t>(f.weights_size()) != nw) {
    *why = "frame " + std::to_string(f.index()) + " has " + std::to_string(f.weights_size()) + " weights, the header names " +
           std::to_string(nw);
    return false;
  }
  if (static_cast<size_t>(f.rotations_size()) != 4 * nb) {
    *why = "frame " + std::to_string(f.index()) + " has " + std::to_string(f.rotations_size()) +
           " rotation floats, the header's " + std::to_string(nb) + " bones need " + std::to_string(4 * nb);
    return false;
  }
  if (!std::isfinite(f.time()) || f.time() < 0 || (header.sample_rate &&
      std::fabs(f.time() - static_cast<double>(f.sample_index()) / header.sample_rate) > 1e-6)) {
    *why = "frame " + std::to_string(f.index()) + " has time " + std::to_string(f.time()) +
           " that does not match sample_index / sample_rate";
    return false;
  }
  out->index = f.index();
  out->time = f.time();
  out->sample_index = f.sample_index();
  out->confidence = f.confidence();
  out->weights.resize(nw);
  for (size_t i = 0; i < nw; ++i) {
    const float w = f.weights(static_cast<int>(i));
    if (!std::isfinite(w) || w < -1e-3f || w > 1.001f) {
      *why = "frame " + std::to_string(f.index()) + " weight '" + header.blendshape_names[i] + "' = " + std::to_string(w) +
             " is outside 0..1";
      return false;
    }
    out->weights[i] = w < 0.f ? 0.f : (w > 1.f ? 1.f : w);
  }
  out->rotations.resize(nb);
  for (size_t b = 0; b < nb; ++b) {
    Quat q{f.rotations(4 * b), f.rotations(4 * b + 1), f.rotations(4 * b + 2), f.rotations(4 * b + 3)};
    const float n = std::sqrt(q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w);
    if (!std::isfinite(n) || std::fabs(n - 1.f) > 1e-2f) {
      *why = "frame " + std::to_string(f.index()) + " rotation of '" + header.bone_names[b] + "' is not a unit quaternion";
      return false;
    }
    out->rotations[b] = Quat{q.x / n, q.y / n, q.z / n, q.w / n};
  }
  if (f.has_head_translation()) {
    out->head_translation = Vec3{f.head_translation().x(), f.head_translation().y(), f.head_translation().z()};
  } else {
    out->head_translation.reset();
  }
  return true;
}

}  // namespace avatarbridge
