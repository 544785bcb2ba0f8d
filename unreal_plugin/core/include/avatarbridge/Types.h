// Plain data types of the bridge contract (avatarbridge.v1), free of gRPC and protobuf types so
// that engine code (Unreal, tools) includes only this. Conventions: docs/conventions.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace avatarbridge {

/** Unit quaternion (x, y, z, w), canonical space: right-handed, Y up, the subject faces +Z, its left is +X. */
struct Quat {
  float x = 0.f, y = 0.f, z = 0.f, w = 1.f;
};

struct Vec3 {
  float x = 0.f, y = 0.f, z = 0.f;
};

/** One frame as the server sent it (canonical names, order and space). */
struct Frame {
  uint64_t index = 0;         // 0, 1, 2, ... within its stream
  double time = 0.0;          // seconds on the stream's audio clock = sample_index / sample_rate
  uint64_t sample_index = 0;  // on the stream's input audio clock
  std::vector<float> weights; // header blendshape order, 0..1
  std::vector<Quat> rotations;// header bone order
  std::optional<Vec3> head_translation;  // metres; absent when the engine has none
  float confidence = 1.f;
};

/** The ExpressionHeader: what every later frame means. */
struct StreamHeaderInfo {
  std::string stream_id;
  std::vector<std::string> blendshape_names;  // camelCase ARKit names
  std::vector<std::string> bone_names;        // Head, Neck, LeftEye, RightEye
  uint32_t fps = 0;
  float lookahead_ms = 0.f;  // audio the engine needs past a frame: frames lag the audio sent by this much
  uint32_t sample_rate = 0;  // the clock of the time codes
  std::string engine;
  std::string api_version;
};

/** The final StreamStatus. */
struct StreamStatusInfo {
  uint64_t frames_sent = 0;
  double audio_seconds = 0.0;
  std::vector<std::string> warnings;
  std::string engine;
};

/** gRPC status codes (numerically identical to grpc::StatusCode), kept here so headers stay gRPC-free. */
enum class StatusCode : int {
  Ok = 0, Cancelled = 1, Unknown = 2, InvalidArgument = 3, DeadlineExceeded = 4, NotFound = 5,
  AlreadyExists = 6, PermissionDenied = 7, ResourceExhausted = 8, FailedPrecondition = 9, Aborted = 10,
  OutOfRange = 11, Unimplemented = 12, Internal = 13, Unavailable = 14, DataLoss = 15, Unauthenticated = 16,
};

/** How a call ended. */
struct CallStatus {
  StatusCode code = StatusCode::Ok;
  std::string message;

  bool ok() const { return code == StatusCode::Ok; }
  /** Worth reconnecting for: the server is down, restarting, draining, or briefly out of capacity.
   *  Cancelled too: a proxy in front of several servers (deploy/haproxy) resets the streams of a backend that
   *  died or drained, which arrives as CANCELLED; a session never retries a call it cancelled itself. */
  bool retryable() const {
    return code == StatusCode::Unavailable || code == StatusCode::ResourceExhausted ||
           code == StatusCode::Aborted || code == StatusCode::Unknown || code == StatusCode::Cancelled;
  }
  std::string ToString() const;
};

const char* StatusCodeName(StatusCode code);

enum class AudioEncoding : int { Pcm16 = 1, Float32 = 2 };

enum class Emotion : int { Neutral = 0, Happy = 1, Sad = 2, Angry = 3, Surprised = 4 };

/** ExpressionStyle; unset optionals take the server's defaults. */
struct ExpressionStyle {
  Emotion emotion = Emotion::Neutral;
  std::optional<float> emotion_strength;  // 0..1
  std::optional<float> intensity;         // 0..2
  std::optional<float> head_motion;       // 0..2
  uint64_t seed = 0;
};

/** The StreamHeader a client sends first. */
struct StreamSettings {
  AudioEncoding encoding = AudioEncoding::Pcm16;
  uint32_t sample_rate = 16000;  // 8000..48000
  uint32_t channels = 1;         // 1 or 2
  uint32_t fps = 60;             // 30 or 60
  std::string stream_id;
  std::string engine;            // empty = the server's default
  ExpressionStyle style;

  /** Bytes of one sample frame (all channels). */
  uint32_t FrameBytes() const { return channels * (encoding == AudioEncoding::Pcm16 ? 2u : 4u); }
};

/** GetCapabilities, reduced to what a client needs. */
struct CapabilitiesInfo {
  std::string server_version;
  std::string api_version;
  std::vector<std::string> blendshape_names;
  std::vector<std::string> bone_names;
  std::vector<uint32_t> supported_fps;
  std::string default_engine;
  float default_lookahead_ms = 0.f;
  float max_audio_seconds = 0.f;
};

/** Speak (text -> speech + frames on one clock, docs/speak.md): what the client asks for (SpeakStart). */
struct SpeakSettings {
  std::string text;            // UTF-8 plain text or the SSML subset; <= 20000 bytes
  std::string voice;           // e.g. "espeak:en-us", "festival:us-slt-hts"; empty = the language's default
  std::string language;        // BCP-47; empty = "en" (or the voice's language)
  float speaking_rate = 0.f;   // 0.5..2; 0 = the voice's normal speed
  uint32_t fps = 60;           // 30 or 60
  std::string stream_id;
  ExpressionStyle style;
};

/** The SpeakHeader: the voice chosen, the audio's rate (the clock of every time code), the frames' shape. */
struct SpeakHeaderInfo {
  std::string stream_id;
  std::string voice;
  std::string language;
  std::string tts_engine;
  uint32_t sample_rate = 0;    // of the PCM16 audio and of every frame time code
  StreamHeaderInfo expression; // blendshape / bone names, fps, expression engine (sample_rate = the above)
};

/** One SpeakAudio: mono PCM16 samples starting at `sample_index` (chunks are back to back). */
struct SpeakAudioChunk {
  uint64_t sample_index = 0;
  double time = 0.0;           // = sample_index / sample_rate
  std::vector<int16_t> samples;
};

/** The final SpeakStatus. */
struct SpeakStatusInfo {
  uint64_t frames_sent = 0;
  double audio_seconds = 0.0;  // audio sent; after a Stop: its at_time
  std::vector<std::string> warnings;
  uint32_t sentences = 0;
  double synthesis_seconds = 0.0;
  bool stopped = false;        // ended by a Stop (barge-in)
};

}  // namespace avatarbridge
