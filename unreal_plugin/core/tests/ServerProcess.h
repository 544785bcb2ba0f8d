// Test helper: a real bridge server (python -m bridge_server.cli serve) in a child process.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

namespace abtest {

class ServerProcess {
 public:
  /** port 0 = a free port. Throws std::runtime_error (with the server's log) if it does not start. */
  explicit ServerProcess(int port = 0, std::vector<std::string> extra = {});
  ~ServerProcess();

  int port() const { return port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  /** SIGKILL, no drain: the server "crashes". */
  void Kill();
  bool running() const { return pid_ > 0; }

  /** Repository root (AVATAR_BRIDGE_ROOT, else the build's source tree). */
  static std::string RepoRoot();
  /** A file of ../shared/data (AVATAR_BRIDGE_SHARED overrides the folder); "" if missing. */
  static std::string SharedFile(const std::string& rel);

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

}  // namespace abtest
