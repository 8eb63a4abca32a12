// Registers every scenario for a list of allocator adapters, grouped by scenario so a peer's
// result sits next to the others'. A binary calls it with the peers it can run.
#pragma once

#include <string>

#include "bench/micro/allocator_adapter.h"
#include "bench/micro/scenarios/cold_start.h"
#include "bench/micro/scenarios/cross_stream.h"
#include "bench/micro/scenarios/fast_path.h"
#include "bench/micro/scenarios/fragmentation.h"
#include "bench/micro/scenarios/mixed_sizes.h"
#include "bench/micro/scenarios/multi_thread.h"
#include "bench/micro/scenarios/replay.h"
#include "bench/micro/scenarios/shared_stats.h"
#include "bench/micro/trace_library.h"

namespace vramcache::bench {

template <AllocatorAdapter... Peers>
void RegisterAllScenarios() {
  (RegisterFastPath<Peers>(), ...);
  (RegisterMixedSizes<Peers>(), ...);
  (RegisterMultiThread<Peers>(), ...);
  (RegisterCrossStream<Peers>(), ...);
  (RegisterColdStart<Peers>(), ...);
  (RegisterFragmentation<Peers>(), ...);
  for (const std::string& trace : ListTraceNames()) (RegisterReplay<Peers>(trace), ...);
  RegisterSharedStats();  // no allocator: the statistics' sharing schemes alone
}

}  // namespace vramcache::bench
