// vramcache-replay's command line run in-process, with what it printed and its exit status:
// the replay tool's suites (replay_test, replay_plot_test, replay_suite_test) drive it this way.
#pragma once

#include <string>
#include <vector>

#include "bench/replay/replay_tool.h"

namespace vramcache {

struct ToolRun {
  int status = -1;  // kExitOk, kExitFailure or kExitUsage
  std::string out;
  std::string err;
};

// Runs the tool on `args` (the program name excluded).
inline ToolRun RunTool(const std::vector<std::string>& args,
                       const ReplayToolEnvironment& environment = {}) {
  ToolRun run;
  run.status = RunReplayTool(args, environment, &run.out, &run.err);
  return run;
}

}  // namespace vramcache
