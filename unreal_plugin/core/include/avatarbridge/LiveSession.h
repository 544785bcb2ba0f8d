// A live audio stream that survives the server going away: audio is pushed from any thread, the
// session (re)connects with backoff and places every frame on one local audio clock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "avatarbridge/Backoff.h"
#include "avatarbridge/BridgeClient.h"
#include "avatarbridge/FrameJitterBuffer.h"
#include "avatarbridge/Types.h"

namespace avatarbridge {

enum class SessionState { Idle, Connecting, Streaming, Backoff, Finished, Failed };

const char* SessionStateName(SessionState state);

/** Callbacks from the session thread. */
class SessionObserver {
 public:
  virtual ~SessionObserver() = default;
  virtual void OnState(SessionState /*state*/, const std::string& /*detail*/) {}
  /** Each (re)connected segment's header. */
  virtual void OnHeader(const StreamHeaderInfo& /*header*/) {}
  /** Frames with play_time = (segment's first sample + frame.sample_index) / sample_rate. */
  virtual void OnFrames(std::vector<TimedFrame>& /*frames*/) {}
  virtual void OnStatus(const StreamStatusInfo& /*status*/) {}
  /** Something worth showing once (dropped audio while disconnected, malformed frames, ...). */
  virtual void OnWarning(const std::string& /*text*/) {}
};

struct SessionOptions {
  std::string target = "127.0.0.1:50051";
  StreamSettings settings;
  BackoffPolicy backoff;
  std::chrono::milliseconds connect_timeout{2000};  // per attempt
  double max_buffered_seconds = 2.0;  // audio kept while disconnected; older audio is dropped
  /** Pushed audio is gathered into messages of at least this many ms before it is sent (0: as pushed). A server
   *  carries 200 streams per 2 cores with 100 ms messages, 100-150 with 40 ms ones (docs/scaling.md). It delays live audio by up to this much: use it for clips and TTS audio pushed ahead of
   *  playback, keep 0 for a microphone that needs the least delay. EndAudio sends what is gathered.
   *  0..10000; outside that (or NaN) the session fails at Start, naming the setting. */
  double min_chunk_ms = 0.0;
  ClientOptions client;  // TLS CA file, client certificate, bearer token (docs/security.md)
};

class LiveSession {
 public:
  LiveSession(SessionOptions options, SessionObserver* observer);
  ~LiveSession();  // Stop()

  void Start();
  /** Audio in the settings' encoding, any chunk size (sent as messages of at most 64 KiB, and of at least
   *  min_chunk_ms when that is set), any thread; never blocks. */
  void PushAudio(const void* data, size_t bytes);
  /** No more audio: the rest is animated, then the session finishes. */
  void EndAudio();
  /** Cancel now. */
  void Stop();
  /** Blocks until Finished/Failed (after EndAudio) or the timeout. */
  bool WaitFinished(std::chrono::milliseconds timeout);

  SessionState state() const { return state_.load(); }
  /** When the first audio actually left for a server (after connecting), or false if none has yet.
   *  Schedule playback from here: audio pushed before the connection waited in the queue. */
  bool first_sent_at(std::chrono::steady_clock::time_point* when) const;
  uint32_t connects() const { return connects_.load(); }
  uint64_t dropped_samples() const { return dropped_samples_.load(); }

 private:
  struct Chunk {
    uint64_t first_sample;  // on the local audio clock
    std::vector<uint8_t> bytes;
  };
  class SegmentListener;

  void Run();
  void Enqueue(const std::vector<uint8_t>& buf);  // whole sample frames -> queue_ (mu_ held)
  void SetState(SessionState s, const std::string& detail);
  bool RunSegment(BridgeClient& client, CallStatus* status);

  SessionOptions options_;
  SessionObserver* observer_;
  std::thread thread_;
  std::atomic<SessionState> state_{SessionState::Idle};
  std::atomic<uint32_t> connects_{0};
  std::atomic<uint64_t> dropped_samples_{0};
  std::atomic<int64_t> first_sent_ns_{-1};  // steady_clock since epoch, of the first SendAudio

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk> queue_;
  std::vector<uint8_t> partial_;  // bytes of a sample frame split across PushAudio calls
  std::vector<uint8_t> gathered_;  // whole sample frames held back until min_chunk_ms of them are here
  uint64_t pushed_samples_ = 0;
  size_t queued_bytes_ = 0;
  bool ended_ = false;
  bool stopping_ = false;
  std::shared_ptr<ExpressionStream> live_;  // the current segment, for Stop()
};

}  // namespace avatarbridge
