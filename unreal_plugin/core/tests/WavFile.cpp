#include "WavFile.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace abtest {
namespace {
uint32_t U32(const uint8_t* p) { return p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24); }
uint16_t U16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
}  // namespace

Wav ReadWav(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  Wav w;
  w.file.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  const auto& f = w.file;
  if (f.size() < 12 || std::memcmp(f.data(), "RIFF", 4) || std::memcmp(f.data() + 8, "WAVE", 4))
    throw std::runtime_error(path + " is not a RIFF/WAVE file");
  size_t pos = 12;
  bool fmt = false;
  while (pos + 8 <= f.size()) {
    const uint32_t len = U32(&f[pos + 4]);
    const uint8_t* body = &f[pos + 8];
    if (!std::memcmp(&f[pos], "fmt ", 4)) {
      if (U16(body) != 1 || U16(body + 14) != 16) throw std::runtime_error(path + " is not PCM16");
      w.channels = U16(body + 2);
      w.sample_rate = U32(body + 4);
      fmt = true;
    } else if (!std::memcmp(&f[pos], "data", 4) && fmt) {
      const size_t n = std::min<size_t>(len, f.size() - pos - 8) / 2;
      w.samples.resize(n);
      std::memcpy(w.samples.data(), body, n * 2);  // little-endian host (x86/ARM)
      return w;
    }
    pos += 8 + len + (len & 1);
  }
  throw std::runtime_error(path + " has no PCM data chunk");
}

}  // namespace abtest
