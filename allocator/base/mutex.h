// The lock every layer uses, with Abseil's thread-safety annotations: a short spin lock
// (std::mutex under ThreadSanitizer, so its reports name a familiar lock).
// absl::Mutex is available with -DVRAMCACHE_ABSL_MUTEX, but not the default: Debian's Abseil
// build keeps per-lock deadlock bookkeeping (a graph-cycles id lookup and a thread-specific
// lookup on every Lock/Unlock, seen in perf even with detection set to kIgnore) that cost
// more than the rest of an allocation; and it is not built with TSan annotations, so under
// ThreadSanitizer absl::Mutex would be invisible.
#pragma once

#include <atomic>
#include <mutex>
#include <thread>

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
// A test-and-test-and-set lock that spins briefly, then yields. The allocator holds its lock
// only for bookkeeping (never across a call that can block), so waits are short, and an
// uncontended lock/unlock pair is two atomic operations instead of a futex-capable mutex's.
class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    LockSlow();
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() { locked_.store(false, std::memory_order_release); }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }

 private:
  void LockSlow() {
    for (int spins = 0;; ++spins) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
          __builtin_ia32_pause();
#endif
          ++spins;
        } else {
          std::this_thread::yield();
        }
      }
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }

  std::atomic<bool> locked_{false};
};
#endif

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
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
