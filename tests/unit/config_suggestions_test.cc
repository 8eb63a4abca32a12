// "Did you mean": the edit distance and the choice of the closest name.
#include "allocator/api/config_suggestions.h"

#include <array>
#include <string_view>

#include "gtest/gtest.h"

namespace vramcache {
namespace {

TEST(ConfigSuggestionsTest, EditDistanceCountsATranspositionAsOneEdit) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("abc", ""), 3u);
  EXPECT_EQ(EditDistance("device", "device"), 0u);
  EXPECT_EQ(EditDistance("devcie", "device"), 1u);  // swapped neighbours
  EXPECT_EQ(EditDistance("devic", "device"), 1u);
  EXPECT_EQ(EditDistance("dxvice", "device"), 1u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
}

constexpr std::array<std::string_view, 4> kNames = {"budget", "soft_budget", "vmm", "device"};

TEST(ConfigSuggestionsTest, ClosestNameFindsATypoInAnyCase) {
  EXPECT_EQ(ClosestName("devcie", kNames), "device");
  EXPECT_EQ(ClosestName("BUDGET", kNames), "budget");
  EXPECT_EQ(ClosestName("soft_budgte", kNames), "soft_budget");
  EXPECT_EQ(ClosestName("vm", kNames), "vmm");  // short names still allow one edit
}

TEST(ConfigSuggestionsTest, ClosestNameSuggestsNothingTooFarAway) {
  EXPECT_FALSE(ClosestName("completely_unknown_key", kNames).has_value());
  EXPECT_FALSE(ClosestName("x", kNames).has_value());
  EXPECT_FALSE(ClosestName("budget", {}).has_value());
}

TEST(ConfigSuggestionsTest, OnATieTheEarlierCandidateWins) {
  constexpr std::array<std::string_view, 2> kTied = {"ab", "ba"};
  EXPECT_EQ(ClosestName("aa", kTied), "ab");
  constexpr std::array<std::string_view, 2> kReversed = {"ba", "ab"};
  EXPECT_EQ(ClosestName("aa", kReversed), "ba");
}

}  // namespace
}  // namespace vramcache
