// vramcache-replay --page-breakdown: at the most pages in use, the pages split exactly into
// requested bytes, rounding, held blocks and the free bytes of in-use pages, per pool; a
// hand-made trace gives its known numbers, and the tool prints the table only in VMM mode.
#include "bench/replay/page_breakdown.h"

#include <string>

#include "allocator/core/config.h"
#include "allocator/trace/trace_builder.h"
#include "allocator/trace/trace_writer.h"
#include "bench/replay/replay_tool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/replay_tool_run.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;

// Three 3 MiB blocks one after another in a large range (first fit: 9 MiB over 5 pages, the
// fifth half free) and a 1000-byte one in a small segment (a 1 KiB class, one page); the middle
// block is freed last, then the rest.
Trace HandTrace() {
  TraceBuilder builder("hand");
  EXPECT_TRUE(builder.Allocate(0xa, 3 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xd, 1000, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xb, 3 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xc, 3 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Free(0xa, 3 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Free(0xc, 3 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Free(0xd, 1000, {}).ok());
  EXPECT_TRUE(builder.Free(0xb, 3 * kMiB, {}).ok());
  return std::move(builder).Finish();
}

ReplayOptions VmmOptions(int repeat) {
  ReplayOptions options;
  options.config.vmm = VmmMode::kOn;
  options.config.check_invariants = false;
  options.repeat = repeat;
  return options;
}

TEST(PageBreakdownTest, HandTraceHasItsKnownPagesAndTheyAddUp) {
  absl::StatusOr<PageBreakdown> b = MeasurePageBreakdown(HandTrace(), VmmOptions(2));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->granularity, 2 * kMiB);
  EXPECT_EQ(b->most_pages, 6u);  // 5 large, 1 small
  EXPECT_EQ(b->small_pages, 1u);
  EXPECT_EQ(b->pass, 1);  // the second pass reaches the same, not more
  EXPECT_EQ(b->event, 4u);
  EXPECT_EQ(b->requested_live, 9 * kMiB + 1000);
  EXPECT_EQ(b->peak_requested_bytes, 9 * kMiB + 1000);
  EXPECT_EQ(b->rounding, 24u);
  EXPECT_EQ(b->small_rounding, 24u);
  EXPECT_EQ(b->held_not_allocated, 0u);
  EXPECT_EQ(b->large_hole_bytes, kMiB);  // the rest of the fifth page
  EXPECT_EQ(b->large_holes, 1u);
  EXPECT_EQ(b->small_hole_bytes, 2 * kMiB - 1024);
  EXPECT_EQ(b->small_holes, 1u);
  EXPECT_EQ(b->most_pages * b->granularity, b->requested_live + b->rounding +
                                                b->held_not_allocated + b->large_hole_bytes +
                                                b->small_hole_bytes);
  EXPECT_EQ(b->peak_reserved_bytes, 12 * kMiB);
  ASSERT_EQ(b->holes.size(), 2u);
  EXPECT_TRUE(b->holes[0].small);  // most in-use bytes first
  EXPECT_EQ(b->holes[1].left_block, 3 * kMiB);
  EXPECT_EQ(b->holes[1].right_block, 0u);
}

TEST(PageBreakdownTest, ToolPrintsOneRowPerTraceInVmmModeOnly) {
  const std::string path = ::testing::TempDir() + "/page_breakdown_hand.csv";
  ASSERT_TRUE(WriteRmmCsvFile(HandTrace(), path).ok());
  const ToolRun run = RunTool({path, "--page-breakdown", "--repeat", "1"});
  ASSERT_EQ(run.status, kExitOk) << run.err;
  EXPECT_THAT(run.out, HasSubstr("| page_breakdown_hand | 9.0 | 12 (1, 4) |"));
  EXPECT_THAT(run.out, HasSubstr("largest holes"));
  EXPECT_EQ(RunTool({path, "--page-breakdown", "--json"}).status, kExitUsage);
  EXPECT_EQ(RunTool({path, "--page-breakdown", "--mode", "segments"}).status, kExitUsage);
  EXPECT_EQ(RunTool({path, "--page-breakdown", "--plan-bound"}).status, kExitUsage);
}

}  // namespace
}  // namespace vramcache
