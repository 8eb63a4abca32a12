// The canary verify kernel on a real GPU: the first corrupted byte, its value and the count of
// differing bytes for random sizes, offsets and patterns against a host model, thousands of
// ranges in one call, ranges that are not device memory, and the debug modes end to end through
// CudaDevice. Also measures the fill kernel against cudaMemsetAsync and the verify kernel's
// read rate (printed and recorded as test properties). Skips without a GPU, except the API
// checks that never touch one.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "allocator/core/debug_guard.h"
#include "allocator/device/cuda_device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/canary.h"
#include "kernels/fill.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;

// --- Without a GPU (these run everywhere) -------------------------------------------------

TEST(CanaryKernelApiTest, EmptyAndInvalidCallsNeverTouchTheGpu) {
  EXPECT_EQ(kernels::VerifyPatterns32(nullptr, 0, nullptr, 0, nullptr), cudaSuccess);
  kernels::PatternRangeResult result;
  EXPECT_EQ(kernels::VerifyPatterns32(nullptr, 1, &result, 0, nullptr), cudaErrorInvalidValue);

  // Only empty ranges: every answer is "intact" and nothing is launched.
  std::vector<kernels::PatternRange> empty(3);
  std::vector<kernels::PatternRangeResult> results(3);
  results[1].intact = false;
  EXPECT_EQ(kernels::VerifyPatterns32(empty.data(), empty.size(), results.data(), 0, nullptr),
            cudaSuccess);
  for (const kernels::PatternRangeResult& r : results) EXPECT_TRUE(r.intact);

  // A null pointer with bytes is refused before any CUDA call, and names its index.
  std::vector<kernels::PatternRange> bad = {{nullptr, 0, 0}, {nullptr, 16, 0}};
  std::size_t bad_range = 99;
  EXPECT_EQ(kernels::VerifyPatterns32(bad.data(), bad.size(), results.data(), 0, &bad_range),
            cudaErrorInvalidValue);
  EXPECT_EQ(bad_range, 1u);
}

// --- On a GPU ---------------------------------------------------------------------------------

std::uint8_t PatternByte(std::uint32_t pattern, std::size_t offset) {
  return kernels::FillPatternByte(pattern, offset);
}

class CanaryKernelTest : public ::testing::Test {
 protected:
  static constexpr std::size_t kArenaBytes = std::size_t{64} << 20;

  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    absl::StatusOr<std::unique_ptr<CudaDevice>> device = CudaDevice::Open(0);
    ASSERT_TRUE(device.ok()) << device.status();
    device_ = std::move(*device);
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
    absl::StatusOr<DevicePtr> arena = device_->Malloc(kArenaBytes);
    ASSERT_TRUE(arena.ok()) << arena.status();
    arena_ = *arena;
  }
  void TearDown() override {
    if (arena_ != 0) {
      EXPECT_TRUE(device_->Free(arena_).ok());
    }
    if (stream_ != nullptr) {
      EXPECT_EQ(cudaStreamDestroy(stream_), cudaSuccess);
    }
  }

  StreamHandle stream() const { return reinterpret_cast<StreamHandle>(stream_); }
  unsigned char* at(std::size_t offset) const {
    return reinterpret_cast<unsigned char*>(arena_ + offset);
  }

  std::unique_ptr<CudaDevice> device_;
  cudaStream_t stream_ = nullptr;
  DevicePtr arena_ = 0;
};

// Random disjoint ranges, each filled, some corrupted, all verified in one call and compared
// with a model computed on the host from the bytes copied back.
TEST_F(CanaryKernelTest, FindsTheFirstCorruptedByteForRandomSizesAndOffsets) {
  std::mt19937_64 rng(9001);
  for (int round = 0; round < 8; ++round) {
    std::vector<kernels::PatternRange> ranges;
    std::size_t cursor = rng() % 64;
    while (ranges.size() < 200) {
      // Mostly bands (under 2 KiB), some up to 1 MiB so a range spans many tiles.
      const std::size_t bytes = rng() % 5 == 0 ? 1 + rng() % (1 << 20) : rng() % 2048;
      if (cursor + bytes + 64 > kArenaBytes) break;
      ranges.push_back({at(cursor), bytes, static_cast<std::uint32_t>(rng())});
      cursor += bytes + rng() % 64;
    }
    for (const kernels::PatternRange& r : ranges) {
      ASSERT_EQ(
          kernels::LaunchFillPattern32(const_cast<void*>(r.ptr), r.bytes, r.pattern, stream()),
          cudaSuccess);
    }
    for (const kernels::PatternRange& r : ranges) {
      if (r.bytes == 0 || rng() % 2 == 0) continue;
      for (int c = 1 + static_cast<int>(rng() % 3); c > 0; --c) {
        const std::uint8_t value = static_cast<std::uint8_t>(rng());
        ASSERT_EQ(cudaMemsetAsync(const_cast<unsigned char*>(
                                      static_cast<const unsigned char*>(r.ptr) + rng() % r.bytes),
                                  value, 1, stream_),
                  cudaSuccess);
      }
    }
    std::vector<kernels::PatternRangeResult> results(ranges.size());
    ASSERT_EQ(
        kernels::VerifyPatterns32(ranges.data(), ranges.size(), results.data(), stream(), nullptr),
        cudaSuccess);

    std::vector<std::uint8_t> host;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      const kernels::PatternRange& r = ranges[i];
      host.resize(r.bytes);
      if (r.bytes > 0) {
        ASSERT_EQ(cudaMemcpy(host.data(), r.ptr, r.bytes, cudaMemcpyDeviceToHost), cudaSuccess);
      }
      std::optional<std::size_t> first;
      std::size_t differing = 0;
      for (std::size_t b = 0; b < r.bytes; ++b) {
        if (host[b] == PatternByte(r.pattern, b)) continue;
        if (!first) first = b;
        ++differing;
      }
      ASSERT_EQ(results[i].intact, !first.has_value()) << "round " << round << " range " << i;
      if (!first) continue;
      EXPECT_EQ(results[i].first_offset, *first) << "round " << round << " range " << i;
      EXPECT_EQ(results[i].found, host[*first]) << "round " << round << " range " << i;
      EXPECT_EQ(results[i].differing_bytes, differing) << "round " << round << " range " << i;
    }
  }
}

TEST_F(CanaryKernelTest, ThousandsOfBandsInOneCall) {
  constexpr std::size_t kBands = 20000;
  std::vector<kernels::PatternRange> ranges;
  for (std::size_t i = 0; i < kBands; ++i) {
    // 512-byte bands 1 KiB apart, every 7th empty; the back bands start unaligned.
    const std::size_t bytes = i % 7 == 0 ? 0 : 512 + i % 13;
    ranges.push_back({at(1024 * i + i % 5), bytes, kCanaryPattern});
    ASSERT_EQ(kernels::LaunchFillPattern32(const_cast<void*>(ranges.back().ptr), bytes,
                                           kCanaryPattern, stream()),
              cudaSuccess);
  }
  // Non-empty bands only (every 7th is empty, and a byte next to it belongs to no band).
  const std::vector<std::size_t> damaged = {1, 4243, kBands - 2};
  for (std::size_t i : damaged) {
    ASSERT_EQ(cudaMemsetAsync(const_cast<void*>(ranges[i].ptr), 0, 1, stream_), cudaSuccess);
  }
  std::vector<kernels::PatternRangeResult> results(kBands);
  ASSERT_EQ(kernels::VerifyPatterns32(ranges.data(), kBands, results.data(), stream(), nullptr),
            cudaSuccess);
  for (std::size_t i = 0; i < kBands; ++i) {
    const bool expect_damaged = std::find(damaged.begin(), damaged.end(), i) != damaged.end();
    ASSERT_EQ(results[i].intact, !expect_damaged) << i;
    if (expect_damaged) {
      EXPECT_EQ(results[i].first_offset, 0u);
      EXPECT_EQ(results[i].differing_bytes, 1u);
    }
  }
}

TEST_F(CanaryKernelTest, RangesThatAreNotDeviceMemoryAreRefusedAndTheContextSurvives) {
  std::vector<unsigned char> host_buffer(4096);
  const absl::StatusOr<DevicePtr> reserved =
      device_->Capabilities().vmm_supported
          ? device_->ReserveAddress(device_->Capabilities().granularity)
          : absl::StatusOr<DevicePtr>(absl::UnimplementedError("no VMM"));
  // (A range running a few bytes past an allocation's end is not caught here: cudaMalloc rounds
  // allocations up, and the rounding is device memory too.)
  std::vector<std::pair<const void*, std::size_t>> bad = {
      {host_buffer.data(), host_buffer.size()},  // host memory
      {at(0), std::size_t{1} << 40},             // ends far past any allocation
  };
  if (reserved.ok()) bad.push_back({reinterpret_cast<const void*>(*reserved), 64});  // unmapped
  for (const auto& [ptr, bytes] : bad) {
    std::vector<kernels::PatternRange> ranges = {{at(0), 64, 0}, {ptr, bytes, 0}};
    std::vector<kernels::PatternRangeResult> results(2);
    std::size_t bad_range = 99;
    EXPECT_EQ(kernels::VerifyPatterns32(ranges.data(), 2, results.data(), stream(), &bad_range),
              cudaErrorInvalidValue);
    EXPECT_EQ(bad_range, 1u);
  }
  if (reserved.ok()) {
    EXPECT_TRUE(device_->ReleaseAddress(*reserved, device_->Capabilities().granularity).ok());
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  const absl::StatusOr<std::vector<std::optional<PatternMismatch>>> bad_call =
      device_->VerifyPatterns({{arena_, 64, 0}, {0x1000, 64, 0}}, stream());
  ASSERT_FALSE(bad_call.ok());
  EXPECT_EQ(bad_call.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_call.status().message(), HasSubstr("check 1 of 2"));
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess) << "no fault reached the GPU";
}

TEST_F(CanaryKernelTest, VerifiesVirtualMemoryMappings) {
  if (!device_->Capabilities().vmm_supported) GTEST_SKIP() << "no VMM";
  const std::size_t g = device_->Capabilities().granularity;
  absl::StatusOr<DevicePtr> range = device_->ReserveAddress(2 * g);
  absl::StatusOr<ChunkHandle> first = device_->CreateChunk(g);
  absl::StatusOr<ChunkHandle> second = device_->CreateChunk(g);
  ASSERT_TRUE(range.ok() && first.ok() && second.ok());
  ASSERT_TRUE(device_->Map(*range, g, *first).ok());
  ASSERT_TRUE(device_->Map(*range + g, g, *second).ok());
  // A band across the boundary of two physical chunks.
  const FillRequest band{*range + g - 300, 600, kCanaryPattern};
  ASSERT_TRUE(device_->Fill(band, stream()).ok());
  ASSERT_EQ(cudaMemsetAsync(reinterpret_cast<void*>(*range + g + 5), 0, 1, stream_), cudaSuccess);
  absl::StatusOr<std::vector<std::optional<PatternMismatch>>> found =
      device_->VerifyPatterns({{band.ptr, band.bytes, band.pattern}}, stream());
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE((*found)[0].has_value());
  EXPECT_EQ((*found)[0]->first_offset, 305u);
  EXPECT_EQ((*found)[0]->expected, PatternByte(kCanaryPattern, 305));
  EXPECT_TRUE(device_->Unmap(*range, 2 * g).ok());
  EXPECT_TRUE(device_->ReleaseChunk(*first).ok());
  EXPECT_TRUE(device_->ReleaseChunk(*second).ok());
  EXPECT_TRUE(device_->ReleaseAddress(*range, 2 * g).ok());
}

TEST_F(CanaryKernelTest, DebugGuardEndToEndOnTheGpu) {
  AllocatorConfig config;
  config.canaries = true;
  config.poison_on_free = true;
  config.zero_on_alloc = true;
  DebugGuard guard(device_.get(), config);
  const std::size_t user_size = 1000;
  const GuardedBlock b{arena_, guard.PaddedSize(user_size), arena_ + guard.front_bytes(), user_size,
                       stream()};
  ASSERT_TRUE(guard.OnAllocate(b).ok());
  ASSERT_TRUE(guard.OnFree(b).ok()) << "an untouched allocation is clean";

  ASSERT_TRUE(guard.OnAllocate(b).ok());
  std::vector<std::uint8_t> user(user_size);
  ASSERT_EQ(cudaMemcpyAsync(user.data(), reinterpret_cast<void*>(b.user_ptr), user_size,
                            cudaMemcpyDeviceToHost, stream_),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  EXPECT_EQ(std::count(user.begin(), user.end(), 0), static_cast<long>(user_size)) << "zeroed";
  // One byte past the end, written by a "kernel" on the block's stream.
  ASSERT_EQ(cudaMemsetAsync(reinterpret_cast<void*>(b.user_ptr + user_size), 0x41, 1, stream_),
            cudaSuccess);
  const absl::Status status = guard.OnFree(b);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("offset +1000 (end + 0) holds 0x41, expected 0xde"));

  std::vector<std::uint8_t> block(b.block_size);
  ASSERT_EQ(cudaMemcpyAsync(block.data(), reinterpret_cast<void*>(b.block_addr), b.block_size,
                            cudaMemcpyDeviceToHost, stream_),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  for (std::size_t i = 0; i < block.size(); ++i) {
    ASSERT_EQ(block[i], PatternByte(kPoisonPattern, i)) << "poisoned, byte " << i;
  }
}

// Throughput of the fill kernel against cudaMemsetAsync (the bar for a pattern fill), and of
// the verify kernel. Printed for tests/gpu/run.sh's log and recorded as test properties.
TEST_F(CanaryKernelTest, FillAndVerifyThroughput) {
  constexpr std::size_t kBytes = kArenaBytes;
  constexpr int kRepetitions = 20;
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  auto gb_per_s = [&](auto&& enqueue) {
    enqueue();  // warm-up
    EXPECT_EQ(cudaEventRecord(start, stream_), cudaSuccess);
    for (int i = 0; i < kRepetitions; ++i) enqueue();
    EXPECT_EQ(cudaEventRecord(stop, stream_), cudaSuccess);
    EXPECT_EQ(cudaEventSynchronize(stop), cudaSuccess);
    float ms = 0;
    EXPECT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
    return static_cast<double>(kBytes) * kRepetitions / (ms * 1e-3) / 1e9;
  };
  const double memset_rate =
      gb_per_s([&] { EXPECT_EQ(cudaMemsetAsync(at(0), 0xa5, kBytes, stream_), cudaSuccess); });
  const double fill_rate = gb_per_s([&] {
    EXPECT_EQ(kernels::LaunchFillPattern32(at(0), kBytes, kPoisonPattern, stream()), cudaSuccess);
  });
  const double fill_unaligned_rate = gb_per_s([&] {
    EXPECT_EQ(kernels::LaunchFillPattern32(at(3), kBytes - 3, kPoisonPattern, stream()),
              cudaSuccess);
  });
  EXPECT_EQ(kernels::LaunchFillPattern32(at(0), kBytes, kCanaryPattern, stream()), cudaSuccess);
  const kernels::PatternRange whole{at(0), kBytes, kCanaryPattern};
  kernels::PatternRangeResult result;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kRepetitions; ++i) {
    ASSERT_EQ(kernels::VerifyPatterns32(&whole, 1, &result, stream(), nullptr), cudaSuccess);
  }
  const double verify_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(result.intact);
  const double verify_rate = static_cast<double>(kBytes) * kRepetitions / verify_seconds / 1e9;
  EXPECT_EQ(cudaEventDestroy(start), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(stop), cudaSuccess);

  std::printf(
      "[ throughput ] 64 MiB: cudaMemsetAsync %.0f GB/s, fill kernel %.0f GB/s (%.0f%%), "
      "unaligned fill %.0f GB/s, verify (synchronous, host-timed) %.0f GB/s\n",
      memset_rate, fill_rate, 100 * fill_rate / memset_rate, fill_unaligned_rate, verify_rate);
  RecordProperty("memset_gb_per_s", absl::StrFormat("%.1f", memset_rate));
  RecordProperty("fill_gb_per_s", absl::StrFormat("%.1f", fill_rate));
  RecordProperty("fill_unaligned_gb_per_s", absl::StrFormat("%.1f", fill_unaligned_rate));
  RecordProperty("verify_gb_per_s", absl::StrFormat("%.1f", verify_rate));
  // Rates are reported, never asserted: timings belong to benchmarks (vramcache-fill-bench),
  // not to pass/fail tests.
}

}  // namespace
}  // namespace vramcache
