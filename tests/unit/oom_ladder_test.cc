// The out-of-memory ladder against its interface: a scripted set of rungs records the order in
// which the ladder climbs them, for each way a request can end; the report built from facts;
// observers called with the report's numbers, one that throws not stopping the others.
#include "allocator/core/oom_ladder.h"

#include <deque>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

// Rungs that log their calls; each TryGrow takes the next scripted answer (nullopt: no memory).
class ScriptedRungs final : public OomLadderRungs {
 public:
  std::deque<std::optional<absl::StatusOr<void*>>> growths;
  bool releases = false;
  bool pending = false;
  std::vector<std::string> log;

  absl::Status ReleaseAboveSoftBudget(std::size_t growth) override {
    log.push_back("soft:" + std::to_string(growth));
    return absl::OkStatus();
  }
  std::optional<absl::StatusOr<void*>> TryGrow() override {
    log.push_back("grow");
    if (growths.empty()) return std::nullopt;
    const bool answered = growths.front().has_value();
    // The answer is rebuilt from its parts rather than copied: GCC 12 at -O3 reports a copy of
    // optional<StatusOr<void*>> as maybe-uninitialized (a false positive, -Werror).
    const absl::Status status = answered ? growths.front()->status() : absl::OkStatus();
    void* const ptr = answered && status.ok() ? **growths.front() : nullptr;
    growths.pop_front();
    if (!answered) return std::nullopt;
    if (!status.ok()) return absl::StatusOr<void*>(status);
    return absl::StatusOr<void*>(ptr);
  }
  absl::Status ReleaseCachedMemory(bool* released_any) override {
    log.push_back("release");
    *released_any = releases;
    return absl::OkStatus();
  }
  bool HasPendingFrees() override { return pending; }
  absl::Status SynchronizePendingFrees() override {
    log.push_back("sync");
    return absl::OkStatus();
  }
  void CountRetry() override { log.push_back("retry"); }
  absl::Status OutOfMemory() override {
    log.push_back("oom");
    return absl::ResourceExhaustedError("oom");
  }
  std::string Log() const { return absl::StrJoin(log, " "); }
};

void* const kServed = reinterpret_cast<void*>(0x1000);

TEST(OomLadderTest, FirstGrowthServes) {
  ScriptedRungs rungs;
  rungs.growths.push_back(absl::StatusOr<void*>(kServed));
  EXPECT_EQ(*ClimbOomLadder(rungs, false, false, 2 << 20), kServed);
  EXPECT_EQ(rungs.Log(), "grow");
}

TEST(OomLadderTest, SoftBudgetIsReleasedBeforeTheFirstGrowth) {
  ScriptedRungs rungs;
  rungs.growths.push_back(absl::StatusOr<void*>(kServed));
  EXPECT_TRUE(ClimbOomLadder(rungs, false, true, 20 << 20).ok());
  EXPECT_EQ(rungs.Log(), "soft:20971520 grow");
}

TEST(OomLadderTest, CaptureReportsAfterOneGrowth) {
  ScriptedRungs rungs;
  rungs.releases = true;
  rungs.pending = true;
  EXPECT_TRUE(absl::IsResourceExhausted(ClimbOomLadder(rungs, true, true, 2 << 20).status()));
  EXPECT_EQ(rungs.Log(), "grow oom");  // no soft budget, no release, no synchronization
}

TEST(OomLadderTest, EveryRungThenTheReport) {
  ScriptedRungs rungs;
  rungs.releases = true;
  rungs.pending = true;
  EXPECT_TRUE(absl::IsResourceExhausted(ClimbOomLadder(rungs, false, false, 2 << 20).status()));
  EXPECT_EQ(rungs.Log(), "grow release retry grow sync retry grow oom");
}

TEST(OomLadderTest, RungsWithNothingToDoAreNotRetried) {
  ScriptedRungs rungs;
  EXPECT_FALSE(ClimbOomLadder(rungs, false, false, 2 << 20).ok());
  EXPECT_EQ(rungs.Log(), "grow release oom");
}

TEST(OomLadderTest, ReleasedMemoryServesTheRetry) {
  ScriptedRungs rungs;
  rungs.releases = true;
  rungs.pending = true;
  rungs.growths = {std::nullopt, absl::StatusOr<void*>(kServed)};
  EXPECT_EQ(*ClimbOomLadder(rungs, false, false, 2 << 20), kServed);
  EXPECT_EQ(rungs.Log(), "grow release retry grow");
}

TEST(OomLadderTest, AnErrorOtherThanOutOfMemoryEndsTheClimb) {
  ScriptedRungs rungs;
  rungs.growths.push_back(absl::StatusOr<void*>(absl::FailedPreconditionError("shut down")));
  EXPECT_TRUE(absl::IsFailedPrecondition(ClimbOomLadder(rungs, false, false, 2 << 20).status()));
  EXPECT_EQ(rungs.Log(), "grow");
}

TEST(OomLadderTest, ReportFromFacts) {
  OomFacts facts;
  facts.device = 1;
  facts.requested_bytes = 100 << 20;
  facts.rounded_bytes = 100 << 20;
  facts.segment_bytes = 100 << 20;
  facts.device_total_bytes = std::size_t{4} << 30;
  facts.mem_info =
      DeviceMemInfo{.free_bytes = std::size_t{1} << 30, .total_bytes = std::size_t{8} << 30};
  facts.reserved_bytes = std::size_t{2} << 30;
  facts.device_error = absl::ResourceExhaustedError("out of memory");
  const OomReport report = BuildOomReport(facts);
  EXPECT_EQ(report.device, 1);
  EXPECT_EQ(report.device_total_bytes, std::size_t{8} << 30);  // the device's answer wins
  EXPECT_EQ(report.device_free_bytes, std::size_t{1} << 30);
  EXPECT_EQ(report.other_processes_bytes, std::size_t{5} << 30);
  EXPECT_EQ(report.device_error, "out of memory");
  EXPECT_EQ(report.verdict, JudgeOom(report));

  facts.mem_info = absl::UnavailableError("no answer");
  EXPECT_EQ(BuildOomReport(facts).device_total_bytes, std::size_t{4} << 30);
}

TEST(OomLadderTest, ObserversSeeTheReportAndOneThrowingStopsNoOther) {
  OomReport report;
  report.device = 2;
  report.requested_bytes = 10;
  report.allocated_bytes = 20;
  report.device_total_bytes = 1000;
  report.device_free_bytes = 5;
  std::vector<std::string> seen;
  std::vector<OomObserverFn> observers = {
      [](int, std::size_t, std::size_t, std::size_t, std::size_t) {
        throw std::runtime_error("boom");
      },
      [&](int device, std::size_t requested, std::size_t allocated, std::size_t limit,
          std::size_t free) {
        seen.push_back(
            absl::StrJoin({device, static_cast<int>(requested), static_cast<int>(allocated),
                           static_cast<int>(limit), static_cast<int>(free)},
                          ","));
      }};
  EXPECT_EQ(NotifyOomObservers(observers, report), "; an out-of-memory observer threw: boom");
  report.budget_bytes = 300;  // the limit is the budget when there is one
  EXPECT_EQ(NotifyOomObservers({observers[1]}, report), "");
  EXPECT_EQ(absl::StrJoin(seen, " "), "2,10,20,1000,5 2,10,20,300,5");
}

}  // namespace
}  // namespace vramcache
