// Time as the policy sees it: passed in, never read directly, so tests can control it.
#pragma once

#include <atomic>
#include <cstdint>

namespace vramcache {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::int64_t NowNanos() = 0;
};

// A logical clock: every call advances by one tick. Enough for LRU ordering and deterministic
// replays; the API layer passes a real steady clock where wall time matters.
class TickClock final : public Clock {
 public:
  std::int64_t NowNanos() override { return ticks_.fetch_add(1, std::memory_order_relaxed) + 1; }

 private:
  std::atomic<std::int64_t> ticks_{0};
};

}  // namespace vramcache
