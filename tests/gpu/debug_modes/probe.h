// The harness of the planted-bug GPU tests (unmap_on_free_test, canaries_oob_test): a probe is
// a disabled test of the same binary, run in a child process of its own (re-executing
// /proc/self/exe with --gtest_filter=DISABLED_... and VRAMCACHE_PROBE=<mode>), so that
//   - a sticky CUDA error (an illegal address kills the context) ends only the child;
//   - each probe configures vramcache's process-wide allocator from scratch;
//   - CUDA_LAUNCH_BLOCKING=1 holds for the child alone (the driver reads it at start).
// The probe prints one line per event to stdout (flushed at once, so the order with stderr is
// kept in the combined output): "STEP <name>" before a step, "DONE <name>" after it succeeded,
// and result lines of its own; the parent reads them back with ProbeOutput. No separate probe
// executable means nothing more to build or to stage for the GPU machine.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern char** environ;

namespace vramcache::probe {

// The environment variable that names the mode of the child (unset in the parent).
inline constexpr char kModeVariable[] = "VRAMCACHE_PROBE";

// The mode this process runs as a probe, or "" when it is not a probe child.
inline std::string Mode() {
  const char* mode = std::getenv(kModeVariable);
  return mode == nullptr ? std::string() : std::string(mode);
}

// printf to stdout as one line, flushed at once.
inline void Say(const char* format, ...) __attribute__((format(printf, 1, 2)));
inline void Say(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vfprintf(stdout, format, args);
  va_end(args);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// Ends the child now, without static destructors: after a sticky CUDA error, tearing down the
// allocator's and the runtime's state could hang or print noise that is not the probe's.
[[noreturn]] inline void Exit(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

struct ChildResult {
  bool exited = false;  // exited normally (then exit_code), else killed by signal
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;  // killed by RunSelf after `timeout`
  std::string output;      // stdout and stderr together, in the order written
};

// Runs this executable again as a probe: `gtest_filter` selects the disabled probe test, `env`
// (NAME=value) is added to this process's environment (replacing the same names), minus
// VRAMCACHE_CONF so that a setting of the caller's cannot change what the probe configures.
inline ChildResult RunSelf(const std::string& gtest_filter, const std::vector<std::string>& env,
                           std::chrono::seconds timeout = std::chrono::seconds(90)) {
  ChildResult result;
  char self[4096];
  const ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (length <= 0) {
    result.output = "RunSelf: readlink(/proc/self/exe) failed";
    return result;
  }
  self[length] = '\0';

  std::vector<std::string> environment;
  auto overridden = [&](std::string_view entry) {
    const std::string_view name = entry.substr(0, entry.find('='));
    if (name == "VRAMCACHE_CONF") return true;
    for (const std::string& e : env) {
      if (std::string_view(e).substr(0, e.find('=')) == name) return true;
    }
    return false;
  };
  for (char** e = environ; *e != nullptr; ++e) {
    if (!overridden(*e)) environment.emplace_back(*e);
  }
  environment.insert(environment.end(), env.begin(), env.end());
  std::vector<std::string> arguments = {self, "--gtest_also_run_disabled_tests",
                                        "--gtest_filter=" + gtest_filter, "--gtest_color=no"};
  std::vector<char*> argv;
  for (std::string& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    result.output = "RunSelf: pipe2 failed";
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, self, &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (spawned != 0) {
    close(fds[0]);
    result.output = std::string("RunSelf: posix_spawn failed: ") + std::strerror(spawned);
    return result;
  }

  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buffer[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // the deadline is checked above
    const ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // every writer closed: the child ended (or closed its output)
    result.output.append(buffer, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

// The lines of a probe's output, with lookups by prefix.
class ProbeOutput {
 public:
  explicit ProbeOutput(const std::string& output) {
    std::size_t start = 0;
    while (start < output.size()) {
      std::size_t end = output.find('\n', start);
      if (end == std::string::npos) end = output.size();
      lines_.push_back(output.substr(start, end - start));
      start = end + 1;
    }
  }

  const std::vector<std::string>& lines() const { return lines_; }

  // The rest of the first line starting with `prefix` + " " (or equal to `prefix`).
  std::optional<std::string> Find(std::string_view prefix) const {
    for (const std::string& line : lines_) {
      if (line == prefix) return std::string();
      if (line.size() > prefix.size() && line.compare(0, prefix.size(), prefix) == 0 &&
          line[prefix.size()] == ' ') {
        return line.substr(prefix.size() + 1);
      }
    }
    return std::nullopt;
  }

  // The index of the first line equal to `line`, or -1.
  int IndexOf(std::string_view line) const {
    for (std::size_t i = 0; i < lines_.size(); ++i) {
      if (lines_[i] == line) return static_cast<int>(i);
    }
    return -1;
  }

  // The step that was under way when the output ended or `before_line` came: the last
  // "STEP <name>" without its "DONE <name>" ("" when every step started was done).
  std::string PendingStep(int before_line = -1) const {
    std::string pending;
    const int end = before_line < 0 ? static_cast<int>(lines_.size()) : before_line;
    for (int i = 0; i < end; ++i) {
      const std::string& line = lines_[static_cast<std::size_t>(i)];
      if (line.rfind("STEP ", 0) == 0) pending = line.substr(5);
      if (line.rfind("DONE ", 0) == 0 && line.substr(5) == pending) pending.clear();
    }
    return pending;
  }

 private:
  std::vector<std::string> lines_;
};

// A readable description of how the child ended, and its output, for failure messages.
inline std::string Describe(const ChildResult& r) {
  std::string how = r.timed_out ? "timed out"
                    : r.exited  ? "exit " + std::to_string(r.exit_code)
                                : "signal " + std::to_string(r.signal);
  return "probe " + how + ", output:\n" + r.output;
}

}  // namespace vramcache::probe
