// An allocation trace in memory: compact events in log order, plus the tables that map their
// small ids back to the values the log held (pointers, threads). The shared currency of the
// trace reader and writer, the replay tool and the tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vramcache {

enum class TraceEventKind : std::uint8_t { kAllocate, kFree };

struct TraceEvent {
  std::uint64_t size = 0;    // requested bytes; a free carries the size of its allocation
  std::uint64_t stream = 0;  // the stream as logged (a cudaStream_t value)
  std::int64_t time_us = 0;  // microseconds, as logged
  // Dense ids so a replay can index vectors instead of hashing: pointer_id indexes
  // Trace::pointer_values (a value reused after its free keeps its id), thread_id indexes
  // Trace::thread_values.
  std::uint32_t pointer_id = 0;
  std::uint32_t thread_id = 0;
  TraceEventKind kind = TraceEventKind::kAllocate;

  friend bool operator==(const TraceEvent&, const TraceEvent&) = default;
};

struct Trace {
  std::string source;  // where it came from (a file name), for messages
  std::vector<TraceEvent> events;
  std::vector<std::uint64_t> pointer_values;
  std::vector<std::uint64_t> thread_values;
  // Lines the reader accepted but left out: RMM's "allocate failure" and the frees of the
  // pointers those failures named.
  std::size_t skipped_failed_allocations = 0;
  std::size_t skipped_frees_of_failed = 0;

  std::size_t NumAllocations() const;
  std::size_t NumFrees() const { return events.size() - NumAllocations(); }
};

// The largest sum of requested sizes live at one time: the least memory any allocator needs
// for this trace (peak_requested_bytes).
std::uint64_t PeakLiveBytes(const Trace& trace);

}  // namespace vramcache
