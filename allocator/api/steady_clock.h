// The real clock the API layer hands to the policy core (which never reads time itself).
#pragma once

#include <chrono>

#include "allocator/core/clock.h"

namespace vramcache {

class SteadyClock final : public Clock {
 public:
  std::int64_t NowNanos() override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace vramcache
