// Consistency rules of a trace, enforced as it is built.
#include "allocator/trace/trace_builder.h"

#include <limits>
#include <utility>

#include "absl/strings/str_format.h"

namespace vramcache {
namespace {

constexpr std::uint64_t kNotLive = std::numeric_limits<std::uint64_t>::max();

}  // namespace

TraceBuilder::TraceBuilder(std::string source) { trace_.source = std::move(source); }

std::uint32_t TraceBuilder::PointerId(std::uint64_t pointer) {
  auto [it, inserted] =
      pointer_ids_.try_emplace(pointer, static_cast<std::uint32_t>(trace_.pointer_values.size()));
  if (inserted) {
    trace_.pointer_values.push_back(pointer);
    live_size_.push_back(kNotLive);
  }
  return it->second;
}

std::uint32_t TraceBuilder::NewThreadId(std::uint64_t thread) {
  auto [it, inserted] =
      thread_ids_.try_emplace(thread, static_cast<std::uint32_t>(trace_.thread_values.size()));
  if (inserted) trace_.thread_values.push_back(thread);
  last_thread_ = thread;
  last_thread_id_ = it->second;
  has_last_thread_ = true;
  return it->second;
}

absl::Status TraceBuilder::Allocate(std::uint64_t pointer, std::uint64_t size,
                                    const TraceEventOrigin& origin) {
  if (size == kNotLive) {
    return absl::InvalidArgumentError(absl::StrFormat("allocate of %u bytes is not a size", size));
  }
  const std::uint32_t id = PointerId(pointer);
  if (live_size_[id] != kNotLive) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "allocate of pointer 0x%x, which is already live (allocated with %u bytes and not freed)",
        pointer, live_size_[id]));
  }
  if (!failed_pointers_.empty()) failed_pointers_.erase(pointer);
  live_size_[id] = size;
  ++num_live_;
  trace_.events.push_back(TraceEvent{.size = size,
                                     .stream = origin.stream,
                                     .time_us = origin.time_us,
                                     .pointer_id = id,
                                     .thread_id = ThreadId(origin.thread),
                                     .kind = TraceEventKind::kAllocate});
  return absl::OkStatus();
}

absl::Status TraceBuilder::Free(std::uint64_t pointer, std::uint64_t size,
                                const TraceEventOrigin& origin) {
  auto it = pointer_ids_.find(pointer);
  if (it == pointer_ids_.end() || live_size_[it->second] == kNotLive) {
    if (failed_pointers_.erase(pointer) > 0) {
      ++trace_.skipped_frees_of_failed;
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(
        absl::StrFormat("free of pointer 0x%x, which is not live (%s)", pointer,
                        it == pointer_ids_.end() ? "never allocated" : "already freed"));
  }
  const std::uint32_t id = it->second;
  if (live_size_[id] != size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("free of pointer 0x%x with size %u, but it was allocated with size %u",
                        pointer, size, live_size_[id]));
  }
  live_size_[id] = kNotLive;
  --num_live_;
  trace_.events.push_back(TraceEvent{.size = size,
                                     .stream = origin.stream,
                                     .time_us = origin.time_us,
                                     .pointer_id = id,
                                     .thread_id = ThreadId(origin.thread),
                                     .kind = TraceEventKind::kFree});
  return absl::OkStatus();
}

void TraceBuilder::AllocateFailure(std::uint64_t pointer) {
  ++trace_.skipped_failed_allocations;
  failed_pointers_.insert(pointer);
}

Trace TraceBuilder::Finish() && { return std::move(trace_); }

}  // namespace vramcache
