// Allocator statistics with PyTorch's names and meanings (torch.cuda.memory_stats()),
// generated from stats_fields.h. Updated only under the allocator's lock, so every value,
// peaks included, is exact at the instant it is read.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "allocator/core/stats_fields.h"

namespace vramcache {

// One counter: the value now, its high-water mark, and how much was ever added / removed.
// What was removed is not stored: it follows from the others (freed() below), so a decrease,
// which every free makes for several counters, writes one field instead of two (the fast path's
// statistics are a fifth of its instructions, docs/benchmarks.md).
struct Stat {
  std::int64_t current = 0;
  std::int64_t peak = 0;
  std::int64_t allocated = 0;
  // `current` when the accumulations were last reset (0 at first).
  std::int64_t current_at_reset = 0;

  // Every change since the reset moved `current` and one of `allocated` and freed() by the same
  // amount, so current - current_at_reset == allocated - freed.
  std::int64_t freed() const { return allocated - (current - current_at_reset); }

  ABSL_ATTRIBUTE_ALWAYS_INLINE void Increase(std::int64_t amount) {
    current += amount;
    allocated += amount;
    if (current > peak) peak = current;
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Decrease(std::int64_t amount) { current -= amount; }
  void ResetPeak() { peak = current; }
  void ResetAccumulated() {
    allocated = 0;
    current_at_reset = current;
  }
};

enum class Pool : int { kAll = 0, kSmall = 1, kLarge = 2 };
inline constexpr int kNumPoolStats = 3;
inline constexpr std::array<const char*, kNumPoolStats> kPoolStatNames = {"all", "small_pool",
                                                                          "large_pool"};

// Aggregate updates keep `all` equal to small + large by construction. Always inline: the fast
// path makes a dozen, and GCC 12 kept some out of line (18 instructions a pair, callgrind).
struct PoolStat {
  std::array<Stat, kNumPoolStats> by_pool;
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Increase(bool small, std::int64_t amount) {
    by_pool[0].Increase(amount);
    by_pool[small ? 1 : 2].Increase(amount);
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Decrease(bool small, std::int64_t amount) {
    by_pool[0].Decrease(amount);
    by_pool[small ? 1 : 2].Decrease(amount);
  }
  const Stat& all() const { return by_pool[0]; }
};

struct DeviceStats {
#define VRAMCACHE_DECLARE_POOL(name) PoolStat name;
  VRAMCACHE_POOL_STATS(VRAMCACHE_DECLARE_POOL)
#undef VRAMCACHE_DECLARE_POOL
#define VRAMCACHE_DECLARE_SINGLE(name) Stat name;
  VRAMCACHE_SINGLE_STATS(VRAMCACHE_DECLARE_SINGLE)
#undef VRAMCACHE_DECLARE_SINGLE
#define VRAMCACHE_DECLARE_COUNTER(name) std::int64_t name = 0;
  VRAMCACHE_EVENT_COUNTERS(VRAMCACHE_DECLARE_COUNTER)
  VRAMCACHE_GAUGES(VRAMCACHE_DECLARE_COUNTER)
#undef VRAMCACHE_DECLARE_COUNTER

  void ResetPeak();
  void ResetAccumulated();
  // Adds `changes` (a per-thread front's counts against these, thread_fronts.h): every current
  // value, accumulation and event count; peaks and gauges stay.
  void AddChanges(const DeviceStats& changes);

  // Flat key/value pairs with torch.cuda.memory_stats() names, e.g.
  // "allocated_bytes.all.current", "num_ooms", "max_split_size". Sorted by key.
  std::vector<std::pair<std::string, std::int64_t>> ToKeyValues() const;
  // One JSON object with the same keys.
  std::string ToJson() const;
};

}  // namespace vramcache
