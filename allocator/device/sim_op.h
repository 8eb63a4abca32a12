// The simulated device's operations, one per Device call: the key for its per-call counters and
// for fault injection, with the short names the replay tool prints.
#pragma once

#include <cstddef>

#include "absl/strings/string_view.h"

namespace vramcache {

enum class SimOp : int {
  kMemInfo,
  kMalloc,
  kFree,
  kReserveAddress,
  kReleaseAddress,
  kCreateChunk,
  kReleaseChunk,
  kMap,
  kUnmap,
  kGrantPeerAccess,
  kCreateEvent,
  kDestroyEvent,
  kRecordEvent,
  kQueryEvent,
  kSynchronizeEvent,
  kStreamWaitEvent,
  kSynchronizeDevice,
  kIsCapturing,
  kFill,
  kStreamOrdinal,
};

inline constexpr std::size_t kSimOpCount = static_cast<std::size_t>(SimOp::kStreamOrdinal) + 1;

// snake_case name ("create_chunk", "query_event", ...), stable for tools and JSON.
absl::string_view SimOpName(SimOp op);

}  // namespace vramcache
