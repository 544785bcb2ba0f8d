// Speak (text -> speech + frames on one clock) against a real bridge server over real gRPC, with the
// server's own espeak-ng voice (deterministic, installed wherever the server's tests run).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <thread>

#include "LiveServer.h"
#include "avatarbridge/ArkitCurves.h"
#include "avatarbridge/BridgeClient.h"

using namespace avatarbridge;
using namespace std::chrono_literals;

namespace {
constexpr size_t kJawOpen = 17, kMouthClose = 18;

struct SpeechCollector : SpeakListener {
  std::mutex mu;
  bool got_header = false;
  SpeakHeaderInfo header;
  std::vector<SpeakAudioChunk> audio;
  std::vector<Frame> frames;   // by index: a replacement overwrites
  size_t replaced = 0;
  bool got_status = false;
  SpeakStatusInfo status;
  std::vector<std::string> malformed;
  int closed = 0;
  void OnHeader(const SpeakHeaderInfo& h) override {
    std::lock_guard<std::mutex> l(mu);
    got_header = true;
    header = h;
  }
  void OnAudio(const SpeakAudioChunk& a) override {
    std::lock_guard<std::mutex> l(mu);
    audio.push_back(a);
  }
  void OnFrames(std::vector<Frame>& fs) override {
    std::lock_guard<std::mutex> l(mu);
    // After a Stop the eased frames start at k0: everything held from k0 on is superseded.
    if (!fs.empty() && fs.front().index < frames.size()) {
      replaced += frames.size() - fs.front().index;
      frames.resize(fs.front().index);
    }
    for (Frame& f : fs) frames.push_back(f);
  }
  void OnStatus(const SpeakStatusInfo& s) override {
    std::lock_guard<std::mutex> l(mu);
    got_status = true;
    status = s;
  }
  void OnMalformed(const std::string& w) override {
    std::lock_guard<std::mutex> l(mu);
    malformed.push_back(w);
  }
  void OnClosed(const CallStatus&) override { ++closed; }
  uint64_t Samples() {
    std::lock_guard<std::mutex> l(mu);
    uint64_t n = 0;
    for (const auto& a : audio) n += a.samples.size();
    return n;
  }
};
}  // namespace

TEST(Speak, ASentenceComesBackAsAudioAndFramesOnOneClock) {
  BridgeClient client(abtest::SharedServer().target());
  SpeechCollector c;
  SpeakSettings st;
  st.text = "Mama made a bumpy map.";
  st.voice = "espeak:en-us";
  st.fps = 60;
  st.stream_id = "speak-cpp";
  auto call = client.Speak(st, &c);
  const CallStatus s = call->Wait();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.closed, 1);
  ASSERT_TRUE(c.got_header && c.got_status);
  EXPECT_TRUE(c.malformed.empty()) << c.malformed.front();
  EXPECT_EQ(c.header.voice, "espeak:en-us");
  EXPECT_EQ(c.header.tts_engine, "espeak");
  const uint32_t sr = c.header.sample_rate, fps = 60;
  ASSERT_GT(sr, 0u);
  EXPECT_EQ(c.header.expression.sample_rate, sr);
  EXPECT_EQ(c.header.expression.fps, fps);
  EXPECT_EQ(c.header.expression.blendshape_names, CanonicalArkitNames());

  // Audio: non-empty, chunks back to back from sample 0, not silent.
  ASSERT_FALSE(c.audio.empty());
  uint64_t pos = 0;
  int peak = 0;
  for (const auto& a : c.audio) {
    ASSERT_EQ(a.sample_index, pos);
    ASSERT_NEAR(a.time, static_cast<double>(pos) / sr, 1e-9);
    pos += a.samples.size();
    for (int16_t v : a.samples) peak = std::max(peak, std::abs(static_cast<int>(v)));
  }
  EXPECT_GT(pos, sr / 2);  // over half a second of speech
  EXPECT_GT(peak, 1000);
  EXPECT_NEAR(c.status.audio_seconds, static_cast<double>(pos) / sr, 1e-6);
  EXPECT_FALSE(c.status.stopped);
  EXPECT_GE(c.status.sentences, 1u);

  // Frames: exactly ceil(samples * fps / sr), frame k at round(k * sr / fps), as the status says.
  const uint64_t want = (pos * fps + sr - 1) / sr;
  ASSERT_EQ(c.frames.size(), want);
  EXPECT_EQ(c.status.frames_sent, want);
  EXPECT_EQ(c.replaced, 0u);
  for (size_t k = 0; k < c.frames.size(); ++k) {
    ASSERT_EQ(c.frames[k].index, k);
    ASSERT_EQ(c.frames[k].sample_index, (2 * k * sr + fps) / (2 * fps));
    ASSERT_NEAR(c.frames[k].time, static_cast<double>(c.frames[k].sample_index) / sr, 1e-9);
  }

  // The mouth speaks, starts and ends at rest, and closes between the open vowels of /m b p/ words:
  // inside the utterance (between its first and last open frame) the jaw comes back near shut with the
  // lips together (mouthClose up) at least twice.
  std::vector<float> jaw(c.frames.size()), closed(c.frames.size());
  for (size_t k = 0; k < c.frames.size(); ++k) {
    jaw[k] = c.frames[k].weights[kJawOpen];
    closed[k] = c.frames[k].weights[kMouthClose];
  }
  const float jaw_max = *std::max_element(jaw.begin(), jaw.end());
  EXPECT_GT(jaw_max, 0.2f);
  EXPECT_LT(jaw.front(), 0.02f);
  EXPECT_LT(jaw.back(), 0.02f);
  size_t first = 0, last = jaw.size() - 1;
  while (first < jaw.size() && jaw[first] < 0.5f * jaw_max) ++first;
  while (last > first && jaw[last] < 0.5f * jaw_max) --last;
  int closures = 0;
  bool in_closure = false;
  for (size_t k = first; k <= last; ++k) {
    const bool shut = jaw[k] < 0.25f * jaw_max;
    if (shut && !in_closure) ++closures;
    in_closure = shut;
  }
  EXPECT_GE(closures, 2) << "jaw max " << jaw_max << " over frames " << first << ".." << last;
}

TEST(Speak, StopEasesTheFaceToRestAndEndsTheCall) {
  BridgeClient client(abtest::SharedServer().target());
  SpeechCollector c;
  std::string text;
  for (int i = 0; i < 300; ++i) text += "Sentence " + std::to_string(i) + " talks about many wonderful things. ";
  auto call = client.Speak(text, "espeak:en-us", "en", 30, ExpressionStyle{}, &c);
  // Barge in at 1.0 s on the audio's clock once the first sentence's audio and frames are here.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    {
      std::lock_guard<std::mutex> l(c.mu);
      if (!c.audio.empty() && c.frames.size() > 30) break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no audio within 30 s";
    ASSERT_FALSE(call->Closed());
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(call->Stop(1.0));
  EXPECT_FALSE(call->Stop(2.0));  // once
  const CallStatus s = call->Wait();
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(c.got_status);
  EXPECT_TRUE(c.malformed.empty()) << c.malformed.front();
  EXPECT_TRUE(c.status.stopped);
  EXPECT_NEAR(c.status.audio_seconds, 1.0, 1e-3);
  EXPECT_LT(c.status.sentences, 300u);
  // k0 = ceil(1.0 * 30) = 30, then 0.25 s (8 frames) easing to rest; those replace what was received.
  ASSERT_EQ(c.frames.size(), 38u);
  EXPECT_GT(c.replaced, 0u);
  for (size_t k = 0; k < c.frames.size(); ++k) ASSERT_EQ(c.frames[k].index, k);
  const Frame& rest = c.frames.back();
  EXPECT_LT(*std::max_element(rest.weights.begin(), rest.weights.end()), 1e-6f);
  EXPECT_NEAR(rest.rotations[0].w, 1.f, 1e-6f);
  for (size_t k = 30; k < c.frames.size(); ++k)  // monotone to rest: no jump
    EXPECT_LE(c.frames[k].weights[kJawOpen], c.frames[k - 1].weights[kJawOpen] + 1e-6f) << k;
  EXPECT_FALSE(call->Stop(0.5));
}

TEST(Speak, BadRequestsComeBackAsSpecificErrors) {
  BridgeClient client(abtest::SharedServer().target());
  SpeechCollector c;
  auto call = client.Speak("   ", "", "", 60, ExpressionStyle{}, &c);
  CallStatus s = call->Wait();
  EXPECT_EQ(s.code, StatusCode::InvalidArgument);
  EXPECT_NE(s.message.find("text is empty"), std::string::npos) << s.message;
  SpeechCollector c2;
  auto call2 = client.Speak("Hello.", "espeak:xx", "", 60, ExpressionStyle{}, &c2);
  s = call2->Wait();
  EXPECT_EQ(s.code, StatusCode::InvalidArgument);
  EXPECT_NE(s.message.find("espeak:xx"), std::string::npos) << s.message;
  EXPECT_TRUE(c2.audio.empty());
  EXPECT_EQ(c2.closed, 1);
}
