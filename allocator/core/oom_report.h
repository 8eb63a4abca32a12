// The out-of-memory report: what was asked for, what the allocator and the device hold, and a
// verdict on why the request failed with the action that helps. Built by the allocator, read by
// users (text in PyTorch's layout) and tools (JSON).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "allocator/device/device.h"

namespace vramcache {

// Each verdict states a claim that follows from the report's own numbers (JudgeOom's rules, and
// oom_report_test's property test), so a report never contradicts itself.
enum class OomVerdict {
  kBudgetReached,   // our hard cap stopped the growth: reserved + needed > budget
  kFragmentation,   // enough is cached (or pending) but the largest free block is too small
  kDeviceFull,      // the device has less free memory than the allocator needed
  kOtherProcesses,  // as kDeviceFull, and other processes hold at least the request
  kTooLarge,        // the request alone exceeds the device's total or the budget
  kDeviceRefused,   // the device refused although it reports enough free memory
};

const char* OomVerdictName(OomVerdict verdict);

struct OomReport {
  int device = 0;
  StreamHandle stream = 0;
  std::size_t requested_bytes = 0;
  std::size_t rounded_bytes = 0;
  std::size_t segment_bytes = 0;  // what the allocator tried to obtain from the device
  std::size_t device_total_bytes = 0;
  std::size_t device_free_bytes = 0;
  std::size_t allocated_bytes = 0;  // in live allocations
  std::size_t reserved_bytes = 0;   // held from the device
  std::size_t cached_free_bytes = 0;
  std::size_t largest_free_block_bytes = 0;
  std::size_t pending_free_bytes = 0;  // freed, waiting for other streams' work
  std::size_t budget_bytes = 0;        // 0: no budget
  std::size_t other_processes_bytes = 0;
  std::string device_error;  // what the device said, if it refused
  OomVerdict verdict = OomVerdict::kDeviceFull;

  std::string ToString() const;
  std::string ToJson() const;
};

// Chooses the verdict from the numbers (pure function; tested on constructed scenarios).
OomVerdict JudgeOom(const OomReport& report);

// What the allocator needed from the device for the request: the segment it tried to obtain, or
// the rounded request when it tried none. The verdicts compare it with free memory.
std::size_t OomNeededBytes(const OomReport& report);

// "1.50 GiB", "20.00 MiB", "512 bytes": PyTorch's format_size.
std::string FormatBytes(std::size_t bytes);

}  // namespace vramcache
