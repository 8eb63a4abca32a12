// Size-class table and rounding rules: the table validates, every request maps to the smallest
// class that holds it, and the stated waste bounds hold for every size.
#include "allocator/core/size_classes.h"

#include <vector>

#include "gtest/gtest.h"

namespace vramcache {
namespace {

TEST(SizeClassesTest, TableValidates) {
  EXPECT_TRUE(ValidateSizeClasses(SmallSizeClasses(), 0.125).ok());
}

TEST(SizeClassesTest, ValidatorRejectsBadTables) {
  EXPECT_FALSE(ValidateSizeClasses({}, 0.125).ok());
  std::vector<std::size_t> unsorted = {1024, 512, kSmallRequestLimit};
  EXPECT_FALSE(ValidateSizeClasses(unsorted, 0.125).ok());
  std::vector<std::size_t> misaligned = {512, 1000, kSmallRequestLimit};
  EXPECT_FALSE(ValidateSizeClasses(misaligned, 0.125).ok());
  std::vector<std::size_t> short_table = {512, 1024};
  EXPECT_FALSE(ValidateSizeClasses(short_table, 0.125).ok());
  // One class for everything from 4 KiB to 1 MiB wastes far more than 12.5%.
  std::vector<std::size_t> coarse = {512, 1024, 2048, 4096, kSmallRequestLimit};
  EXPECT_FALSE(ValidateSizeClasses(coarse, 0.125).ok());
}

TEST(SizeClassesTest, EveryRequestGetsSmallestFittingClassWithinWasteBound) {
  const auto classes = SmallSizeClasses();
  SizeRounder rounder;
  std::size_t class_index = 0;
  for (std::size_t size = 1; size <= kSmallRequestLimit; ++size) {
    while (classes[class_index] < size) ++class_index;
    const std::size_t rounded = rounder.RoundRequest(size);
    ASSERT_EQ(rounded, classes[class_index]) << "size " << size;
    ASSERT_EQ(SizeClassIndex(size), class_index) << "size " << size;
    if (size >= 4096) {
      ASSERT_LT(static_cast<double>(rounded - size) / size, 0.125) << "size " << size;
    } else {
      ASSERT_LT(rounded - size, kMinBlockSize) << "size " << size;
    }
  }
}

TEST(SizeClassesTest, LargeRequestsRoundTo512Bytes) {
  SizeRounder rounder;
  EXPECT_EQ(rounder.RoundRequest(kSmallRequestLimit + 1), kSmallRequestLimit + 512);
  EXPECT_EQ(rounder.RoundRequest(3 * kSmallRequestLimit), 3 * kSmallRequestLimit);
  EXPECT_EQ(rounder.RoundRequest(100'000'001), 100'000'256u);
}

TEST(SizeClassesTest, PowerOfTwoDivisionsRoundLikePyTorch) {
  std::vector<std::size_t> divisions(64, 0);
  divisions[24] = 4;  // sizes in [16 MiB, 32 MiB): steps of 4 MiB
  SizeRounder rounder(divisions);
  EXPECT_EQ(rounder.RoundRequest((16u << 20) + 1), 20u << 20);
  EXPECT_EQ(rounder.RoundRequest(20u << 20), 20u << 20);
  EXPECT_EQ(rounder.RoundRequest((29u << 20) + 7), 32u << 20);
  // Other intervals keep plain 512-byte rounding.
  EXPECT_EQ(rounder.RoundRequest((40u << 20) + 1), (40u << 20) + 512);
}

TEST(SizeClassesTest, SegmentSizesFollowPyTorchPools) {
  EXPECT_EQ(SizeRounder::SegmentSizeFor(512), kSmallSegmentSize);
  EXPECT_EQ(SizeRounder::SegmentSizeFor(kSmallRequestLimit), kSmallSegmentSize);
  EXPECT_EQ(SizeRounder::SegmentSizeFor(kSmallRequestLimit + 512), kMidSegmentSize);
  EXPECT_EQ(SizeRounder::SegmentSizeFor(kMidRequestLimit), kMidSegmentSize);
  EXPECT_EQ(SizeRounder::SegmentSizeFor(kMidRequestLimit + 512), 12u << 20);
}

}  // namespace
}  // namespace vramcache
