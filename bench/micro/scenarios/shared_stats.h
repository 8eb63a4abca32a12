// shared_stats: what exact statistics cost when threads share them, without the allocator
// (issue #18: "a per-thread ledger merged on read, or atomics, are both fine; measure what each
// costs"). Each thread makes the counter updates of one fast-path pair on the default stream's
// pool again and again: at the allocation, allocation / allocated_bytes / requested_bytes /
// active / active_bytes go up (each in `all` and in its pool: ten counters whose peaks must stay
// true peaks) and inactive_split_bytes goes down (two); the free reverses them. Three schemes,
// each keeping every current value exact with no update in flight and every peak a true peak:
//   locked   one lock around plain counters (today's allocator: its lock covers them);
//   atomic   shared atomics: a fetch_add per counter and a compare-and-swap loop for its peak;
//   reserve  per-thread shards: each thread counts its own change and spends a reserve of
//            headroom under the peak that its own decreases refilled; only when a reserve runs
//            out does it take every shard's lock, recount the exact total, raise the peak if the
//            total passes it, and take the headroom the other reserves leave (ReserveStats).
// items: pairs, all threads together (real time).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "allocator/base/mutex.h"
#include "allocator/core/stats.h"
#include "bench/micro/bench_support.h"
#include "benchmark/benchmark.h"

namespace vramcache::bench {

// The counters of one pair: [0, kRising) rise at the allocation, the rest at the free.
inline constexpr int kSharedCounters = 12;
inline constexpr int kRising = 10;
inline constexpr std::int64_t kPairBytes = 4096;

// The amount each counter moves by at a pair: counts by 1, byte counters by the block's size.
inline constexpr std::array<std::int64_t, kSharedCounters> kPairAmounts = {
    1, 1, kPairBytes, kPairBytes, kPairBytes, kPairBytes,
    1, 1, kPairBytes, kPairBytes, kPairBytes, kPairBytes};

// Today's scheme: Stat under one lock.
class LockedStats {
 public:
  void Move(bool allocation) {
    MutexLock lock(&mu_);
    for (int k = 0; k < kSharedCounters; ++k) {
      const bool rises = (k < kRising) == allocation;
      if (rises) {
        stats_[k].Increase(kPairAmounts[k]);
      } else {
        stats_[k].Decrease(kPairAmounts[k]);
      }
    }
  }
  std::int64_t Current(int k) {
    MutexLock lock(&mu_);
    return stats_[k].current;
  }
  std::int64_t Peak(int k) {
    MutexLock lock(&mu_);
    return stats_[k].peak;
  }

 private:
  Mutex mu_;
  std::array<Stat, kSharedCounters> stats_;
};

// Shared atomics; a peak is raised by compare-and-swap to the value its own fetch_add produced,
// so it is the largest value the counter ever held.
class AtomicStats {
 public:
  void Move(bool allocation) {
    for (int k = 0; k < kSharedCounters; ++k) {
      Counter& c = counters_[k];
      if ((k < kRising) == allocation) {
        const std::int64_t now =
            c.current.fetch_add(kPairAmounts[k], std::memory_order_relaxed) + kPairAmounts[k];
        c.allocated.fetch_add(kPairAmounts[k], std::memory_order_relaxed);
        std::int64_t peak = c.peak.load(std::memory_order_relaxed);
        while (now > peak && !c.peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
        }
      } else {
        c.current.fetch_sub(kPairAmounts[k], std::memory_order_relaxed);
      }
    }
  }
  std::int64_t Current(int k) { return counters_[k].current.load(); }
  std::int64_t Peak(int k) { return counters_[k].peak.load(); }

 private:
  struct alignas(64) Counter {
    std::atomic<std::int64_t> current{0};
    std::atomic<std::int64_t> peak{0};
    std::atomic<std::int64_t> allocated{0};
  };
  std::array<Counter, kSharedCounters> counters_;
};

// Per-thread shards with reserves. Invariant, per counter: the sum over shards of (change +
// reserve) never exceeds the peak, so no shard can pass the peak while it spends its own reserve;
// the peak itself only moves under every shard's lock, to an exact total.
class ReserveStats {
 public:
  struct alignas(64) Shard {
    Mutex mu;
    std::array<std::int64_t, kSharedCounters> change{};
    std::array<std::int64_t, kSharedCounters> reserve{};
    std::array<std::int64_t, kSharedCounters> allocated{};
  };

  // One shard per thread, made before the threads start.
  explicit ReserveStats(int threads) {
    for (int t = 0; t < threads; ++t) shards_.push_back(std::make_unique<Shard>());
  }

  void Move(int thread, bool allocation) {
    Shard& shard = *shards_[thread];
    {
      MutexLock lock(&shard.mu);
      if (TryMove(shard, allocation)) return;
    }
    Rebalance(shard, allocation);
  }
  std::int64_t Current(int k) {
    LockAll();
    std::int64_t total = 0;
    for (const auto& s : shards_) total += s->change[k];
    UnlockAll();
    return total;
  }
  std::int64_t Peak(int k) {
    LockAll();
    const std::int64_t peak = peak_[k];
    UnlockAll();
    return peak;
  }

 private:
  // The whole move from the shard's reserves, or nothing.
  static bool TryMove(Shard& s, bool allocation) {
    for (int k = 0; k < kSharedCounters; ++k) {
      if ((k < kRising) == allocation && s.reserve[k] < kPairAmounts[k]) return false;
    }
    for (int k = 0; k < kSharedCounters; ++k) {
      if ((k < kRising) == allocation) {
        s.reserve[k] -= kPairAmounts[k];
        s.change[k] += kPairAmounts[k];
        s.allocated[k] += kPairAmounts[k];
      } else {
        s.change[k] -= kPairAmounts[k];
        s.reserve[k] += kPairAmounts[k];
      }
    }
    return true;
  }
  // Under every lock: the exact totals, the move, the peaks raised to the new totals if they
  // pass them, and this shard's reserve set to the headroom the others' reserves leave. The
  // others keep theirs unless that headroom would be negative (then they are taken back): taking
  // them back at every rebalance made two threads hand the headroom back and forth, one
  // rebalance every other pair each (measured: 76 ns a pair at 2 threads against 19 ns at 1).
  void Rebalance(Shard& s, bool allocation) {
    LockAll();
    for (int k = 0; k < kSharedCounters; ++k) {
      std::int64_t total = 0;
      std::int64_t others_reserved = 0;
      for (auto& other : shards_) {
        total += other->change[k];
        if (other.get() != &s) others_reserved += other->reserve[k];
      }
      const std::int64_t amount = (k < kRising) == allocation ? kPairAmounts[k] : -kPairAmounts[k];
      s.change[k] += amount;
      if (amount > 0) s.allocated[k] += amount;
      total += amount;
      peak_[k] = std::max(peak_[k], total);
      std::int64_t headroom = peak_[k] - total - others_reserved;
      if (headroom < 0) {
        for (auto& other : shards_) other->reserve[k] = 0;
        headroom = peak_[k] - total;
      }
      s.reserve[k] = headroom;
    }
    UnlockAll();
  }
  void LockAll() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (auto& s : shards_) s->mu.Lock();
  }
  void UnlockAll() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (auto& s : shards_) s->mu.Unlock();
  }

  std::vector<std::unique_ptr<Shard>> shards_;
  std::array<std::int64_t, kSharedCounters> peak_{};
};

// Every thread's pairs; thread 0 makes the statistics before the start barrier and checks them
// after the end barrier: every current back to 0; a counter that rises at the allocation peaked
// at one pair's amount at least and one per thread at most; one that falls there never rose
// above 0.
template <typename Stats>
void SharedStats(benchmark::State& state) {
  static Stats* shared = nullptr;
  const int threads = state.threads();
  if (state.thread_index() == 0) {
    if constexpr (std::is_constructible_v<Stats, int>) {
      shared = new Stats(threads);
    } else {
      shared = new Stats();
    }
  }
  Stats* const* const slot = &shared;
  const int me = state.thread_index();
  for (auto _ : state) {
    if constexpr (std::is_constructible_v<Stats, int>) {
      (*slot)->Move(me, /*allocation=*/true);
      (*slot)->Move(me, /*allocation=*/false);
    } else {
      (*slot)->Move(/*allocation=*/true);
      (*slot)->Move(/*allocation=*/false);
    }
  }
  if (me == 0) {
    for (int k = 0; k < kSharedCounters; ++k) {
      const std::int64_t peak = shared->Peak(k);
      const bool bounded =
          k < kRising ? peak >= kPairAmounts[k] && peak <= kPairAmounts[k] * threads : peak == 0;
      if (shared->Current(k) != 0 || !bounded) {
        ReportError(
            state, absl::InternalError(absl::StrCat("counter ", k, ": current ", shared->Current(k),
                                                    ", peak ", peak, " out of bounds")));
        break;
      }
    }
    delete shared;
    shared = nullptr;
  }
  state.SetItemsProcessed(state.iterations());
}

inline void RegisterSharedStats() {
  benchmark::RegisterBenchmark("shared_stats/locked", SharedStats<LockedStats>)
      ->Threads(1)
      ->Threads(2)
      ->Threads(4)
      ->UseRealTime();
  benchmark::RegisterBenchmark("shared_stats/atomic", SharedStats<AtomicStats>)
      ->Threads(1)
      ->Threads(2)
      ->Threads(4)
      ->UseRealTime();
  benchmark::RegisterBenchmark("shared_stats/reserve", SharedStats<ReserveStats>)
      ->Threads(1)
      ->Threads(2)
      ->Threads(4)
      ->UseRealTime();
}

}  // namespace vramcache::bench
