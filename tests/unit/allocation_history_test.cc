// The allocation history against its interface: off, it records nothing; on, it keeps the
// newest entries, stamped by the clock in order; a damaged guard band's report gains the
// newest allocation entry of its block, and any other status passes unchanged; every action
// has PyTorch's name.
#include "allocator/core/allocation_history.h"

#include <string>
#include <vector>

#include "allocator/core/clock.h"
#include "allocator/core/config.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

AllocatorConfig Recording(std::size_t capacity) {
  AllocatorConfig config;
  config.record_history = true;
  config.history_capacity = capacity;
  return config;
}

TEST(AllocationHistoryTest, OffItRecordsNothing) {
  TickClock clock;
  AllocationHistory history(AllocatorConfig{}, &clock);
  history.Record(TraceAction::kAlloc, 0x1000, 512, /*stream=*/0);
  EXPECT_TRUE(history.OldestFirst().empty());
  EXPECT_EQ(clock.NowNanos(), 1);  // the clock was not even read
}

TEST(AllocationHistoryTest, ItKeepsTheNewestEntriesStampedInOrder) {
  TickClock clock;
  AllocationHistory history(Recording(2), &clock);
  history.Record(TraceAction::kSegmentAlloc, 0x1000, 2 << 20, /*stream=*/5);
  history.Record(TraceAction::kAlloc, 0x1000, 512, /*stream=*/5);
  history.Record(TraceAction::kFreeRequested, 0x1000, 512, /*stream=*/5);
  const std::vector<TraceEntry> entries = history.OldestFirst();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].action, TraceAction::kAlloc);
  EXPECT_EQ(entries[1].action, TraceAction::kFreeRequested);
  EXPECT_LT(entries[0].time_ns, entries[1].time_ns);
  EXPECT_EQ(entries[1].stream, 5u);
  EXPECT_EQ(entries[1].size, 512u);
}

TEST(AllocationHistoryTest, ADamagedBandNamesTheNewestAllocationOfItsBlock) {
  TickClock clock;
  AllocationHistory history(Recording(10), &clock);
  history.Record(TraceAction::kAlloc, 0x1000, 512, /*stream=*/3);
  history.Record(TraceAction::kAlloc, 0x2000, 512, /*stream=*/3);
  history.Record(TraceAction::kAlloc, 0x1000, 512, /*stream=*/4);  // the same block, reused
  const absl::Status named = history.NameAllocation(absl::DataLossError("band damaged"), 0x1000);
  EXPECT_TRUE(absl::IsDataLoss(named));
  const std::string message(named.message());
  EXPECT_EQ(message.rfind("band damaged; allocated at t=", 0), 0u) << message;
  EXPECT_NE(message.find("on stream 0x4 (history entry 3 of 3)"), std::string::npos) << message;
}

TEST(AllocationHistoryTest, AnyOtherStatusPassesUnchanged) {
  TickClock clock;
  AllocationHistory history(Recording(10), &clock);
  history.Record(TraceAction::kAlloc, 0x1000, 512, /*stream=*/3);
  EXPECT_TRUE(history.NameAllocation(absl::OkStatus(), 0x1000).ok());
  const absl::Status other = absl::InternalError("device error");
  EXPECT_EQ(history.NameAllocation(other, 0x1000), other);
  const absl::Status unknown_block = absl::DataLossError("band damaged");
  EXPECT_EQ(history.NameAllocation(unknown_block, 0x9000), unknown_block);
  AllocationHistory off(AllocatorConfig{}, &clock);
  EXPECT_EQ(off.NameAllocation(unknown_block, 0x1000), unknown_block);
}

TEST(AllocationHistoryTest, EveryActionHasPyTorchsName) {
  EXPECT_STREQ(TraceActionName(TraceAction::kAlloc), "alloc");
  EXPECT_STREQ(TraceActionName(TraceAction::kFreeRequested), "free_requested");
  EXPECT_STREQ(TraceActionName(TraceAction::kFreeCompleted), "free_completed");
  EXPECT_STREQ(TraceActionName(TraceAction::kSegmentAlloc), "segment_alloc");
  EXPECT_STREQ(TraceActionName(TraceAction::kSegmentFree), "segment_free");
  EXPECT_STREQ(TraceActionName(TraceAction::kOom), "oom");
}

}  // namespace
}  // namespace vramcache
