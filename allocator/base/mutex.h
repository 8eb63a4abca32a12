// The lock every layer uses. absl::Mutex normally (with deadlock detection only in debug
// builds); std::mutex under ThreadSanitizer, because Debian's Abseil is not built with TSan
// annotations and absl::Mutex would be invisible to it.
#pragma once

#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace vramcache {

#if defined(VRAMCACHE_TSAN)
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
#if !defined(VRAMCACHE_TSAN) && defined(NDEBUG)
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
}

}  // namespace vramcache
