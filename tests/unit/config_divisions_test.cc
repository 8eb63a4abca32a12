// PyTorch's roundup_power2_divisions on its own: PyTorch's reading of single numbers and lists,
// what is rejected, and the round trip FormatDivisions -> ReadDivisions.
#include "allocator/api/config_divisions.h"

#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "allocator/api/config_syntax.h"
#include "gtest/gtest.h"

namespace vramcache::config_values {
namespace {

constexpr std::size_t kFirstIntervalLog2 = 20;  // 1 MiB: the first of PyTorch's 16 intervals

absl::StatusOr<std::vector<std::size_t>> Read(const std::string& value) {
  // The entries view the text: it must outlive them.
  const std::string text = "roundup_power2_divisions:" + value;
  absl::StatusOr<std::vector<ConfigEntry>> entries = SplitConfigText("TEST_VAR", text);
  EXPECT_TRUE(entries.ok()) << entries.status();
  if (!entries.ok()) return entries.status();
  return ReadDivisions(entries->front());
}

// The divisions of PyTorch's interval `i` (0 for [1 MiB, 2 MiB) and below, 15 for 32 GiB and up).
std::size_t Interval(const std::vector<std::size_t>& expanded, std::size_t i) {
  return expanded.empty() ? 0 : expanded[kFirstIntervalLog2 + i];
}

TEST(ConfigDivisionsTest, ASingleNumberAppliesToEverySize) {
  absl::StatusOr<std::vector<std::size_t>> read = Read("4");
  ASSERT_TRUE(read.ok()) << read.status();
  ASSERT_EQ(read->size(), 64u);
  for (std::size_t divisions : *read) EXPECT_EQ(divisions, 4u);
  EXPECT_EQ(FormatDivisions(*read), "4");
}

TEST(ConfigDivisionsTest, AListSetsIntervalsAsPytorchDoes) {
  absl::StatusOr<std::vector<std::size_t>> read = Read("[256:1,512:2,1024:4,>:8]");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ((*read)[0], 1u);  // the first bound also covers every smaller size
  EXPECT_EQ(Interval(*read, 0), 1u);
  EXPECT_EQ(Interval(*read, 8), 1u);   // 256 MiB
  EXPECT_EQ(Interval(*read, 9), 2u);   // 512 MiB
  EXPECT_EQ(Interval(*read, 10), 4u);  // 1 GiB
  EXPECT_EQ(Interval(*read, 11), 8u);  // ">" everything after
  EXPECT_EQ((*read)[63], 8u);
  EXPECT_EQ(FormatDivisions(*read), "[256:1,512:2,1024:4,>:8]");
}

TEST(ConfigDivisionsTest, AllZeroIsOffAndPrintsNothing) {
  absl::StatusOr<std::vector<std::size_t>> read = Read("[1:0,>:0]");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->empty());
  EXPECT_EQ(FormatDivisions({}), "");
}

TEST(ConfigDivisionsTest, RejectsWhatPytorchRejects) {
  EXPECT_EQ(Read("3").status().message(), "a single number of divisions must be a power of two");
  EXPECT_EQ(Read("[64:3]").status().message(),
            "divisions \"3\" (for \"64\") must be 0 or a power of two");
  EXPECT_EQ(Read("[3:2]").status().message(),
            "bound \"3\" must be a power-of-two number of MiB, or >");
}

TEST(ConfigDivisionsTest, FormattedDivisionsReadBackTheSame) {
  std::mt19937_64 rng(5);
  const std::size_t choices[] = {0, 1, 2, 4, 8, 16};
  for (int i = 0; i < 3000; ++i) {
    // A random list of PyTorch's form: increasing bounds, then maybe ">".
    std::string list = "[";
    for (std::size_t bound = 0; bound < 16; ++bound) {
      if (rng() % 3 != 0) continue;
      if (list.size() > 1) list += ",";
      list += std::to_string(std::size_t{1} << bound) + ":" + std::to_string(choices[rng() % 6]);
    }
    if (rng() % 2 == 0 || list.size() == 1) {
      if (list.size() > 1) list += ",";
      list += ">:" + std::to_string(choices[rng() % 6]);
    }
    list += "]";
    absl::StatusOr<std::vector<std::size_t>> read = Read(list);
    ASSERT_TRUE(read.ok()) << list << ": " << read.status();
    const std::string written = FormatDivisions(*read);
    if (written.empty()) {
      EXPECT_TRUE(read->empty()) << list;
      continue;
    }
    absl::StatusOr<std::vector<std::size_t>> again = Read(written);
    ASSERT_TRUE(again.ok()) << list << " -> " << written << ": " << again.status();
    EXPECT_EQ(*again, *read) << list << " -> " << written;
  }
}

}  // namespace
}  // namespace vramcache::config_values
