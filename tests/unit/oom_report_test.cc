// The out-of-memory verdicts, each from a constructed scenario, and the numbers in the text.
#include "allocator/core/oom_report.h"

#include "allocator/core/config.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

OomReport Base() {
  OomReport r;
  r.device = 0;
  r.requested_bytes = 100 << 20;
  r.rounded_bytes = 100 << 20;
  r.segment_bytes = 100 << 20;
  r.device_total_bytes = std::size_t{8} << 30;
  return r;
}

TEST(OomReportTest, BudgetReached) {
  OomReport r = Base();
  r.budget_bytes = std::size_t{1} << 30;
  r.reserved_bytes = std::size_t{1} << 30;
  r.allocated_bytes = std::size_t{1} << 30;
  r.device_free_bytes = std::size_t{7} << 30;
  r.verdict = JudgeOom(r);
  EXPECT_EQ(r.verdict, OomVerdict::kBudgetReached);
  EXPECT_NE(r.ToString().find("budget of 1.00 GiB is reached"), std::string::npos) << r.ToString();
}

TEST(OomReportTest, Fragmentation) {
  OomReport r = Base();
  r.reserved_bytes = std::size_t{8} << 30;
  r.allocated_bytes = std::size_t{7} << 30;
  r.cached_free_bytes = std::size_t{1} << 30;
  r.largest_free_block_bytes = 20 << 20;
  r.verdict = JudgeOom(r);
  EXPECT_EQ(r.verdict, OomVerdict::kFragmentation);
  const std::string text = r.ToString();
  EXPECT_NE(text.find("largest free block is 20.00 MiB"), std::string::npos) << text;
  EXPECT_NE(text.find("Tried to allocate 100.00 MiB"), std::string::npos) << text;
}

TEST(OomReportTest, DeviceFull) {
  OomReport r = Base();
  r.reserved_bytes = (std::size_t{8} << 30) - (50 << 20);
  r.allocated_bytes = r.reserved_bytes;
  r.device_free_bytes = 50 << 20;
  r.verdict = JudgeOom(r);
  EXPECT_EQ(r.verdict, OomVerdict::kDeviceFull);
  EXPECT_NE(r.ToString().find("of which 50.00 MiB is free"), std::string::npos);
}

TEST(OomReportTest, OtherProcesses) {
  OomReport r = Base();
  r.reserved_bytes = std::size_t{1} << 30;
  r.allocated_bytes = std::size_t{1} << 30;
  r.device_free_bytes = 10 << 20;
  r.other_processes_bytes = r.device_total_bytes - r.reserved_bytes - r.device_free_bytes;
  r.verdict = JudgeOom(r);
  EXPECT_EQ(r.verdict, OomVerdict::kOtherProcesses);
  EXPECT_NE(r.ToString().find("other processes hold"), std::string::npos) << r.ToString();
}

// The reviewer's case: a 2 GiB request on an empty 1 GiB device is not "the device is full".
TEST(OomReportTest, RequestLargerThanTheDevice) {
  OomReport r = Base();
  r.requested_bytes = r.rounded_bytes = r.segment_bytes = std::size_t{2} << 30;
  r.device_total_bytes = r.device_free_bytes = std::size_t{1} << 30;
  r.verdict = JudgeOom(r);
  EXPECT_EQ(r.verdict, OomVerdict::kTooLarge);
  EXPECT_NE(r.ToString().find("larger than the device: it needs 2.00 GiB, more than the device's "
                              "total of 1.00 GiB"),
            std::string::npos)
      << r.ToString();
}

TEST(OomReportTest, RequestLargerThanTheBudget) {
  OomReport r = Base();
  r.budget_bytes = 64 << 20;
  r.device_free_bytes = r.device_total_bytes;
  r.verdict = JudgeOom(r);
  EXPECT_EQ(r.verdict, OomVerdict::kTooLarge);
  EXPECT_NE(r.ToString().find("needs 100.00 MiB, more than the budget of 64.00 MiB"),
            std::string::npos)
      << r.ToString();
}

// What each verdict's text claims, as a condition on the numbers of its report.
bool ClaimHolds(const OomReport& r) {
  const std::size_t need = OomNeededBytes(r);
  switch (r.verdict) {
    case OomVerdict::kTooLarge:
      return r.rounded_bytes > r.device_total_bytes ||
             (r.budget_bytes > 0 && r.rounded_bytes > r.budget_bytes);
    case OomVerdict::kBudgetReached:
      return r.budget_bytes > 0 && r.reserved_bytes + need > r.budget_bytes;
    case OomVerdict::kFragmentation:
      return r.cached_free_bytes + r.pending_free_bytes >= r.rounded_bytes &&
             r.largest_free_block_bytes < r.rounded_bytes;
    case OomVerdict::kDeviceFull:
      return r.device_free_bytes < need;
    case OomVerdict::kOtherProcesses:
      return r.device_free_bytes < need && r.other_processes_bytes >= r.rounded_bytes;
    case OomVerdict::kDeviceRefused:
      return r.device_free_bytes >= need;
  }
  return false;
}

// Every combination of a few values per number (consistent ones: what the device reports adds
// up, the largest block is part of the cache): the verdict's claim follows from the report.
TEST(OomReportTest, EveryVerdictFollowsFromItsNumbers) {
  const std::size_t total = 1024 * kMiB;
  int checked = 0;
  for (std::size_t rounded : {2 * kMiB, 100 * kMiB, 1000 * kMiB, 2048 * kMiB}) {
    for (std::size_t segment : {std::size_t{0}, rounded, rounded + 20 * kMiB}) {
      for (std::size_t budget : {std::size_t{0}, 50 * kMiB, 512 * kMiB, 4096 * kMiB}) {
        for (std::size_t reserved : {std::size_t{0}, 40 * kMiB, 500 * kMiB, 1000 * kMiB}) {
          for (std::size_t other : {std::size_t{0}, 10 * kMiB, total - reserved}) {
            for (std::size_t cached : {std::size_t{0}, reserved / 2, reserved}) {
              for (std::size_t largest : {std::size_t{0}, cached / 4, cached}) {
                for (std::size_t pending : {std::size_t{0}, 200 * kMiB}) {
                  if (reserved + other > total) continue;
                  OomReport r = Base();
                  r.device_total_bytes = total;
                  r.requested_bytes = r.rounded_bytes = rounded;
                  r.segment_bytes = segment;
                  r.budget_bytes = budget;
                  r.reserved_bytes = reserved;
                  r.allocated_bytes = reserved - cached;
                  r.other_processes_bytes = other;
                  r.device_free_bytes = total - reserved - other;
                  r.cached_free_bytes = cached;
                  r.largest_free_block_bytes = largest;
                  r.pending_free_bytes = pending;
                  r.verdict = JudgeOom(r);
                  EXPECT_TRUE(ClaimHolds(r)) << r.ToJson() << "\n" << r.ToString();
                  ++checked;
                }
              }
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(OomReportTest, JsonHasEveryNumber) {
  OomReport r = Base();
  r.verdict = OomVerdict::kDeviceFull;
  const std::string json = r.ToJson();
  EXPECT_NE(json.find("\"requested_bytes\":104857600"), std::string::npos) << json;
  EXPECT_NE(json.find("\"verdict\":\"device_full\""), std::string::npos) << json;
}

TEST(OomReportTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(512), "512 bytes");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(20 << 20), "20.00 MiB");
  EXPECT_EQ(FormatBytes(std::size_t{3} << 30), "3.00 GiB");
}

}  // namespace
}  // namespace vramcache
