// Fault injection rules: count down the successes, then the failures.
#include "allocator/device/sim_faults.h"

#include <utility>

namespace vramcache {

void SimFaultInjector::FailNext(SimOp op, absl::Status status, int count) {
  FailAfter(op, 0, std::move(status), count);
}

void SimFaultInjector::FailAfter(SimOp op, int successes_first, absl::Status status, int count) {
  Rule& rule = rules_[static_cast<std::size_t>(op)];
  // An OK status would make the "failure" a silent success; count <= 0 (other than kForever)
  // means no failure at all. Both clear the rule rather than arm something meaningless.
  if (status.ok() || (count <= 0 && count != kForever)) {
    rule = Rule{};
    return;
  }
  rule.successes_left = successes_first > 0 ? successes_first : 0;
  rule.failures_left = count;
  rule.status = std::move(status);
}

void SimFaultInjector::Clear(SimOp op) { rules_[static_cast<std::size_t>(op)] = Rule{}; }

void SimFaultInjector::ClearAll() { rules_.fill(Rule{}); }

absl::Status SimFaultInjector::OnCall(SimOp op) {
  Rule& rule = rules_[static_cast<std::size_t>(op)];
  if (rule.failures_left == 0) return absl::OkStatus();
  if (rule.successes_left > 0) {
    --rule.successes_left;
    return absl::OkStatus();
  }
  absl::Status injected = rule.status;
  if (rule.failures_left != kForever && --rule.failures_left == 0) rule = Rule{};
  return injected;
}

}  // namespace vramcache
