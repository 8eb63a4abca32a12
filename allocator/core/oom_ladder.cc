// The out-of-memory ladder's order, the report built from the allocator's facts, and the
// observers' calls (oom_ladder.h).
#include "allocator/core/oom_ladder.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace vramcache {

absl::StatusOr<void*> ClimbOomLadder(OomLadderRungs& rungs, bool capturing, bool soft_budget,
                                     std::size_t growth) {
  if (!capturing && soft_budget) {
    if (absl::Status s = rungs.ReleaseAboveSoftBudget(growth); !s.ok()) return s;
  }
  if (auto result = rungs.TryGrow()) return *std::move(result);
  // Freeing or synchronizing is illegal during a capture: no ladder, report now.
  if (capturing) return rungs.OutOfMemory();

  bool released_any = false;
  if (absl::Status s = rungs.ReleaseCachedMemory(&released_any); !s.ok()) return s;
  if (released_any) {
    rungs.CountRetry();
    if (auto result = rungs.TryGrow()) return *std::move(result);
  }

  if (rungs.HasPendingFrees()) {
    if (absl::Status s = rungs.SynchronizePendingFrees(); !s.ok()) return s;
    rungs.CountRetry();
    if (auto result = rungs.TryGrow()) return *std::move(result);
  }
  return rungs.OutOfMemory();
}

OomReport BuildOomReport(const OomFacts& facts) {
  OomReport report;
  report.device = facts.device;
  report.stream = facts.stream;
  report.requested_bytes = facts.requested_bytes;
  report.rounded_bytes = facts.rounded_bytes;
  report.segment_bytes = facts.segment_bytes;
  report.device_total_bytes = facts.device_total_bytes;
  if (facts.mem_info.ok()) {
    report.device_total_bytes = facts.mem_info->total_bytes;
    report.device_free_bytes = facts.mem_info->free_bytes;
  }
  report.allocated_bytes = facts.allocated_bytes;
  report.reserved_bytes = facts.reserved_bytes;
  report.cached_free_bytes = facts.cached_free_bytes;
  report.largest_free_block_bytes = facts.largest_free_block_bytes;
  report.pending_free_bytes = facts.pending_free_bytes;
  report.budget_bytes = facts.budget_bytes;
  // Whatever the device lacks that neither its free memory nor this allocator holds.
  const std::size_t accounted = report.device_free_bytes + report.reserved_bytes;
  report.other_processes_bytes =
      report.device_total_bytes > accounted ? report.device_total_bytes - accounted : 0;
  if (!facts.device_error.ok()) report.device_error = std::string(facts.device_error.message());
  report.verdict = JudgeOom(report);
  return report;
}

std::string NotifyOomObservers(const std::vector<OomObserverFn>& observers,
                               const OomReport& report) {
  std::string failure;
  for (const auto& observer : observers) {
    try {
      observer(report.device, report.requested_bytes, report.allocated_bytes,
               report.budget_bytes > 0 ? report.budget_bytes : report.device_total_bytes,
               report.device_free_bytes);
    } catch (const std::exception& e) {
      failure = absl::StrCat("; an out-of-memory observer threw: ", e.what());
    } catch (...) {
      failure = "; an out-of-memory observer threw a non-standard exception";
    }
  }
  return failure;
}

}  // namespace vramcache
