// Every setting the policy reads, as plain data. Parsed from VRAMCACHE_CONF and PyTorch's
// PYTORCH_ALLOC_CONF / PYTORCH_CUDA_ALLOC_CONF by allocator/api/config_parser.h; the core never
// reads the environment itself. Each key is documented in docs/tuning.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace vramcache {

inline constexpr std::size_t kKiB = 1024;
inline constexpr std::size_t kMiB = 1024 * kKiB;
inline constexpr std::size_t kGiB = 1024 * kMiB;
// The reuse cache's size when reuse_cache is not set: in segment mode, and in virtual-memory
// mode (see EffectiveReuseCacheBytes).
inline constexpr std::size_t kDefaultReuseCacheBytes = 256 * kMiB;
inline constexpr std::size_t kDefaultVmmReuseCacheBytes = 1 * kMiB;
// What one thread's front may cache (thread_fronts.h) once several threads allocate.
inline constexpr std::size_t kDefaultThreadCacheBytes = 8 * kMiB;

enum class DeviceKind { kAuto, kCuda, kSim };
enum class VmmMode { kAuto, kOn, kOff };
// What a stream does when its own free lists have nothing that fits (docs/tuning.md).
enum class CrossStreamPolicy {
  kNone,   // never take another stream's cached block; grow instead
  kQuery,  // take it only when an event recorded on its owner has already completed
  kWait,   // take it and make the requesting stream wait on the owner's event (RMM's order)
};

struct AllocatorConfig {
  // --- vramcache's own keys (VRAMCACHE_CONF) ---
  DeviceKind device = DeviceKind::kAuto;
  std::size_t sim_capacity = 80 * kGiB;
  std::size_t sim_granularity = 2 * kMiB;
  bool sim_accounting_only = true;          // addresses without backing memory (fast replays)
  int sim_devices = 1;                      // simulated devices, ordinals 0..sim_devices-1
  std::optional<std::size_t> budget_bytes;  // hard cap on reserved (physical) bytes
  std::optional<std::size_t> soft_budget_bytes;
  std::optional<double> soft_budget_fraction;
  VmmMode vmm = VmmMode::kAuto;
  CrossStreamPolicy cross_stream = CrossStreamPolicy::kWait;
  bool poison_on_free = false;
  bool canaries = false;
  bool unmap_on_free = false;
  bool zero_on_alloc = false;
  // Freed blocks kept whole for the next request of the same size (no coalesce, no search);
  // at most this many bytes. 0 turns the reuse cache off. Unset: kDefaultReuseCacheBytes in
  // segment mode, off in virtual-memory mode (see EffectiveReuseCacheBytes).
  std::optional<std::size_t> reuse_cache_bytes;
  // Per-thread fronts (thread_fronts.h): once a second thread uses the allocator, each thread
  // caches up to this many bytes of the blocks it freed whole, reused without the allocator's
  // lock. 0 turns them off. Off with the debug modes, record_history, check_invariants,
  // unmap_on_free and pass-through, which need every block in the allocator's hands.
  std::size_t thread_cache_bytes = kDefaultThreadCacheBytes;
  // false: pass-through (caching:off, or PYTORCH_NO_CUDA_MEMORY_CACHING=1), so that
  // compute-sanitizer sees every buffer: each allocation is its own device allocation of the
  // rounded size (segment mode, never split, never reused), given back to the device as soon
  // as its free completes (after the streams that used it are done). Statistics as usual.
  bool caching = true;
  bool record_history = false;
  std::size_t history_capacity = 100000;
#if defined(VRAMCACHE_CHECK_INVARIANTS)
  bool check_invariants = true;  // CheckInvariants() after every operation (slow)
#else
  bool check_invariants = false;
#endif

  // --- PyTorch's keys (PYTORCH_ALLOC_CONF), same meanings ---
  std::size_t max_split_size = std::numeric_limits<std::size_t>::max();
  std::size_t max_non_split_rounding = 20 * kMiB;
  // roundup_power2_divisions: entry i is the number of divisions for request sizes in
  // [2^i, 2^(i+1)) bytes (0 or 1: no extra rounding). Empty: off everywhere.
  std::vector<std::size_t> roundup_power2_divisions;
  double garbage_collection_threshold = 0.0;  // 0: off
  bool expandable_segments = false;
  std::optional<double> per_process_memory_fraction;
  bool release_lock_on_cudamalloc = false;
  bool graph_capture_record_stream_reuse = false;
  std::string backend = "native";

  bool operator==(const AllocatorConfig&) const = default;
};

// The reuse cache's size for a configuration running in virtual-memory mode or not. Blocks kept
// whole keep their pages: in virtual-memory mode that is physical memory no stitch can use, and
// reusing them where first fit would not place them breaks its repeatability
// (caching_allocator.cc). So virtual-memory mode keeps only 1 MiB unless set: enough for the
// hot path's repeated same-size pairs (measured: 256 MiB cost resnet50_train 0.02 of
// utilization and 32 MiB left stitches in later passes; 1 MiB left none).
inline std::size_t EffectiveReuseCacheBytes(const AllocatorConfig& config, bool virtual_memory) {
  if (!config.caching) return 0;
  if (config.reuse_cache_bytes.has_value()) return *config.reuse_cache_bytes;
  return virtual_memory ? kDefaultVmmReuseCacheBytes : kDefaultReuseCacheBytes;
}

}  // namespace vramcache
