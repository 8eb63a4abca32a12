// One seed of the randomized hazard oracle: CachingAllocator on a hazard-checking SimDevice in
// memory mode with random kernel durations. Several threads (how many, the seed decides)
// allocate on several streams, launch "kernels" over what they allocated, free while the kernels
// run, hand allocations to other streams, destroy and recreate streams, capture graphs, empty
// the cache while the others go on, change the budget, run out of memory and retry, and shut
// down. With several threads, a device synchronization keeps its caller 300 us. Run by
// hazard_oracle_test over many seeds, and by the golden test, recorded, over single-threaded
// ones (several threads are not deterministic). VRAMCACHE_ORACLE_SKIP=<names> leaves
// operations out (see hazard_oracle_test.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "allocator/core/stats.h"
#include "tests/support/device_call_log.h"

namespace vramcache {

class HazardOracle {
 public:
  // With `calls`, every device call the allocator makes is logged there. Without
  // `check_bytes` the device keeps accounts only (no bytes: the allocations' tags are neither
  // written nor checked, stream hazards still are): its addresses are then the same in every
  // process, where memory-backed ones are the host's (ASLR, sanitizers' own mappings) and the
  // allocator's choices between equal candidates follow address order.
  HazardOracle(std::uint64_t seed, bool vmm, DeviceCallLog* calls = nullptr,
               bool check_bytes = true);
  ~HazardOracle();

  // "seed 12, vmm on, 3 threads, ...": for failure messages.
  const std::string& description() const;
  int threads() const;

  // Runs the threads' steps, then frees everything, empties the cache and shuts the allocator
  // down. A broken invariant or corrupted allocation fails the running test (gtest); the hazards
  // the device finds go to its hazard sink (capture them with ScopedSimHazardCapture).
  void Run();
  bool failed() const;
  // With VRAMCACHE_ORACLE_TRACE set: the threads' steps, a line each, in the order taken
  // (allocations, frees, kernels, captures, replays, stream changes). Empty otherwise.
  std::vector<std::string> trace() const;
  // The allocator's statistics (after Run: after the shutdown).
  DeviceStats stats() const;

 private:
  class World;
  std::unique_ptr<World> world_;
};

}  // namespace vramcache
