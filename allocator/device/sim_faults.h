// Fault injection for the simulated device: makes chosen calls fail on demand so tests can
// prove that every device error surfaces and that a failed call changes nothing.
#pragma once

#include <array>
#include <cstdint>

#include "absl/status/status.h"
#include "allocator/device/sim_op.h"

namespace vramcache {

// One rule per operation; a new rule replaces the old one. Not thread-safe: the device calls it
// under its own lock.
class SimFaultInjector {
 public:
  // `count` failures in a row; kForever never stops failing.
  static constexpr int kForever = -1;

  // The next `count` calls of `op` fail with `status`.
  void FailNext(SimOp op, absl::Status status, int count = 1);
  // The next `successes_first` calls of `op` go through, then `count` calls fail.
  void FailAfter(SimOp op, int successes_first, absl::Status status, int count = 1);
  void Clear(SimOp op);
  void ClearAll();

  // Called once at the start of every call: the injected error, or OK to proceed.
  absl::Status OnCall(SimOp op);

 private:
  struct Rule {
    int successes_left = 0;
    int failures_left = 0;  // 0: no rule; kForever: fail from now on
    absl::Status status;
  };
  std::array<Rule, kSimOpCount> rules_;
};

}  // namespace vramcache
