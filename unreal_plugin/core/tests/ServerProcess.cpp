#include "ServerProcess.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace abtest {
namespace {
std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}
bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}
std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

std::string ServerProcess::RepoRoot() { return Env("AVATAR_BRIDGE_ROOT", AB_REPO_ROOT); }

std::string ServerProcess::SharedFile(const std::string& rel) {
  const std::string path = Env("AVATAR_BRIDGE_SHARED", RepoRoot() + "/../shared/data") + "/" + rel;
  return Exists(path) ? path : "";
}

ServerProcess::ServerProcess(int port, std::vector<std::string> extra) {
  char tmpl[] = "/tmp/abcore-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  const std::string ready = dir_ + "/ready.json", log = dir_ + "/server.log";
  const std::string python = Env("AVATAR_BRIDGE_PYTHON", "python3");
  std::vector<std::string> args = {python, "-m", "bridge_server.cli", "serve", "--port", std::to_string(port),
                                   "--metrics-port", "-1", "--workers", "1", "--ready-file", ready,
                                   "--log-format", "text", "--grace-s", "2"};
  args.insert(args.end(), extra.begin(), extra.end());
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const std::string root = RepoRoot();
  // posix_spawn has no chdir before glibc 2.29's _np extension; run through sh to set the cwd.
  std::string cmd = "cd '" + root + "' && exec";
  for (auto& a : args) cmd += " '" + a + "'";
  std::vector<std::string> sh = {"/bin/sh", "-c", cmd};
  std::vector<char*> shv;
  for (auto& a : sh) shv.push_back(a.data());
  shv.push_back(nullptr);
  const int rc = posix_spawn(&pid_, "/bin/sh", &fa, nullptr, shv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + python);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (true) {
    if (Exists(ready)) {
      const std::string text = ReadAll(ready);
      std::smatch m;
      if (std::regex_search(text, m, std::regex("\"port\"\\s*:\\s*(\\d+)"))) {
        port_ = std::stoi(m[1]);
        return;
      }
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_ || std::chrono::steady_clock::now() > deadline) {
      pid_ = -1;
      throw std::runtime_error("the bridge server did not start:\n" + ReadAll(log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void ServerProcess::Kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    Kill();
  }
  std::system(("rm -rf '" + dir_ + "'").c_str());
}

}  // namespace abtest
