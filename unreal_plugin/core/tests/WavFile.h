// Test helper: a minimal RIFF/WAVE PCM16 reader (the shared speech clips are PCM16).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace abtest {

struct Wav {
  uint32_t sample_rate = 0;
  uint16_t channels = 0;
  std::vector<int16_t> samples;  // interleaved
  std::vector<uint8_t> file;     // the whole file, for AnimateClip

  size_t frames() const { return channels ? samples.size() / channels : 0; }
  const uint8_t* pcm() const { return reinterpret_cast<const uint8_t*>(samples.data()); }
  size_t pcm_bytes() const { return samples.size() * 2; }
};

/** Throws std::runtime_error naming what is wrong. */
Wav ReadWav(const std::string& path);

}  // namespace abtest
