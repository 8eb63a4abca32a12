// The out-of-memory verdicts, each from a constructed scenario, and the numbers in the text.
#include "allocator/core/oom_report.h"

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
