// One seed of the randomized single-threaded workload: allocate / free / record_stream /
// empty-cache on a simulated device with real backing memory, checking after every step that
// the invariants hold, live allocations do not overlap (against an oracle interval map), and a
// pattern written into every live allocation is intact when it is freed. Run by
// randomized_invariant_test over many seeds and by the golden test over a fixed few, recorded.
#pragma once

#include <cstdint>

#include "allocator/core/stats.h"
#include "tests/support/device_call_log.h"

namespace vramcache {

// Fails the running test (gtest assertions) on the first violation; wrap the call in
// ASSERT_NO_FATAL_FAILURE. With `calls`, every device call the allocator makes is logged there;
// with `stats`, it receives the allocator's statistics after the last step, before the
// allocations still live are freed and the cache emptied. Without `check_bytes` the device
// keeps accounts only (no bytes, no tags checked): its addresses are then the same in every
// process, where memory-backed ones are the host's (ASLR, sanitizers' own mappings) and the
// allocator's choices between equal candidates follow address order.
void RunRandomizedSeed(std::uint64_t seed, int steps, DeviceCallLog* calls = nullptr,
                       DeviceStats* stats = nullptr, bool check_bytes = true);

}  // namespace vramcache
