// Names of the simulated device's operations.
#include "allocator/device/sim_op.h"

#include <array>

namespace vramcache {

absl::string_view SimOpName(SimOp op) {
  static constexpr std::array<absl::string_view, kSimOpCount> kNames = {
      "mem_info",
      "malloc",
      "free",
      "reserve_address",
      "release_address",
      "create_chunk",
      "release_chunk",
      "map",
      "unmap",
      "grant_peer_access",
      "create_event",
      "destroy_event",
      "record_event",
      "query_event",
      "synchronize_event",
      "stream_wait_event",
      "synchronize_device",
      "is_capturing",
      "fill",
      "stream_ordinal",
  };
  const auto index = static_cast<std::size_t>(op);
  return index < kNames.size() ? kNames[index] : "unknown";
}

}  // namespace vramcache
