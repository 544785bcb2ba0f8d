// A live client through a load balancer, for tests/test_load_balancer.py. One LiveSession streams a mono PCM16
// WAV in real time (40 ms chunks) to TARGET for SECONDS, then ends the audio and waits for the session to
// finish. It writes STARTED_FILE once a second of frames has arrived (so the test can break the backend
// mid-stream) and prints one JSON object: the final state, connects, frames (in all and per connected
// stream), dropped samples and every state change with its detail.
//
//   avatarbridge_lb_probe TARGET WAV SECONDS STARTED_FILE
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "WavFile.h"
#include "avatarbridge/LiveSession.h"

using namespace avatarbridge;

namespace {
std::string Json(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

class Probe : public SessionObserver {
 public:
  explicit Probe(std::string started) : started_(std::move(started)) {}
  void OnState(SessionState state, const std::string& detail) override {
    std::lock_guard<std::mutex> l(mu);
    states.push_back("{\"state\": " + Json(SessionStateName(state)) + ", \"detail\": " + Json(detail) + "}");
  }
  void OnHeader(const StreamHeaderInfo& /*header*/) override {
    std::lock_guard<std::mutex> l(mu);
    segments.push_back(0);  // one per (re)connected stream
  }
  void OnFrames(std::vector<TimedFrame>& frames) override {
    std::lock_guard<std::mutex> l(mu);
    const bool first_second = frames_ < 30;
    frames_ += frames.size();
    if (first_second && frames_ >= 30) std::ofstream(started_) << "started\n";
    if (!segments.empty()) segments.back() += frames.size();
  }
  std::mutex mu;
  std::vector<std::string> states;
  std::vector<size_t> segments;  // frames received on each connected stream
  size_t frames_ = 0;

 private:
  std::string started_;
};
}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: avatarbridge_lb_probe TARGET WAV SECONDS STARTED_FILE\n";
    return 2;
  }
  const abtest::Wav wav = abtest::ReadWav(argv[2]);
  if (wav.channels != 1) {
    std::cerr << "avatarbridge_lb_probe: " << argv[2] << " must be mono\n";
    return 2;
  }
  const double seconds = std::stod(argv[3]);
  Probe probe(argv[4]);
  SessionOptions opt;
  opt.target = argv[1];
  opt.settings.sample_rate = static_cast<int>(wav.sample_rate);
  opt.settings.fps = 30;
  opt.max_buffered_seconds = 5.0;  // audio spoken while reconnecting is sent after it
  LiveSession session(opt, &probe);
  session.Start();
  const size_t chunk = wav.sample_rate / 25;  // 40 ms
  const size_t total = static_cast<size_t>(seconds * wav.sample_rate);
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t sent = 0, i = 0; sent < total; sent += chunk, ++i) {
    std::this_thread::sleep_until(t0 + std::chrono::milliseconds(40 * i));  // a microphone's pace
    const size_t off = sent % (wav.frames() - chunk);
    session.PushAudio(wav.samples.data() + off, chunk * 2);
  }
  session.EndAudio();
  const bool finished = session.WaitFinished(std::chrono::seconds(60));
  std::lock_guard<std::mutex> l(probe.mu);
  std::cout << "{\"finished\": " << (finished ? "true" : "false") << ", \"state\": "
            << Json(SessionStateName(session.state())) << ", \"connects\": " << session.connects()
            << ", \"frames\": " << probe.frames_ << ", \"dropped_samples\": " << session.dropped_samples()
            << ", \"segment_frames\": [";
  for (size_t i = 0; i < probe.segments.size(); ++i) std::cout << (i ? ", " : "") << probe.segments[i];
  std::cout << "], \"states\": [";
  for (size_t i = 0; i < probe.states.size(); ++i) std::cout << (i ? ", " : "") << probe.states[i];
  std::cout << "]}\n";
  return 0;
}
