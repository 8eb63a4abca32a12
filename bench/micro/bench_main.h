// The entry point every benchmark binary shares (bench_main.cc) and the one function each
// binary supplies: registering its peers' scenarios.
#pragma once

namespace vramcache::bench {

// Defined once per binary (sim_peers.cc for vramcache-bench). Called after the trace directory
// is set, before the benchmarks run.
void RegisterPeerBenchmarks();

}  // namespace vramcache::bench
