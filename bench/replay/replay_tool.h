// vramcache-replay's command line: argument parsing, running each trace, and printing. Kept out
// of main() so tests run the tool as a user would and check its output and exit status.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/replay/replay.h"

namespace vramcache {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // a trace, the device or the allocator failed
inline constexpr int kExitUsage = 2;    // bad arguments

struct ReplayToolOptions {
  std::vector<std::string> traces;
  bool json = false;
  bool help = false;
  bool min_capacity = false;
  std::string device = "sim";
  bool device_given = false;
  std::string conf;
  std::optional<std::size_t> capacity;
  int repeat = 1;
};

// InvalidArgument with a message fit for the user on anything it does not understand.
absl::StatusOr<ReplayToolOptions> ParseReplayToolArgs(const std::vector<std::string>& args);

std::string ReplayToolUsage();

struct ReplayToolEnvironment {
  // Opens the GPU for --device cuda; empty in builds without CUDA support.
  ReplayDeviceOpener open_cuda_device;
};

// Runs the tool on `args` (the program name excluded). Output goes to `out`, diagnostics to
// `err`; returns the exit status (kExitOk, kExitFailure, kExitUsage).
int RunReplayTool(const std::vector<std::string>& args, const ReplayToolEnvironment& environment,
                  std::string* out, std::string* err);

}  // namespace vramcache
