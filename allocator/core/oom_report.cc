// Text and JSON forms of the out-of-memory report, and the verdict rules.
#include "allocator/core/oom_report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vramcache {

const char* OomVerdictName(OomVerdict verdict) {
  switch (verdict) {
    case OomVerdict::kBudgetReached:
      return "budget_reached";
    case OomVerdict::kFragmentation:
      return "fragmentation";
    case OomVerdict::kDeviceFull:
      return "device_full";
    case OomVerdict::kOtherProcesses:
      return "other_processes";
    case OomVerdict::kTooLarge:
      return "too_large";
    case OomVerdict::kDeviceRefused:
      return "device_refused";
  }
  return "unknown";
}

std::string FormatBytes(std::size_t bytes) {
  if (bytes < 1024) return absl::StrFormat("%d bytes", bytes);
  if (bytes < (std::size_t{1} << 20)) return absl::StrFormat("%.2f KiB", bytes / 1024.0);
  if (bytes < (std::size_t{1} << 30)) return absl::StrFormat("%.2f MiB", bytes / 1048576.0);
  return absl::StrFormat("%.2f GiB", bytes / 1073741824.0);
}

std::size_t OomNeededBytes(const OomReport& r) {
  return r.segment_bytes > 0 ? r.segment_bytes : r.rounded_bytes;
}

// The rules, in order. Each returns only when its verdict's claim holds for these numbers.
OomVerdict JudgeOom(const OomReport& r) {
  const std::size_t need = OomNeededBytes(r);
  // A request no freeing can satisfy comes first: any other advice would send the user
  // chasing memory that would not help.
  if (r.device_total_bytes > 0 && r.rounded_bytes > r.device_total_bytes) {
    return OomVerdict::kTooLarge;
  }
  if (r.budget_bytes > 0 && r.rounded_bytes > r.budget_bytes) return OomVerdict::kTooLarge;
  const bool over_budget = r.budget_bytes > 0 && r.reserved_bytes + need > r.budget_bytes;
  if (over_budget &&
      r.cached_free_bytes + (r.budget_bytes - std::min(r.budget_bytes, r.reserved_bytes)) <
          r.rounded_bytes) {
    return OomVerdict::kBudgetReached;
  }
  if (r.cached_free_bytes + r.pending_free_bytes >= r.rounded_bytes &&
      r.largest_free_block_bytes < r.rounded_bytes) {
    return OomVerdict::kFragmentation;
  }
  if (over_budget) return OomVerdict::kBudgetReached;
  if (r.device_free_bytes >= need) return OomVerdict::kDeviceRefused;
  // Other processes matter when what they hold would have covered the request.
  if (r.other_processes_bytes >= r.rounded_bytes &&
      r.other_processes_bytes >= r.device_total_bytes / 10) {
    return OomVerdict::kOtherProcesses;
  }
  return OomVerdict::kDeviceFull;
}

namespace {
std::string Advice(const OomReport& r) {
  const std::size_t need = OomNeededBytes(r);
  switch (r.verdict) {
    case OomVerdict::kTooLarge:
      if (r.device_total_bytes > 0 && r.rounded_bytes > r.device_total_bytes) {
        return absl::StrCat("Verdict: the request is larger than the device: it needs ",
                            FormatBytes(r.rounded_bytes), ", more than the device's total of ",
                            FormatBytes(r.device_total_bytes),
                            ", so no amount of freeing can satisfy it. Split it into smaller "
                            "allocations or use a device with more memory.");
      }
      return absl::StrCat("Verdict: the request is larger than the budget: it needs ",
                          FormatBytes(r.rounded_bytes), ", more than the budget of ",
                          FormatBytes(r.budget_bytes),
                          ", so no amount of freeing can satisfy it. Raise the budget "
                          "(VRAMCACHE_CONF budget:<size> or per_process_memory_fraction) or "
                          "split the request.");
    case OomVerdict::kBudgetReached:
      return absl::StrCat("Verdict: the budget of ", FormatBytes(r.budget_bytes),
                          " is reached: ", FormatBytes(r.reserved_bytes), " is reserved and ",
                          FormatBytes(need),
                          " more is needed. Raise it (VRAMCACHE_CONF budget:<size> or "
                          "per_process_memory_fraction) or reduce the batch size.");
    case OomVerdict::kFragmentation:
      return absl::StrCat(
          "Verdict: fragmentation: ", FormatBytes(r.cached_free_bytes + r.pending_free_bytes),
          " is free in the cache or waiting for other streams' work, at least the ",
          FormatBytes(r.rounded_bytes), " needed, but the largest free block is ",
          FormatBytes(r.largest_free_block_bytes),
          ". Enable virtual-memory stitching (VRAMCACHE_CONF vmm:on) or set "
          "max_split_size_mb to keep large blocks whole.");
    case OomVerdict::kDeviceFull:
      return absl::StrCat("Verdict: the device is full: ", FormatBytes(r.device_free_bytes),
                          " is free, less than the ", FormatBytes(need),
                          " needed; vramcache holds ", FormatBytes(r.reserved_bytes), " (",
                          FormatBytes(r.allocated_bytes),
                          " in live tensors). Reduce the batch size or model size, or free "
                          "tensors you no longer need.");
    case OomVerdict::kOtherProcesses:
      return absl::StrCat("Verdict: other processes hold ", FormatBytes(r.other_processes_bytes),
                          " of this device, and ", FormatBytes(r.device_free_bytes),
                          " is free, less than the ", FormatBytes(need),
                          " needed. Free them (nvidia-smi lists them) or give each process a "
                          "budget.");
    case OomVerdict::kDeviceRefused:
      return absl::StrCat("Verdict: the device refused ", FormatBytes(need),
                          " although it reports ", FormatBytes(r.device_free_bytes),
                          " free (see what the device said). Its free memory may be too "
                          "scattered for one range: empty_cache() or vmm:on may help.");
  }
  return "";
}
}  // namespace

std::string OomReport::ToString() const {
  std::string text = absl::StrFormat(
      "CUDA out of memory. Tried to allocate %s. GPU %d has a total capacity of %s of which %s "
      "is free.",
      FormatBytes(requested_bytes), device, FormatBytes(device_total_bytes),
      FormatBytes(device_free_bytes));
  if (other_processes_bytes > 0) {
    absl::StrAppend(&text, " Other processes hold ", FormatBytes(other_processes_bytes), ".");
  }
  absl::StrAppend(&text, " Of the allocated memory ", FormatBytes(allocated_bytes),
                  " is allocated by vramcache, and ",
                  FormatBytes(reserved_bytes - std::min(reserved_bytes, allocated_bytes)),
                  " is reserved by vramcache but unallocated.");
  if (budget_bytes > 0) absl::StrAppend(&text, " Budget: ", FormatBytes(budget_bytes), ".");
  absl::StrAppend(&text, " Cached and free: ", FormatBytes(cached_free_bytes),
                  "; largest free block: ", FormatBytes(largest_free_block_bytes),
                  "; waiting for other streams: ", FormatBytes(pending_free_bytes), ".");
  if (!device_error.empty()) absl::StrAppend(&text, " Device said: ", device_error, ".");
  absl::StrAppend(&text, "\n", Advice(*this));
  return text;
}

std::string OomReport::ToJson() const {
  return absl::StrFormat(
      "{\"device\":%d,\"stream\":%d,\"requested_bytes\":%d,\"rounded_bytes\":%d,"
      "\"segment_bytes\":%d,\"device_total_bytes\":%d,\"device_free_bytes\":%d,"
      "\"allocated_bytes\":%d,\"reserved_bytes\":%d,\"cached_free_bytes\":%d,"
      "\"largest_free_block_bytes\":%d,\"pending_free_bytes\":%d,\"budget_bytes\":%d,"
      "\"other_processes_bytes\":%d,\"verdict\":\"%s\"}",
      device, stream, requested_bytes, rounded_bytes, segment_bytes, device_total_bytes,
      device_free_bytes, allocated_bytes, reserved_bytes, cached_free_bytes,
      largest_free_block_bytes, pending_free_bytes, budget_bytes, other_processes_bytes,
      OomVerdictName(verdict));
}

}  // namespace vramcache
