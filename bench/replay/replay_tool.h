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
inline constexpr int kExitFailure = 1;  // a trace, the device or the allocator failed, or
                                        // allocations failed without --allow-failures
inline constexpr int kExitUsage = 2;    // bad arguments

struct ReplayToolOptions {
  std::vector<std::string> traces;
  bool json = false;
  bool help = false;
  bool min_capacity = false;
  // Failed allocations are expected (a capacity chosen to probe them): they do not make the exit
  // status 1. --min-capacity implies it (its search fails allocations on purpose).
  bool allow_failures = false;
  std::string device = "sim";
  bool device_given = false;
  std::string conf;
  std::optional<std::size_t> capacity;
  int repeat = 1;
  bool repeat_given = false;
  // --suite DIR (may be given more than once): every *.csv in DIR, sorted, in both modes unless
  // --mode says otherwise, kSuiteDefaultRepeat passes unless --repeat does, with the minimum
  // card, printed as one table (FormatSuiteTable). Expanded when the tool runs.
  std::vector<std::string> suites;
  // --mode: "" leaves config.vmm as --conf has it (auto unless set); "vmm", "segments" or
  // "both" (every trace in segment mode, then in virtual-memory mode).
  std::string mode;
  std::string plot;  // --plot FILE: "" for no plot
  // --plan-bound: no replay; each trace's step and what an offline planned layout reaches
  // (plan_bound.h), one table.
  bool plan_bound = false;
  // --page-breakdown: each trace replayed in virtual-memory mode with a snapshot after every
  // allocation; where the pages go when the most are in use (page_breakdown.h), one table.
  bool page_breakdown = false;
};

// The SVG file --plot writes for one replay. FILE as given for one trace in one mode; with
// several traces the trace's file name without .csv, and with --mode both the mode, are
// inserted before FILE's extension, each after a '-': --plot mem.svg with a.csv and --mode both
// gives mem-a-segments.svg and mem-a-vmm.svg.
std::string PlotPathFor(const ReplayToolOptions& options, const std::string& trace,
                        const std::string& mode);

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
