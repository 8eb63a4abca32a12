// The statistics ledger's transitions (stats_ledger.h); the per-block ones are inline there.
#include "allocator/core/stats_ledger.h"

namespace vramcache {

void StatsLedger::SettleVmmSplitStats() {
  SettleVmmSplitStats(true);
  SettleVmmSplitStats(false);
}

}  // namespace vramcache
