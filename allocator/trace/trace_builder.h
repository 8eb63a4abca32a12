// Builds a Trace one event at a time and refuses events that would make it inconsistent: a free
// of a pointer that is not live, a free whose size differs from its allocation, an allocation of
// a pointer already live. Shared by the CSV reader and by code that synthesizes traces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "allocator/trace/trace.h"

namespace vramcache {

// Where and when an event happened, as the log wrote it.
struct TraceEventOrigin {
  std::uint64_t stream = 0;
  std::uint64_t thread = 0;
  std::int64_t time_us = 0;
};

class TraceBuilder {
 public:
  explicit TraceBuilder(std::string source);

  // Each returns InvalidArgument (and adds nothing) when the event contradicts the trace so far.
  // Messages name the pointer in hex but not the source or line: the reader adds those.
  absl::Status Allocate(std::uint64_t pointer, std::uint64_t size, const TraceEventOrigin& origin);
  // The free of a pointer whose allocation failed is accepted and left out of the trace.
  absl::Status Free(std::uint64_t pointer, std::uint64_t size, const TraceEventOrigin& origin);
  // An allocation the program asked for and did not get (RMM's "allocate failure"): not an
  // event, but a later free of `pointer` is then skipped rather than refused.
  void AllocateFailure(std::uint64_t pointer);

  void Reserve(std::size_t events) { trace_.events.reserve(events); }
  std::size_t num_events() const { return trace_.events.size(); }
  // Pointers live now (allocated and not yet freed).
  std::size_t num_live() const { return num_live_; }

  Trace Finish() &&;

 private:
  std::uint32_t PointerId(std::uint64_t pointer);
  std::uint32_t ThreadId(std::uint64_t thread) {
    if (has_last_thread_ && thread == last_thread_) return last_thread_id_;
    return NewThreadId(thread);
  }
  std::uint32_t NewThreadId(std::uint64_t thread);

  Trace trace_;
  absl::flat_hash_map<std::uint64_t, std::uint32_t> pointer_ids_;
  absl::flat_hash_map<std::uint64_t, std::uint32_t> thread_ids_;
  // Per pointer id: the size of its live allocation; kNotLive when it has none.
  std::vector<std::uint64_t> live_size_;
  absl::flat_hash_set<std::uint64_t> failed_pointers_;
  std::size_t num_live_ = 0;
  // Traces usually come from one thread; skip the hash lookup when it repeats.
  std::uint64_t last_thread_ = 0;
  std::uint32_t last_thread_id_ = 0;
  bool has_last_thread_ = false;
};

}  // namespace vramcache
