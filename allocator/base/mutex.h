// The lock every layer uses, with Abseil's thread-safety annotations: a short spin, then a
// futex park (std::mutex under ThreadSanitizer, so its reports name a familiar lock).
// absl::Mutex is available with -DVRAMCACHE_ABSL_MUTEX, but not the default: Debian's Abseil
// build keeps per-lock deadlock bookkeeping (a graph-cycles id lookup and a thread-specific
// lookup on every Lock/Unlock, seen in perf even with detection set to kIgnore) that cost
// more than the rest of an allocation; and it is not built with TSan annotations, so under
// ThreadSanitizer absl::Mutex would be invisible.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <thread>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace vramcache {

#if defined(VRAMCACHE_ABSL_MUTEX) && !defined(VRAMCACHE_TSAN)
using Mutex = absl::Mutex;
#elif defined(VRAMCACHE_TSAN)
class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }

 private:
  std::mutex mu_;
};
#else
// A test-and-test-and-set lock that spins briefly, then parks (issue #18). The allocator holds
// its lock only for bookkeeping (never across a call that can block), so most waits end while
// spinning; a waiter that does not get the lock then sleeps on a futex instead of yielding in
// a loop, which left the holder, when preempted, competing with its waiters for the CPU.
// Uncontended, a lock/unlock pair is still one exchange and one plain store (plus a load of the
// parked count on the same cache line): a futex mutex's unlock needs a second atomic
// read-modify-write to learn whether to wake anyone, which measured 2x the pair's cost on the
// 2-core stand-in (docs/benchmarks.md, "#18"). The price of the plain store: an unlock that
// races with a thread going to sleep can miss it, so a parked thread also wakes after
// kParkTimeoutNs and tries again; the lock stays exclusive (only an exchange that reads 0
// acquires it), and a missed wake costs that thread at most the timeout.
class ABSL_LOCKABLE Mutex {
 public:
  // Always inline (GCC kept them out of line in Allocate and Free): the slow paths are not.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    if (locked_.exchange(1, std::memory_order_acquire) == 0) return;
    LockSlow();
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Unlock() ABSL_UNLOCK_FUNCTION() {
    locked_.store(0, std::memory_order_release);
    if (parked_.load(std::memory_order_relaxed) != 0) WakeOne();
  }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return locked_.load(std::memory_order_relaxed) == 0 &&
           locked_.exchange(1, std::memory_order_acquire) == 0;
  }

 private:
  // Long enough for a holder that is running to finish its bookkeeping (well under 1 us), short
  // enough that a waiter whose holder was preempted parks soon: 128 spins cost multi_thread 14%
  // more CPU an iteration at 4 threads on 2 cores, and 2 threads 14% of their throughput
  // (docs/benchmarks.md, #18 seventh session).
  static constexpr int kSpins = 32;
  static constexpr long kParkTimeoutNs = 200'000;

  __attribute__((noinline)) void LockSlow() {
    for (int spins = 0; spins < kSpins; ++spins) {
      if (locked_.load(std::memory_order_relaxed) == 0 &&
          locked_.exchange(1, std::memory_order_acquire) == 0) {
        return;
      }
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    parked_.fetch_add(1, std::memory_order_seq_cst);
    while (locked_.exchange(1, std::memory_order_acquire) != 0) {
      Park();
      waking_.store(false, std::memory_order_relaxed);
    }
    parked_.fetch_sub(1, std::memory_order_relaxed);
    waking_.store(false, std::memory_order_relaxed);
  }

  // Sleeps while the lock word is 1 (at most kParkTimeoutNs).
  void Park() {
#if defined(__linux__)
    timespec timeout{0, kParkTimeoutNs};
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&locked_), FUTEX_WAIT_PRIVATE, 1, &timeout,
            nullptr, 0);
#else
    std::this_thread::yield();
#endif
  }

  // One wake in flight at a time: while a woken thread has not run yet, further unlocks do not
  // make the system call again.
  __attribute__((noinline)) void WakeOne() {
    if (waking_.exchange(true, std::memory_order_relaxed)) return;
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&locked_), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
#endif
  }

  std::atomic<std::uint32_t> locked_{0};
  std::atomic<std::uint32_t> parked_{0};  // threads in the parking loop of LockSlow
  std::atomic<bool> waking_{false};       // a wake was issued and its thread has not run yet
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
};
#endif

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  ABSL_ATTRIBUTE_ALWAYS_INLINE explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->Lock();
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Called once at start-up: deadlock detection doubles the cost of a lock/unlock pair and is
// only worth it while debugging.
inline void ConfigureMutexDebugging() {
#if defined(VRAMCACHE_ABSL_MUTEX) && !defined(VRAMCACHE_TSAN) && defined(NDEBUG)
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
}

}  // namespace vramcache
