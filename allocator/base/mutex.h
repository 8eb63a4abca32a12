// The lock every layer uses: a std::mutex with Abseil's thread-safety annotations.
// absl::Mutex is available with -DVRAMCACHE_ABSL_MUTEX, but not the default: Debian's Abseil
// build keeps per-lock deadlock bookkeeping (a graph-cycles id lookup and a thread-specific
// lookup on every Lock/Unlock, seen in perf even with detection set to kIgnore) that cost
// more than the rest of an allocation; and it is not built with TSan annotations, so under
// ThreadSanitizer absl::Mutex would be invisible.
#pragma once

#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace vramcache {

#if defined(VRAMCACHE_TSAN) || !defined(VRAMCACHE_ABSL_MUTEX)
class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) { return mu_.try_lock(); }

 private:
  std::mutex mu_;
};
#else
using Mutex = absl::Mutex;
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
