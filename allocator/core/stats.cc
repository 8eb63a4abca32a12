// Reset rules and flattening of DeviceStats, derived from the field list in stats_fields.h.
#include "allocator/core/stats.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace vramcache {

void DeviceStats::ResetPeak() {
#define VRAMCACHE_RESET_POOL(name) \
  for (Stat & s : name.by_pool) s.ResetPeak();
  VRAMCACHE_POOL_STATS(VRAMCACHE_RESET_POOL)
#undef VRAMCACHE_RESET_POOL
#define VRAMCACHE_RESET_SINGLE(name) name.ResetPeak();
  VRAMCACHE_SINGLE_STATS(VRAMCACHE_RESET_SINGLE)
#undef VRAMCACHE_RESET_SINGLE
}

void DeviceStats::ResetAccumulated() {
#define VRAMCACHE_RESET_POOL(name) \
  for (Stat & s : name.by_pool) s.ResetAccumulated();
  VRAMCACHE_POOL_STATS(VRAMCACHE_RESET_POOL)
#undef VRAMCACHE_RESET_POOL
#define VRAMCACHE_RESET_SINGLE(name) name.ResetAccumulated();
  VRAMCACHE_SINGLE_STATS(VRAMCACHE_RESET_SINGLE)
#undef VRAMCACHE_RESET_SINGLE
#define VRAMCACHE_RESET_COUNTER(name) name = 0;
  VRAMCACHE_EVENT_COUNTERS(VRAMCACHE_RESET_COUNTER)
#undef VRAMCACHE_RESET_COUNTER
}

void DeviceStats::AddChanges(const DeviceStats& changes) {
  auto add = [](Stat& into, const Stat& change) {
    into.current += change.current;
    into.allocated += change.allocated;
  };
#define VRAMCACHE_ADD_POOL(name) \
  for (int p = 0; p < kNumPoolStats; ++p) add(name.by_pool[p], changes.name.by_pool[p]);
  VRAMCACHE_POOL_STATS(VRAMCACHE_ADD_POOL)
#undef VRAMCACHE_ADD_POOL
#define VRAMCACHE_ADD_SINGLE(name) add(name, changes.name);
  VRAMCACHE_SINGLE_STATS(VRAMCACHE_ADD_SINGLE)
#undef VRAMCACHE_ADD_SINGLE
#define VRAMCACHE_ADD_COUNTER(name) name += changes.name;
  VRAMCACHE_EVENT_COUNTERS(VRAMCACHE_ADD_COUNTER)
#undef VRAMCACHE_ADD_COUNTER
}

namespace {
void AppendStat(std::vector<std::pair<std::string, std::int64_t>>& out, const std::string& prefix,
                const Stat& s) {
  out.emplace_back(absl::StrCat(prefix, ".current"), s.current);
  out.emplace_back(absl::StrCat(prefix, ".peak"), s.peak);
  out.emplace_back(absl::StrCat(prefix, ".allocated"), s.allocated);
  out.emplace_back(absl::StrCat(prefix, ".freed"), s.freed());
}
}  // namespace

std::vector<std::pair<std::string, std::int64_t>> DeviceStats::ToKeyValues() const {
  std::vector<std::pair<std::string, std::int64_t>> out;
#define VRAMCACHE_FLATTEN_POOL(name)                                               \
  for (int p = 0; p < kNumPoolStats; ++p) {                                        \
    AppendStat(out, absl::StrCat(#name, ".", kPoolStatNames[p]), name.by_pool[p]); \
  }
  VRAMCACHE_POOL_STATS(VRAMCACHE_FLATTEN_POOL)
#undef VRAMCACHE_FLATTEN_POOL
#define VRAMCACHE_FLATTEN_SINGLE(name) AppendStat(out, #name, name);
  VRAMCACHE_SINGLE_STATS(VRAMCACHE_FLATTEN_SINGLE)
#undef VRAMCACHE_FLATTEN_SINGLE
#define VRAMCACHE_FLATTEN_COUNTER(name) out.emplace_back(#name, name);
  VRAMCACHE_EVENT_COUNTERS(VRAMCACHE_FLATTEN_COUNTER)
  VRAMCACHE_GAUGES(VRAMCACHE_FLATTEN_COUNTER)
#undef VRAMCACHE_FLATTEN_COUNTER
  std::sort(out.begin(), out.end());
  return out;
}

std::string DeviceStats::ToJson() const {
  std::vector<std::string> parts;
  for (const auto& [key, value] : ToKeyValues()) {
    parts.push_back(absl::StrCat("\"", key, "\":", value));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

}  // namespace vramcache
