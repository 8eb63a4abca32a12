// The fill and verify kernels (kernels/fill.h, kernels/canary.h) on a real GPU, beyond what
// canary_kernels_test and cuda_device_test cover: zero fills checked by the verify kernel (pattern
// 0) together with the untouched bytes around them, in one launch; thousands of abutting ranges
// of random lengths and misalignments, several corrupted bytes each, where the first corrupted
// byte must win whichever thread block sees it first and no corruption may leak into a
// neighbour; one range of many tiles corrupted in its last tiles before its first; and a
// sub-range of a fill verified with the pattern in its phase. Expected answers come from a host
// model of what was written (no copy back). Skips without a GPU.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "absl/strings/str_format.h"
#include "allocator/device/cuda_device.h"
#include "gtest/gtest.h"
#include "kernels/canary.h"
#include "kernels/fill.h"

namespace vramcache {
namespace {

std::uint32_t RotateRight(std::uint32_t word, unsigned bits) {
  return bits == 0 ? word : (word >> bits) | (word << (32 - bits));
}

class FillVerifyKernelsTest : public ::testing::Test {
 protected:
  static constexpr std::size_t kArenaBytes = std::size_t{96} << 20;

  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&arena_, kArenaBytes), cudaSuccess);
  }
  void TearDown() override {
    if (arena_ != nullptr) {
      EXPECT_EQ(cudaFree(arena_), cudaSuccess);
    }
    if (stream_ != nullptr) {
      EXPECT_EQ(cudaStreamDestroy(stream_), cudaSuccess);
    }
  }

  std::uintptr_t stream() const { return reinterpret_cast<std::uintptr_t>(stream_); }
  unsigned char* at(std::size_t offset) const {
    return static_cast<unsigned char*>(arena_) + offset;
  }

  // One launch over `ranges`; the results, or an empty vector after a failure.
  std::vector<kernels::PatternRangeResult> Verify(
      const std::vector<kernels::PatternRange>& ranges) {
    std::vector<kernels::PatternRangeResult> results(ranges.size());
    std::size_t bad = ~std::size_t{0};
    const int rc =
        kernels::VerifyPatterns32(ranges.data(), ranges.size(), results.data(), stream(), &bad);
    EXPECT_EQ(rc, cudaSuccess) << "bad range " << bad;
    if (rc != cudaSuccess) results.clear();
    return results;
  }

  // Writes `value` at `ptr` (one byte) after the work on the stream, and waits for it.
  void Poke(unsigned char* ptr, std::uint8_t value) {
    ASSERT_EQ(cudaMemcpyAsync(ptr, &value, 1, cudaMemcpyHostToDevice, stream_), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  }

  cudaStream_t stream_ = nullptr;
  void* arena_ = nullptr;
};

TEST_F(FillVerifyKernelsTest, ZeroFillsAndTheBytesAroundThemInOneLaunch) {
  constexpr std::uint32_t kSentinel = 0xe1d2c3b4;  // four different bytes: phase matters
  std::mt19937_64 rng(77);
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(absl::StrFormat("round %d", round));
    ASSERT_EQ(kernels::LaunchFillPattern32(at(0), kArenaBytes, kSentinel, stream()), cudaSuccess);
    // Zero fills of random lengths (0 to 300 KiB) at random misalignments, with gaps between
    // them; the gaps are checked to still hold the sentinel, all ranges in one verify call.
    std::vector<kernels::PatternRange> ranges;
    std::size_t cursor = rng() % 16;
    while (ranges.size() < 1500) {
      const std::size_t bytes = rng() % 4 == 0 ? rng() % (300 << 10) : rng() % 700;
      const std::size_t gap = 1 + rng() % 40;
      if (cursor + bytes + gap > kArenaBytes) break;
      ASSERT_EQ(kernels::LaunchZeroFill(at(cursor), bytes, stream()), cudaSuccess);
      ranges.push_back({at(cursor), bytes, 0});
      // A gap of the sentinel, in phase with the arena-wide fill (which started at byte 0).
      ranges.push_back(
          {at(cursor + bytes), gap, RotateRight(kSentinel, 8 * ((cursor + bytes) % 4))});
      cursor += bytes + gap;
    }
    const std::vector<kernels::PatternRangeResult> results = Verify(ranges);
    ASSERT_EQ(results.size(), ranges.size());
    for (std::size_t i = 0; i < results.size(); ++i) {
      ASSERT_TRUE(results[i].intact)
          << (i % 2 == 0 ? "zero fill " : "gap ") << i << ": first differing byte at "
          << results[i].first_offset << " of " << ranges[i].bytes << " holds "
          << static_cast<int>(results[i].found);
    }
  }
}

// Abutting ranges (no gaps, any alignment): vector loads of one range cover bytes of its
// neighbours, and must never count them. Several corruptions per damaged range, in any tile.
TEST_F(FillVerifyKernelsTest, ManyAbuttingRangesFirstCorruptedByteWinsAndNothingLeaks) {
  std::mt19937_64 rng(4242);
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrFormat("round %d", round));
    std::vector<kernels::PatternRange> ranges;
    std::vector<std::size_t> starts;
    std::size_t cursor = 1 + rng() % 15;
    while (ranges.size() < 5000) {
      // Mostly short; one in ten up to 200 KiB (several 32 KiB tiles).
      const std::size_t bytes = rng() % 10 == 0 ? 1 + rng() % (200 << 10) : 1 + rng() % 300;
      if (cursor + bytes > kArenaBytes) break;
      const auto pattern = static_cast<std::uint32_t>(rng());
      ASSERT_EQ(kernels::LaunchFillPattern32(at(cursor), bytes, pattern, stream()), cudaSuccess);
      ranges.push_back({at(cursor), bytes, pattern});
      starts.push_back(cursor);
      cursor += bytes;
    }
    // Corrupt a third of the ranges at 1-5 distinct positions (first and last bytes favoured,
    // since they sit in the unaligned head and tail), each with a value that truly differs.
    std::vector<std::map<std::size_t, std::uint8_t>> corrupted(ranges.size());
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      if (rng() % 3 != 0) continue;
      const std::size_t bytes = ranges[i].bytes;
      for (int c = 1 + static_cast<int>(rng() % 5); c > 0; --c) {
        const int where = static_cast<int>(rng() % 4);
        const std::size_t offset = where == 0 ? 0 : where == 1 ? bytes - 1 : rng() % bytes;
        const std::uint8_t expected = kernels::FillPatternByte(ranges[i].pattern, offset);
        const auto value = static_cast<std::uint8_t>(expected ^ (1 + rng() % 255));
        corrupted[i][offset] = value;
      }
    }
    // Enqueued last to first, so the kernel's order of discovery has nothing to do with offsets.
    for (std::size_t i = ranges.size(); i-- > 0;) {
      for (auto it = corrupted[i].rbegin(); it != corrupted[i].rend(); ++it) {
        Poke(at(starts[i] + it->first), it->second);
      }
    }
    const std::vector<kernels::PatternRangeResult> results = Verify(ranges);
    ASSERT_EQ(results.size(), ranges.size());
    std::size_t damaged = 0;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      SCOPED_TRACE(absl::StrFormat("range %d at +%d, %d bytes", i, starts[i], ranges[i].bytes));
      if (corrupted[i].empty()) {
        ASSERT_TRUE(results[i].intact)
            << "a neighbour's corruption leaked in, at " << results[i].first_offset;
        continue;
      }
      ++damaged;
      ASSERT_FALSE(results[i].intact);
      EXPECT_EQ(results[i].first_offset, corrupted[i].begin()->first);
      EXPECT_EQ(results[i].found, corrupted[i].begin()->second);
      EXPECT_EQ(results[i].differing_bytes, corrupted[i].size());
    }
    EXPECT_GT(damaged, ranges.size() / 4);
  }
}

TEST_F(FillVerifyKernelsTest, LargeRangeCorruptedInItsLastTilesBeforeItsFirst) {
  constexpr std::size_t kBytes = (std::size_t{64} << 20) + 13;  // 2048+ tiles, unaligned end
  constexpr std::uint32_t kPattern = 0x01234567;
  unsigned char* base = at(5);
  ASSERT_EQ(kernels::LaunchFillPattern32(base, kBytes, kPattern, stream()), cudaSuccess);
  // Positions from the end towards the start: the last byte, the last tile, the middle, and
  // finally one in the second tile; the answer is the lowest.
  const std::vector<std::size_t> offsets = {kBytes - 1, kBytes - 40000, kBytes / 2, 32768 + 100};
  for (std::size_t offset : offsets) {
    Poke(base + offset, static_cast<std::uint8_t>(~kernels::FillPatternByte(kPattern, offset)));
  }
  std::vector<kernels::PatternRangeResult> results = Verify({{base, kBytes, kPattern}});
  ASSERT_EQ(results.size(), 1u);
  ASSERT_FALSE(results[0].intact);
  EXPECT_EQ(results[0].first_offset, 32768u + 100);
  EXPECT_EQ(results[0].found,
            static_cast<std::uint8_t>(~kernels::FillPatternByte(kPattern, 32768 + 100)));
  EXPECT_EQ(results[0].differing_bytes, offsets.size());

  // Now one in the first tile's unaligned head: it wins.
  Poke(base + 2, static_cast<std::uint8_t>(~kernels::FillPatternByte(kPattern, 2)));
  results = Verify({{base, kBytes, kPattern}});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].first_offset, 2u);
  EXPECT_EQ(results[0].differing_bytes, offsets.size() + 1);
}

// A range inside a fill holds the pattern rotated by its offset from the fill's start; a zero
// fill over part of it leaves the rest in phase.
TEST_F(FillVerifyKernelsTest, SubRangesOfAFillVerifyWithThePatternInPhase) {
  constexpr std::uint32_t kPattern = 0xa1b2c3d4;
  constexpr std::size_t kBytes = 1 << 20;
  ASSERT_EQ(kernels::LaunchFillPattern32(at(3), kBytes, kPattern, stream()), cudaSuccess);
  ASSERT_EQ(kernels::LaunchZeroFill(at(3 + 1000), 777, stream()), cudaSuccess);
  std::vector<kernels::PatternRange> ranges;
  std::vector<bool> expect_intact;
  for (std::size_t offset : {0, 1, 2, 3, 4, 5, 17, 999, 1777, 1778, 4099}) {
    const std::size_t length = offset < 1000 ? std::min<std::size_t>(1000 - offset, 4000) : 5000;
    ranges.push_back({at(3 + offset), length, RotateRight(kPattern, 8 * (offset % 4))});
    expect_intact.push_back(true);
    // The same range with the pattern out of phase by one byte: never intact.
    ranges.push_back({at(3 + offset), length, RotateRight(kPattern, 8 * ((offset + 1) % 4))});
    expect_intact.push_back(false);
  }
  ranges.push_back({at(3 + 1000), 777, 0});
  expect_intact.push_back(true);
  ranges.push_back({at(3 + 999), 779, 0});  // one pattern byte on each side
  expect_intact.push_back(false);
  const std::vector<kernels::PatternRangeResult> results = Verify(ranges);
  ASSERT_EQ(results.size(), ranges.size());
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    EXPECT_EQ(results[i].intact, expect_intact[i])
        << "range " << i << " first differing " << results[i].first_offset;
  }
  EXPECT_EQ(results.back().first_offset, 0u);
  EXPECT_EQ(results.back().differing_bytes, 2u);
}

}  // namespace
}  // namespace vramcache
