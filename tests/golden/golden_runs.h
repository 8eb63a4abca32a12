// The runs whose results the golden test pins down, and their results as text: the three shared
// traces in both modes (segments and vmm) with three passes each, and single-threaded seeds of
// the randomized workload and of the hazard oracle (with the oracle's default operations:
// VRAMCACHE_ORACLE_SKIP unset), on a simulated device that keeps accounts only, so that its
// addresses are the same in every process. Per run: its statistics (peaks included), and every
// device call the allocator made, counted by name and hashed in order. Multi-threaded runs are not
// deterministic and are left out.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace vramcache {

struct GoldenText {
  std::string summary;  // tests/golden/golden_results.txt
  // tests/golden/device_calls.txt: the calls of every run, in order, but for the capture-mode
  // exchanges and capture-state queries (in the hash and counts only), repeats folded.
  std::string device_calls;
};

// `source_dir` is the repository root (the traces are read from bench/traces). Fails when a
// trace cannot be read or replayed; a workload assertion fails the running test.
absl::StatusOr<GoldenText> RunGoldenRuns(const std::string& source_dir);

}  // namespace vramcache
