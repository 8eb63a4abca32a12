// The offline planner behind vramcache-replay --plan-bound: layouts are valid (recounted here
// pair by pair, apart from the planner's own check), a hand-made case reaches its known optimum,
// page counts and bounds are exact on small cases, and the repeating step of a synthetic
// training loop is found.
#include "bench/replay/plan_bound.h"

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "allocator/core/config.h"
#include "allocator/trace/trace_builder.h"
#include "allocator/trace/trace_writer.h"
#include "bench/replay/replay_tool.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

// Every pair of blocks that overlaps in time is disjoint in address (laid-out sizes).
bool PairwiseDisjoint(const std::vector<PlanBlock>& blocks,
                      const std::vector<std::uint64_t>& offsets) {
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    for (std::size_t j = i + 1; j < blocks.size(); ++j) {
      const bool in_time = blocks[i].alloc < blocks[j].free && blocks[j].alloc < blocks[i].free;
      const bool in_address = offsets[i] < offsets[j] + PlanSize(blocks[j].size) &&
                              offsets[j] < offsets[i] + PlanSize(blocks[i].size);
      if (in_time && in_address) return false;
    }
  }
  return true;
}

const PlanOrder kOrders[] = {PlanOrder::kSizeDescending, PlanOrder::kLifetimeDescending,
                             PlanOrder::kAreaDescending, PlanOrder::kAllocationOrder};

TEST(PlanBoundTest, RandomLayoutsAreValid) {
  std::mt19937_64 random(19);
  for (int round = 0; round < 20; ++round) {
    std::vector<PlanBlock> blocks;
    for (int i = 0; i < 150; ++i) {
      const std::size_t alloc = random() % 400;
      const std::size_t free = alloc + 1 + random() % 100;
      const std::uint64_t size =
          random() % 2 == 0 ? 1 + random() % (64 * 1024) : 1 + random() % (5 * kMiB);
      blocks.push_back(PlanBlock{size, alloc, free});
    }
    for (const PlanOrder order : kOrders) {
      for (const bool page_align : {false, true}) {
        const std::vector<std::uint64_t> offsets = PlanFirstFit(blocks, {order, page_align});
        ASSERT_EQ(offsets.size(), blocks.size());
        EXPECT_TRUE(PairwiseDisjoint(blocks, offsets)) << PlanOrderName(order);
        EXPECT_TRUE(CheckPlanLayout(blocks, offsets).ok());
        for (std::size_t i = 0; i < blocks.size(); ++i) {
          EXPECT_EQ(offsets[i] % kPlanAlignment, 0u);
          if (page_align && PlanSize(blocks[i].size) >= kPlanPageBytes) {
            EXPECT_EQ(offsets[i] % kPlanPageBytes, 0u);
          }
        }
        EXPECT_GE(PeakPagesInUse(blocks, offsets), LowerBoundPages(blocks));
      }
    }
  }
}

TEST(PlanBoundTest, CheckFindsAnOverlap) {
  const std::vector<PlanBlock> blocks = {{kMiB, 0, 10}, {kMiB, 5, 15}};
  EXPECT_FALSE(CheckPlanLayout(blocks, {0, kMiB / 2}).ok());
  EXPECT_TRUE(CheckPlanLayout(blocks, {0, kMiB}).ok());
  // Freed at 10, the first block's bytes are the second's from 10 on.
  EXPECT_TRUE(CheckPlanLayout({{kMiB, 0, 10}, {kMiB, 10, 15}}, {0, 0}).ok());
}

TEST(PlanBoundTest, PagesAndBoundsAreExact) {
  // A block of 3 MiB at 1 MiB touches pages 0 and 1; with one of 1 MiB at 0, two pages.
  const std::vector<PlanBlock> blocks = {{3 * kMiB, 0, 10}, {kMiB, 0, 4}, {kMiB, 6, 8}};
  EXPECT_EQ(PeakPagesInUse(blocks, {kMiB, 0, 4 * kMiB}), 3u);  // at 6: pages 0, 1 and 2
  EXPECT_EQ(PeakPagesInUse(blocks, {kMiB, 0, 0}), 2u);
  EXPECT_EQ(PeakRequestedBytes(blocks), 4 * kMiB);
  EXPECT_EQ(LowerBoundPages(blocks), 2u);
}

TEST(PlanBoundTest, HandMadeCaseReachesItsOptimum) {
  // A long-lived 1 MiB block beside two that take turns: 1 MiB then 2 MiB. At most 3 MiB live,
  // so 2 pages is the optimum, and allocation order (what an online first fit does: B after A
  // at 1 MiB, C after B's free at 1 MiB too, touching 2 pages) reaches it as well; a 3-page
  // layout exists (C at 2 MiB + 512 B).
  const std::vector<PlanBlock> blocks = {
      {kMiB, 0, 10},      // A
      {kMiB, 1, 5},       // B
      {2 * kMiB, 5, 10},  // C
      {kMiB, 10, 12},     // D, after everything: any offset works
  };
  EXPECT_EQ(PeakPagesInUse(blocks, {0, kMiB, 2 * kMiB + 512, 0}), 3u);
  absl::StatusOr<WindowPlan> plan = PlanWindow(blocks);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->peak_requested_bytes, 3 * kMiB);
  EXPECT_EQ(plan->lower_bound_pages, 2u);
  EXPECT_EQ(plan->plan_pages, 2u);
  EXPECT_DOUBLE_EQ(plan->utilization(), 0.75);

  // Eight 2 MiB blocks, each pair (2k, 2k + 1) live together, the pairs one after another:
  // size order stacks each pair at 0 and 2 MiB, two pages, the optimum.
  std::vector<PlanBlock> pairs;
  for (std::size_t k = 0; k < 4; ++k) {
    pairs.push_back({2 * kMiB, 10 * k, 10 * k + 10});
    pairs.push_back({2 * kMiB, 10 * k + 2, 10 * k + 8});
  }
  const std::vector<std::uint64_t> offsets =
      PlanFirstFit(pairs, {PlanOrder::kSizeDescending, false});
  EXPECT_EQ(PeakPagesInUse(pairs, offsets), 2u);
}

// A trace: parameters, then `steps` identical steps (allocate activations, free them in
// reverse), then the parameters freed.
Trace TrainingLikeTrace(int steps) {
  TraceBuilder builder("synthetic");
  const TraceEventOrigin origin;
  std::uint64_t pointer = 0x1000;
  std::vector<std::uint64_t> parameters;
  for (int i = 0; i < 5; ++i) {
    parameters.push_back(pointer);
    EXPECT_TRUE(builder.Allocate(pointer, 4 * kMiB + 1000 * i, origin).ok());
    pointer += 0x100;
  }
  for (int step = 0; step < steps; ++step) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> live;
    for (int i = 0; i < 7; ++i) {
      const std::uint64_t size = (i + 1) * 300 * 1024 + 17;
      EXPECT_TRUE(builder.Allocate(pointer, size, origin).ok());
      live.emplace_back(pointer, size);
      pointer += 0x100;
    }
    for (auto it = live.rbegin(); it != live.rend(); ++it) {
      EXPECT_TRUE(builder.Free(it->first, it->second, origin).ok());
    }
  }
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(builder.Free(parameters[i], 4 * kMiB + 1000 * i, origin).ok());
  }
  return std::move(builder).Finish();
}

TEST(PlanBoundTest, FindsTheStep) {
  const Trace trace = TrainingLikeTrace(3);
  const StepInfo step = DetectStep(trace);
  ASSERT_TRUE(step.found);
  EXPECT_EQ(step.period, 14u);
  EXPECT_EQ(step.copies, 3u);
  EXPECT_EQ(step.start, 5u);

  absl::StatusOr<PlanBoundReport> report = PlanBound(trace);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->events, trace.events.size());
  // Peak: parameters + the 7 activations.
  std::uint64_t expected = 0;
  for (int i = 0; i < 5; ++i) expected += 4 * kMiB + 1000 * i;
  for (int i = 0; i < 7; ++i) expected += (i + 1) * 300 * 1024 + 17;
  EXPECT_EQ(report->pass.peak_requested_bytes, expected);
  EXPECT_GE(report->pass.plan_pages, report->pass.lower_bound_pages);
  EXPECT_EQ(report->steps.peak_requested_bytes, expected);

  // One step repeats nothing.
  EXPECT_FALSE(DetectStep(TrainingLikeTrace(1)).found);
}

TEST(PlanBoundTest, ReplayToolPrintsTheTable) {
  const std::string path = ::testing::TempDir() + "/plan_bound_training_like.csv";
  ASSERT_TRUE(WriteRmmCsvFile(TrainingLikeTrace(3), path).ok());
  std::string out;
  std::string err;
  EXPECT_EQ(RunReplayTool({"--plan-bound", path}, ReplayToolEnvironment{}, &out, &err), kExitOk)
      << err;
  EXPECT_NE(out.find("| plan_bound_training_like | 52 | 14 x 3 (5) |"), std::string::npos) << out;
  out.clear();
  err.clear();
  EXPECT_EQ(RunReplayTool({"--plan-bound", "--json", path}, ReplayToolEnvironment{}, &out, &err),
            kExitUsage);
}

}  // namespace
}  // namespace vramcache
