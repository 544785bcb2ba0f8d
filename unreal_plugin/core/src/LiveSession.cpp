#include "avatarbridge/LiveSession.h"

#include <algorithm>
#include <cstring>

namespace avatarbridge {

namespace {
constexpr size_t kMaxMessageBytes = 64 * 1024;  // well under any server's max_message_bytes (default 4 MiB)
constexpr double kMaxMinChunkMs = 10000.0;  // SessionOptions::min_chunk_ms: gathering more than 10 s makes no sense

bool MinChunkValid(double ms) { return ms >= 0.0 && ms <= kMaxMinChunkMs; }  // false for NaN too
}  // namespace

const char* SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::Idle: return "idle";
    case SessionState::Connecting: return "connecting";
    case SessionState::Streaming: return "streaming";
    case SessionState::Backoff: return "reconnecting";
    case SessionState::Finished: return "finished";
    case SessionState::Failed: return "failed";
  }
  return "?";
}

/** One connected segment: places its frames on the session's audio clock. */
class LiveSession::SegmentListener : public StreamListener {
 public:
  SegmentListener(LiveSession* session, uint32_t sample_rate) : session_(session), rate_(sample_rate) {}

  void set_base(uint64_t first_sample) { base_.store(static_cast<int64_t>(first_sample)); }
  bool got_header() const { return got_header_.load(); }
  uint64_t malformed() const { return malformed_.load(); }

  void OnHeader(const StreamHeaderInfo& header) override {
    got_header_ = true;
    session_->connects_++;
    session_->SetState(SessionState::Streaming, session_->options_.target);
    if (session_->observer_) session_->observer_->OnHeader(header);
  }

  void OnFrames(std::vector<Frame>& frames) override {
    const int64_t base = base_.load();
    std::vector<TimedFrame> out;
    out.reserve(frames.size());
    for (auto& f : frames) {
      TimedFrame tf;
      tf.play_time = static_cast<double>(base + static_cast<int64_t>(f.sample_index)) / rate_;
      tf.frame = std::move(f);
      out.push_back(std::move(tf));
    }
    if (session_->observer_) session_->observer_->OnFrames(out);
  }

  void OnStatus(const StreamStatusInfo& status) override {
    if (session_->observer_) session_->observer_->OnStatus(status);
  }

  void OnMalformed(const std::string& what) override {
    if (malformed_++ == 0 && session_->observer_)
      session_->observer_->OnWarning("dropped a malformed frame from the server: " + what);
  }

 private:
  LiveSession* session_;
  uint32_t rate_;
  std::atomic<int64_t> base_{0};
  std::atomic<bool> got_header_{false};
  std::atomic<uint64_t> malformed_{0};
};

LiveSession::LiveSession(SessionOptions options, SessionObserver* observer)
    : options_(std::move(options)), observer_(observer) {}

LiveSession::~LiveSession() { Stop(); }

void LiveSession::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void LiveSession::SetState(SessionState s, const std::string& detail) {
  state_ = s;
  if (observer_) observer_->OnState(s, detail);
}

void LiveSession::PushAudio(const void* data, size_t bytes) {
  const uint32_t fb = options_.settings.FrameBytes();
  const auto* p = static_cast<const uint8_t*>(data);
  std::string warning;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_ || stopping_) return;
    std::vector<uint8_t> buf(partial_);
    buf.insert(buf.end(), p, p + bytes);
    const size_t whole = buf.size() / fb * fb;  // keep chunks on sample-frame boundaries
    partial_.assign(buf.begin() + whole, buf.end());
    buf.resize(whole);
    const double ms = options_.min_chunk_ms;  // out of range: Run() fails the session (no cast of it here)
    const size_t min_bytes = MinChunkValid(ms) ? static_cast<size_t>(ms * options_.settings.sample_rate / 1000.0) * fb : 0;
    if (min_bytes > 0) {  // gather small pushes into fewer, larger messages
      gathered_.insert(gathered_.end(), buf.begin(), buf.end());
      if (gathered_.size() < min_bytes) return;
      buf.swap(gathered_);
      gathered_.clear();
    }
    if (buf.empty()) return;
    Enqueue(buf);
    // Bounded: a live source cannot wait for a server that is away; drop the oldest audio.
    const size_t limit = static_cast<size_t>(options_.max_buffered_seconds * options_.settings.sample_rate) * fb;
    uint64_t dropped = 0;
    while (queued_bytes_ > limit && queue_.size() > 1) {
      queued_bytes_ -= queue_.front().bytes.size();
      dropped += queue_.front().bytes.size() / fb;
      queue_.pop_front();
    }
    if (dropped) {
      if (dropped_samples_.fetch_add(dropped) == 0)
        warning = "the server is not taking audio (" + std::string(SessionStateName(state_.load())) +
                  "): dropping audio older than " + std::to_string(options_.max_buffered_seconds) + " s";
    }
  }
  cv_.notify_all();
  if (!warning.empty() && observer_) observer_->OnWarning(warning);
}

void LiveSession::Enqueue(const std::vector<uint8_t>& buf) {
  // Messages of at most kMaxMessageBytes (whole sample frames): a clip pushed at once must not exceed the
  // server's max_message_bytes, and dropping works chunk by chunk.
  const uint32_t fb = options_.settings.FrameBytes();
  const size_t step = std::max<size_t>(fb, kMaxMessageBytes / fb * fb);
  for (size_t off = 0; off < buf.size(); off += step) {
    const size_t n = std::min(step, buf.size() - off);
    queue_.push_back(Chunk{pushed_samples_, std::vector<uint8_t>(buf.begin() + off, buf.begin() + off + n)});
    pushed_samples_ += n / fb;
    queued_bytes_ += n;
  }
}

void LiveSession::EndAudio() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!ended_ && !gathered_.empty()) {  // the last, shorter message
      Enqueue(gathered_);
      gathered_.clear();
    }
    ended_ = true;
  }
  cv_.notify_all();
}

void LiveSession::Stop() {
  std::shared_ptr<ExpressionStream> live;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    live = live_;
  }
  cv_.notify_all();
  if (live) live->Cancel();
  if (thread_.joinable()) thread_.join();
}

bool LiveSession::first_sent_at(std::chrono::steady_clock::time_point* when) const {
  const int64_t ns = first_sent_ns_.load();
  if (ns < 0) return false;
  *when = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns));
  return true;
}

bool LiveSession::WaitFinished(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const SessionState s = state_.load();
    if (s == SessionState::Finished || s == SessionState::Failed) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

bool LiveSession::RunSegment(BridgeClient& client, CallStatus* status) {
  SegmentListener listener(this, options_.settings.sample_rate);
  std::shared_ptr<ExpressionStream> stream = client.StartStream(options_.settings, &listener);
  {
    std::lock_guard<std::mutex> lock(mu_);
    live_ = stream;
  }
  bool based = false;
  uint64_t next_sample = 0;
  bool gap = false;
  bool nothing_to_send = false;  // ended with every sample already sent to an earlier segment
  while (true) {
    Chunk chunk;
    bool have = false, end = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(20), [&] { return stopping_ || ended_ || !queue_.empty(); });
      if (stopping_) break;
      if (!queue_.empty() && !(based && queue_.front().first_sample != next_sample)) {
        chunk = std::move(queue_.front());
        queue_.pop_front();
        queued_bytes_ -= chunk.bytes.size();
        have = true;
      } else if (!queue_.empty()) {
        gap = true;  // audio was dropped mid-segment: finish this one, start a new one at the new base
      }
      end = ended_ && queue_.empty() && !have;
    }
    if (stream->Closed()) break;
    if (have) {
      if (!based) {
        listener.set_base(chunk.first_sample);
        based = true;
      }
      next_sample = chunk.first_sample + chunk.bytes.size() / options_.settings.FrameBytes();
      if (first_sent_ns_.load() < 0) {
        first_sent_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::steady_clock::now().time_since_epoch()).count();
      }
      if (!stream->SendAudio(chunk.bytes.data(), chunk.bytes.size())) break;
      continue;
    }
    if (gap || end) {
      if (based) {
        stream->EndAudio();
      } else {
        stream->Cancel();  // nothing sent: nothing to animate
        nothing_to_send = end;
      }
      break;
    }
  }
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping = stopping_;
  }
  if (stopping) stream->Cancel();
  *status = stream->Wait();
  {
    std::lock_guard<std::mutex> lock(mu_);
    live_.reset();
  }
  if (nothing_to_send) {
    *status = CallStatus{};
    return true;
  }
  if (listener.malformed() > 1 && observer_)
    observer_->OnWarning(std::to_string(listener.malformed()) + " malformed frames were dropped in this segment");
  if (gap && status->ok()) {
    status->code = StatusCode::Aborted;  // not an error: go straight on with the next segment
    status->message = "audio was dropped while the server was slow; continuing with a new stream";
  }
  std::lock_guard<std::mutex> lock(mu_);
  return status->ok() && ended_ && queue_.empty();
}

void LiveSession::Run() {
  if (!MinChunkValid(options_.min_chunk_ms)) {  // a setting no retry can fix
    SetState(SessionState::Failed, "min_chunk_ms=" + std::to_string(options_.min_chunk_ms) +
                                       " is out of range: use 0..10000 ms (0 sends audio as it is pushed)");
    return;
  }
  BridgeClient client(options_.target, options_.client);
  if (!client.SetupError().empty()) {  // an unreadable TLS file: retrying cannot help
    SetState(SessionState::Failed, client.SetupError());
    return;
  }
  Backoff backoff(options_.backoff);
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) break;
    }
    SetState(SessionState::Connecting, options_.target);
    CallStatus status;
    bool finished = false;
    if (!client.WaitForConnected(options_.connect_timeout)) {
      status = CallStatus{StatusCode::Unavailable, "cannot connect to " + options_.target};
    } else {
      const uint32_t before = connects_.load();
      finished = RunSegment(client, &status);
      if (connects_.load() != before) backoff.Reset();  // it did connect: start the delays over
    }
    if (finished) {
      SetState(SessionState::Finished, "");
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) break;
    }
    if (status.code == StatusCode::Aborted && status.message.rfind("audio was dropped", 0) == 0) continue;
    if (!status.retryable() && status.code != StatusCode::DeadlineExceeded) {
      SetState(SessionState::Failed, status.ToString());
      return;
    }
    const auto delay = backoff.Next();
    SetState(SessionState::Backoff, status.ToString() + "; retrying in " + std::to_string(delay.count()) + " ms");
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, delay, [&] { return stopping_; });
  }
  SetState(SessionState::Idle, "stopped");
}

}  // namespace avatarbridge
