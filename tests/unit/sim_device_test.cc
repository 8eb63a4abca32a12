// The simulated device: CUDA's virtual-memory rules, capacity, data that survives remapping,
// streams and events under test control, graph capture, fault injection and counters, in both
// memory mode and accounting-only mode.
#include "allocator/device/sim_device.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "allocator/core/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_macros.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;

constexpr std::size_t kGran = 2 * kMiB;

SimDeviceOptions Options(bool accounting_only, std::size_t capacity = 64 * kMiB) {
  SimDeviceOptions options;
  options.capacity = capacity;
  options.accounting_only = accounting_only;
  return options;
}

// Runs each test in memory mode and in accounting-only mode.
class SimDeviceModeTest : public ::testing::TestWithParam<bool> {
 protected:
  bool accounting() const { return GetParam(); }
  SimDeviceOptions ModeOptions(std::size_t capacity = 64 * kMiB) const {
    return Options(accounting(), capacity);
  }
};

INSTANTIATE_TEST_SUITE_P(BothModes, SimDeviceModeTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Accounting" : "Memory";
                         });

TEST(SimDeviceOptionsTest, ValidateRejectsBadOptionsAndCreateReportsThem) {
  SimDeviceOptions options;
  EXPECT_OK(options.Validate());
  options.granularity = 3 * kMiB;
  EXPECT_THAT(options.Validate().message(), HasSubstr("granularity"));
  options.granularity = 512;
  EXPECT_TRUE(absl::IsInvalidArgument(options.Validate()));
  options = SimDeviceOptions{};
  options.capacity = 0;
  EXPECT_THAT(options.Validate().message(), HasSubstr("capacity"));
  options = SimDeviceOptions{};
  options.queries_until_complete = 0;
  EXPECT_THAT(options.Validate().message(), HasSubstr("queries_until_complete"));
  absl::StatusOr<std::unique_ptr<SimDevice>> device = SimDevice::Create(options);
  EXPECT_TRUE(absl::IsInvalidArgument(device.status()));
}

TEST(SimDeviceOptionsTest, CapabilitiesReflectOptions) {
  SimDeviceOptions options;
  options.capacity = 96 * kMiB;
  options.granularity = 64 * 1024;
  options.ordinal = 3;
  ASSIGN_OR_FAIL(device, SimDevice::Create(options));
  const DeviceCapabilities& caps = device->Capabilities();
  EXPECT_EQ(caps.ordinal, 3);
  EXPECT_EQ(caps.total_bytes, 96 * kMiB);
  EXPECT_EQ(caps.granularity, 64u * 1024);
  EXPECT_TRUE(caps.vmm_supported);
  EXPECT_EQ(caps.name, "vramcache simulated device");
}

TEST_P(SimDeviceModeTest, MallocIsAlignedAndFreeRejectsUnknownPointers) {
  SimDevice device(ModeOptions());
  ASSIGN_OR_FAIL(a, device.Malloc(1000));
  ASSIGN_OR_FAIL(b, device.Malloc(3 * kMiB));
  EXPECT_EQ(a % (2 * kMiB), 0u);
  EXPECT_EQ(b % (2 * kMiB), 0u);
  EXPECT_TRUE(a + 1000 <= b || b + 3 * kMiB <= a);
  EXPECT_EQ(device.HeldBytes(), 1000 + 3 * kMiB);

  absl::Status inside = device.Free(b + 512);
  EXPECT_TRUE(absl::IsInvalidArgument(inside));
  EXPECT_THAT(inside.message(), HasSubstr("SimDevice::Free"));
  EXPECT_THAT(inside.message(), HasSubstr("inside the block"));
  EXPECT_TRUE(absl::IsInvalidArgument(device.Free(0x1234)));
  EXPECT_TRUE(absl::IsInvalidArgument(device.Malloc(0).status()));
  EXPECT_OK(device.Free(0));  // cudaFree(nullptr)
  EXPECT_EQ(device.LiveMallocs(), 2u);

  ASSERT_OK(device.Free(a));
  EXPECT_TRUE(absl::IsInvalidArgument(device.Free(a))) << "double free must be an error";
  ASSERT_OK(device.Free(b));
  EXPECT_EQ(device.HeldBytes(), 0u);
  EXPECT_EQ(device.Calls(SimOp::kMalloc), 3);
  EXPECT_EQ(device.Calls(SimOp::kFree), 6);
}

TEST_P(SimDeviceModeTest, CapacityLimitsMallocAndChunksTogether) {
  SimDevice device(ModeOptions(8 * kMiB));
  ASSIGN_OR_FAIL(a, device.Malloc(5 * kMiB));
  absl::StatusOr<DevicePtr> too_big = device.Malloc(4 * kMiB);
  EXPECT_TRUE(absl::IsResourceExhausted(too_big.status()));
  EXPECT_THAT(too_big.status().message(), HasSubstr("out of memory"));
  EXPECT_THAT(too_big.status().message(), HasSubstr("SimDevice::Malloc"));
  absl::StatusOr<ChunkHandle> chunk_too_big = device.CreateChunk(4 * kMiB);
  EXPECT_TRUE(absl::IsResourceExhausted(chunk_too_big.status()));
  EXPECT_THAT(chunk_too_big.status().message(), HasSubstr("SimDevice::CreateChunk"));
  ASSIGN_OR_FAIL(chunk, device.CreateChunk(2 * kMiB));
  EXPECT_EQ(device.HeldBytes(), 7 * kMiB);
  EXPECT_TRUE(absl::IsResourceExhausted(device.CreateChunk(2 * kMiB).status()));
  EXPECT_EQ(device.HeldBytes(), 7 * kMiB) << "a refused allocation holds nothing";

  ASSERT_OK(device.Free(a));
  ASSIGN_OR_FAIL(c, device.Malloc(6 * kMiB));
  ASSERT_OK(device.Free(c));
  ASSERT_OK(device.ReleaseChunk(chunk));
  EXPECT_EQ(device.HeldBytes(), 0u);
  EXPECT_EQ(device.Counters().peak_held_bytes, 8 * kMiB);
}

TEST_P(SimDeviceModeTest, ExternalUsageLowersFreeMemoryAndWhatCanBeAllocated) {
  SimDevice device(ModeOptions(16 * kMiB));
  ASSIGN_OR_FAIL(a, device.Malloc(4 * kMiB));
  device.SetExternalUsage(10 * kMiB);
  ASSIGN_OR_FAIL(info, device.MemInfo());
  EXPECT_EQ(info.total_bytes, 16 * kMiB);
  EXPECT_EQ(info.free_bytes, 2 * kMiB);
  EXPECT_TRUE(absl::IsResourceExhausted(device.CreateChunk(4 * kMiB).status()));
  ASSIGN_OR_FAIL(chunk, device.CreateChunk(2 * kMiB));
  device.SetExternalUsage(100 * kMiB);  // more than the device: free is 0, not negative
  ASSIGN_OR_FAIL(full, device.MemInfo());
  EXPECT_EQ(full.free_bytes, 0u);
  device.SetExternalUsage(0);
  ASSIGN_OR_FAIL(after, device.MemInfo());
  EXPECT_EQ(after.free_bytes, 10 * kMiB);
  ASSERT_OK(device.ReleaseChunk(chunk));
  ASSERT_OK(device.Free(a));
}

TEST(SimDeviceMemoryTest, DataSurvivesUnmapAndRemapAtAnotherAddress) {
  SimDevice device(Options(/*accounting_only=*/false));
  ASSIGN_OR_FAIL(first, device.ReserveAddress(4 * kGran));
  ASSIGN_OR_FAIL(second, device.ReserveAddress(4 * kGran));
  ASSIGN_OR_FAIL(chunk, device.CreateChunk(kGran));
  ASSERT_OK(device.Map(first + kGran, kGran, chunk));

  const char message[] = "defragmentation must lose nothing";
  ASSERT_OK(device.CopyFromHost(first + kGran + 100, message, sizeof(message)));
  // Written through the mapping directly too, as a kernel would.
  reinterpret_cast<unsigned char*>(first + kGran)[kGran - 1] = 0xab;
  ASSERT_OK(device.Unmap(first + kGran, kGran));
  char gone;
  EXPECT_TRUE(absl::IsInvalidArgument(device.CopyToHost(first + kGran + 100, &gone, 1)))
      << "an unmapped range must not be readable";

  ASSERT_OK(device.Map(second + 3 * kGran, kGran, chunk));
  char read_back[sizeof(message)] = {};
  ASSERT_OK(device.CopyToHost(second + 3 * kGran + 100, read_back, sizeof(read_back)));
  EXPECT_STREQ(read_back, message);
  EXPECT_EQ(reinterpret_cast<unsigned char*>(second + 3 * kGran)[kGran - 1], 0xab);

  ASSERT_OK(device.Unmap(second + 3 * kGran, kGran));
  ASSERT_OK(device.ReleaseChunk(chunk));
  ASSERT_OK(device.ReleaseAddress(first, 4 * kGran));
  ASSERT_OK(device.ReleaseAddress(second, 4 * kGran));
  EXPECT_EQ(device.HeldBytes(), 0u);
}

TEST(SimDeviceMemoryTest, AChunkMappedTwiceSharesItsBytesAndIsReleasedAfterBothUnmaps) {
  SimDevice device(Options(/*accounting_only=*/false));
  ASSIGN_OR_FAIL(first, device.ReserveAddress(2 * kGran));
  ASSIGN_OR_FAIL(second, device.ReserveAddress(2 * kGran));
  ASSIGN_OR_FAIL(chunk, device.CreateChunk(kGran));
  ASSERT_OK(device.Map(first, kGran, chunk));
  ASSERT_OK(device.Map(second + kGran, kGran, chunk));
  EXPECT_EQ(device.LiveMappings(), 2u);

  const char message[] = "one chunk, two addresses";
  ASSERT_OK(device.CopyFromHost(first + 64, message, sizeof(message)));
  char read_back[sizeof(message)] = {};
  ASSERT_OK(device.CopyToHost(second + kGran + 64, read_back, sizeof(read_back)));
  EXPECT_STREQ(read_back, message);

  ASSERT_OK(device.Unmap(first, kGran));
  absl::Status still_mapped = device.ReleaseChunk(chunk);
  EXPECT_TRUE(absl::IsFailedPrecondition(still_mapped)) << "one mapping is left";
  EXPECT_THAT(still_mapped.message(), HasSubstr("1 mapping(s)"));
  ASSERT_OK(device.CopyToHost(second + kGran + 64, read_back, sizeof(read_back)));
  EXPECT_STREQ(read_back, message) << "unmapping one alias keeps the bytes";
  ASSERT_OK(device.Unmap(second + kGran, kGran));
  ASSERT_OK(device.ReleaseChunk(chunk));
  ASSERT_OK(device.ReleaseAddress(first, 2 * kGran));
  ASSERT_OK(device.ReleaseAddress(second, 2 * kGran));
  EXPECT_EQ(device.HeldBytes(), 0u);
}

TEST(SimDeviceMemoryTest, ReleasedChunkMemoryIsGivenBackAndNewChunksStartZeroed) {
  SimDeviceOptions options = Options(/*accounting_only=*/false);
  options.granularity = 64 * 1024;  // small, so the test touches little memory
  SimDevice device(options);
  const std::size_t granule = options.granularity;
  ASSIGN_OR_FAIL(va, device.ReserveAddress(granule));
  ASSIGN_OR_FAIL(old_chunk, device.CreateChunk(granule));
  ASSERT_OK(device.Map(va, granule, old_chunk));
  std::memset(reinterpret_cast<void*>(va), 0x5a, granule);
  ASSERT_OK(device.Unmap(va, granule));
  ASSERT_OK(device.ReleaseChunk(old_chunk));
  // The new chunk takes the same slice of the memfd: the punched hole reads as zeros.
  ASSIGN_OR_FAIL(new_chunk, device.CreateChunk(granule));
  ASSERT_OK(device.Map(va, granule, new_chunk));
  std::vector<unsigned char> bytes(granule, 1);
  ASSERT_OK(device.CopyToHost(va, bytes.data(), bytes.size()));
  EXPECT_EQ(std::count(bytes.begin(), bytes.end(), 0), static_cast<long>(granule));
  ASSERT_OK(device.Unmap(va, granule));
  ASSERT_OK(device.ReleaseChunk(new_chunk));
  ASSERT_OK(device.ReleaseAddress(va, granule));
}

// Chunks of mixed sizes come and go; each keeps its own bytes whatever slice of the memfd it
// got (best fit, coalescing and file growth all get exercised). Tags at the start, middle and
// end of each chunk are enough to catch two chunks sharing a slice.
TEST(SimDeviceMemoryTest, ChunksOfMixedSizesNeverShareStorage) {
  SimDevice device(Options(/*accounting_only=*/false, 64 * kMiB));
  ASSIGN_OR_FAIL(va, device.ReserveAddress(8 * kGran));
  std::mt19937 rng(12345);
  std::map<ChunkHandle, std::pair<std::size_t, unsigned char>> live;  // chunk -> size, tag
  auto check = [&](ChunkHandle chunk, std::size_t bytes, unsigned char tag) {
    ASSERT_OK(device.Map(va, bytes, chunk));
    for (std::size_t offset : {std::size_t{0}, bytes / 2, bytes - 1}) {
      unsigned char byte = 0;
      ASSERT_OK(device.CopyToHost(va + offset, &byte, 1));
      ASSERT_EQ(byte, tag) << "chunk " << chunk << " offset " << offset;
    }
    ASSERT_OK(device.Unmap(va, bytes));
  };
  for (int step = 0; step < 120; ++step) {
    if (live.size() < 3 || (rng() % 2 == 0 && device.HeldBytes() + 8 * kGran <= 64 * kMiB)) {
      const std::size_t bytes = (1 + rng() % 4) * kGran;
      ASSIGN_OR_FAIL(chunk, device.CreateChunk(bytes));
      const auto tag = static_cast<unsigned char>(1 + step);
      ASSERT_OK(device.Map(va, bytes, chunk));
      for (std::size_t offset : {std::size_t{0}, bytes / 2, bytes - 1}) {
        ASSERT_OK(device.CopyFromHost(va + offset, &tag, 1));
      }
      ASSERT_OK(device.Unmap(va, bytes));
      live[chunk] = {bytes, tag};
    } else {
      auto victim = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      check(victim->first, victim->second.first, victim->second.second);
      ASSERT_OK(device.ReleaseChunk(victim->first));
      live.erase(victim);
    }
  }
  for (const auto& [chunk, info] : live) {
    check(chunk, info.first, info.second);
    ASSERT_OK(device.ReleaseChunk(chunk));
  }
  ASSERT_OK(device.ReleaseAddress(va, 8 * kGran));
  EXPECT_EQ(device.HeldBytes(), 0u);
}

TEST_P(SimDeviceModeTest, UnmapMustCoverWholeMappingsExactly) {
  SimDevice device(ModeOptions());
  ASSIGN_OR_FAIL(va, device.ReserveAddress(8 * kGran));
  ASSIGN_OR_FAIL(big, device.CreateChunk(2 * kGran));
  ASSIGN_OR_FAIL(small, device.CreateChunk(kGran));
  ASSIGN_OR_FAIL(far, device.CreateChunk(kGran));
  ASSERT_OK(device.Map(va, 2 * kGran, big));
  ASSERT_OK(device.Map(va + 2 * kGran, kGran, small));
  ASSERT_OK(device.Map(va + 4 * kGran, kGran, far));  // a gap before it

  absl::Status head = device.Unmap(va, kGran);
  EXPECT_TRUE(absl::IsInvalidArgument(head));
  EXPECT_THAT(head.message(), HasSubstr("SimDevice::Unmap"));
  EXPECT_THAT(head.message(), HasSubstr("sub-range"));
  EXPECT_TRUE(absl::IsInvalidArgument(device.Unmap(va + kGran, kGran)));
  EXPECT_TRUE(absl::IsInvalidArgument(device.Unmap(va + kGran, 2 * kGran)));
  EXPECT_TRUE(absl::IsInvalidArgument(device.Unmap(va, 5 * kGran))) << "gap inside the range";
  EXPECT_TRUE(absl::IsInvalidArgument(device.Unmap(va + 3 * kGran, kGran))) << "nothing there";
  EXPECT_TRUE(absl::IsInvalidArgument(device.Unmap(va, kGran + 4096))) << "not granular";
  EXPECT_EQ(device.LiveMappings(), 3u) << "rejected unmaps change nothing";

  ASSERT_OK(device.Unmap(va, 3 * kGran));  // two adjacent whole mappings at once
  EXPECT_EQ(device.LiveMappings(), 1u);
  ASSERT_OK(device.Unmap(va + 4 * kGran, kGran));
  for (ChunkHandle chunk : {big, small, far}) ASSERT_OK(device.ReleaseChunk(chunk));
  ASSERT_OK(device.ReleaseAddress(va, 8 * kGran));
}

TEST_P(SimDeviceModeTest, MapRejectsOverlapsAndBadRanges) {
  SimDevice device(ModeOptions());
  ASSIGN_OR_FAIL(va, device.ReserveAddress(6 * kGran));
  ASSIGN_OR_FAIL(a, device.CreateChunk(2 * kGran));
  ASSIGN_OR_FAIL(b, device.CreateChunk(2 * kGran));
  ASSIGN_OR_FAIL(c, device.CreateChunk(kGran));
  ASSERT_OK(device.Map(va + kGran, 2 * kGran, a));

  absl::Status same = device.Map(va + kGran, 2 * kGran, b);
  EXPECT_TRUE(absl::IsFailedPrecondition(same));
  EXPECT_THAT(same.message(), HasSubstr("SimDevice::Map"));
  EXPECT_THAT(same.message(), HasSubstr("mapped at most once"));
  EXPECT_TRUE(absl::IsFailedPrecondition(device.Map(va, 2 * kGran, b))) << "partial overlap";
  EXPECT_TRUE(absl::IsFailedPrecondition(device.Map(va + 2 * kGran, kGran, c)))
      << "inside an existing mapping";
  EXPECT_TRUE(absl::IsInvalidArgument(device.Map(va, 2 * kGran, c))) << "size != chunk size";
  EXPECT_TRUE(absl::IsInvalidArgument(device.Map(va + 5 * kGran, 2 * kGran, b)))
      << "runs past the reservation";
  EXPECT_TRUE(absl::IsInvalidArgument(device.Map(va + 4096, kGran, c))) << "unaligned address";
  EXPECT_TRUE(absl::IsInvalidArgument(device.Map(va, kGran, 999))) << "unknown chunk";
  EXPECT_TRUE(absl::IsInvalidArgument(device.Map(kGran * 3, kGran, c))) << "not reserved";
  EXPECT_EQ(device.LiveMappings(), 1u) << "rejected maps change nothing";

  ASSERT_OK(device.Map(va, kGran, c));
  ASSERT_OK(device.Map(va + 3 * kGran, 2 * kGran, b));
  ASSERT_OK(device.Unmap(va, 5 * kGran));
  for (ChunkHandle chunk : {a, b, c}) ASSERT_OK(device.ReleaseChunk(chunk));
  ASSERT_OK(device.ReleaseAddress(va, 6 * kGran));
}

TEST_P(SimDeviceModeTest, ReleasingWhatIsInUseIsRefused) {
  SimDevice device(ModeOptions());
  ASSIGN_OR_FAIL(va, device.ReserveAddress(2 * kGran));
  ASSIGN_OR_FAIL(chunk, device.CreateChunk(kGran));
  ASSERT_OK(device.Map(va, kGran, chunk));

  absl::Status mapped_chunk = device.ReleaseChunk(chunk);
  EXPECT_TRUE(absl::IsFailedPrecondition(mapped_chunk));
  EXPECT_THAT(mapped_chunk.message(), HasSubstr("SimDevice::ReleaseChunk"));
  absl::Status busy_range = device.ReleaseAddress(va, 2 * kGran);
  EXPECT_TRUE(absl::IsFailedPrecondition(busy_range));
  EXPECT_THAT(busy_range.message(), HasSubstr("still has 1 chunk(s) mapped"));
  EXPECT_TRUE(absl::IsInvalidArgument(device.ReleaseAddress(va, kGran))) << "wrong size";
  EXPECT_TRUE(absl::IsInvalidArgument(device.ReleaseAddress(va + kGran, kGran))) << "interior";
  EXPECT_TRUE(absl::IsInvalidArgument(device.ReleaseChunk(chunk + 100)));
  EXPECT_TRUE(absl::IsInvalidArgument(device.ReserveAddress(kGran + 1).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(device.CreateChunk(kGran / 2).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(device.CreateChunk(0).status()));
  EXPECT_EQ(device.LiveChunks(), 1u);
  EXPECT_EQ(device.LiveReservations(), 1u);

  ASSERT_OK(device.Unmap(va, kGran));
  ASSERT_OK(device.ReleaseChunk(chunk));
  EXPECT_TRUE(absl::IsInvalidArgument(device.ReleaseChunk(chunk))) << "double release";
  ASSERT_OK(device.ReleaseAddress(va, 2 * kGran));
  EXPECT_TRUE(absl::IsInvalidArgument(device.ReleaseAddress(va, 2 * kGran)));
}

TEST_P(SimDeviceModeTest, GrantPeerAccessNeedsAMappedRange) {
  SimDevice device(ModeOptions());
  ASSIGN_OR_FAIL(va, device.ReserveAddress(4 * kGran));
  ASSIGN_OR_FAIL(a, device.CreateChunk(kGran));
  ASSIGN_OR_FAIL(b, device.CreateChunk(kGran));
  ASSERT_OK(device.Map(va, kGran, a));
  ASSERT_OK(device.Map(va + kGran, kGran, b));
  EXPECT_OK(device.GrantPeerAccess(va, 2 * kGran, 1));
  EXPECT_TRUE(absl::IsInvalidArgument(device.GrantPeerAccess(va, 3 * kGran, 1)));
  EXPECT_TRUE(absl::IsInvalidArgument(device.GrantPeerAccess(va, kGran, -1)));
  ASSERT_OK(device.Unmap(va, 2 * kGran));
  ASSERT_OK(device.ReleaseChunk(a));
  ASSERT_OK(device.ReleaseChunk(b));
  ASSERT_OK(device.ReleaseAddress(va, 4 * kGran));
}

TEST_P(SimDeviceModeTest, WithoutVmmOnlyPlainAllocationWorks) {
  SimDeviceOptions options = ModeOptions();
  options.vmm_supported = false;
  SimDevice device(options);
  EXPECT_FALSE(device.Capabilities().vmm_supported);
  EXPECT_TRUE(absl::IsUnimplemented(device.ReserveAddress(kGran).status()));
  EXPECT_TRUE(absl::IsUnimplemented(device.CreateChunk(kGran).status()));
  ASSIGN_OR_FAIL(p, device.Malloc(kGran));
  ASSERT_OK(device.Free(p));
}

TEST_P(SimDeviceModeTest, InjectedFailuresSurfaceAndChangeNothing) {
  SimDevice device(ModeOptions());
  device.FailNext(SimOp::kCreateChunk, absl::InternalError("injected: device lost"));
  absl::StatusOr<ChunkHandle> failed = device.CreateChunk(kGran);
  EXPECT_TRUE(absl::IsInternal(failed.status()));
  EXPECT_EQ(failed.status().message(), "injected: device lost");
  EXPECT_EQ(device.HeldBytes(), 0u);
  EXPECT_EQ(device.LiveChunks(), 0u);
  ASSIGN_OR_FAIL(chunk, device.CreateChunk(kGran));  // only the next call failed

  ASSIGN_OR_FAIL(va, device.ReserveAddress(4 * kGran));
  device.FailAfter(SimOp::kMap, 1, absl::ResourceExhaustedError("injected"), 2);
  ASSIGN_OR_FAIL(second, device.CreateChunk(kGran));
  ASSERT_OK(device.Map(va, kGran, chunk));
  EXPECT_TRUE(absl::IsResourceExhausted(device.Map(va + kGran, kGran, second)));
  EXPECT_TRUE(absl::IsResourceExhausted(device.Map(va + kGran, kGran, second)));
  EXPECT_EQ(device.LiveMappings(), 1u);
  ASSERT_OK(device.Map(va + kGran, kGran, second));

  device.FailNext(SimOp::kUnmap, absl::InternalError("injected"), SimDevice::kFailForever);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(device.Unmap(va, kGran).ok());
  EXPECT_EQ(device.LiveMappings(), 2u);
  device.FailNext(SimOp::kReleaseChunk, absl::InternalError("injected"));
  device.ClearFailures();
  ASSERT_OK(device.Unmap(va, 2 * kGran));
  ASSERT_OK(device.ReleaseChunk(chunk));
  ASSERT_OK(device.ReleaseChunk(second));
  ASSERT_OK(device.ReleaseAddress(va, 4 * kGran));

  const SimCounters counters = device.Counters();
  EXPECT_EQ(counters.injected_failures[static_cast<std::size_t>(SimOp::kCreateChunk)], 1);
  EXPECT_EQ(counters.injected_failures[static_cast<std::size_t>(SimOp::kMap)], 2);
  EXPECT_EQ(counters.injected_failures[static_cast<std::size_t>(SimOp::kUnmap)], 3);
  EXPECT_EQ(counters.Calls(SimOp::kMap), 4);
  EXPECT_EQ(device.HeldBytes(), 0u);
}

// Every Device call honours fault injection, and its counter sees the failed call.
TEST(SimDeviceFaultTest, EveryOperationCanBeMadeToFail) {
  SimDevice device(Options(/*accounting_only=*/true));
  ASSIGN_OR_FAIL(event, device.CreateEvent());
  const absl::Status injected = absl::UnavailableError("injected");
  struct Case {
    SimOp op;
    std::function<absl::Status()> call;
  };
  const std::vector<Case> cases = {
      {SimOp::kMemInfo, [&] { return device.MemInfo().status(); }},
      {SimOp::kMalloc, [&] { return device.Malloc(kGran).status(); }},
      {SimOp::kFree, [&] { return device.Free(0); }},
      {SimOp::kReserveAddress, [&] { return device.ReserveAddress(kGran).status(); }},
      {SimOp::kReleaseAddress, [&] { return device.ReleaseAddress(kGran, kGran); }},
      {SimOp::kCreateChunk, [&] { return device.CreateChunk(kGran).status(); }},
      {SimOp::kReleaseChunk, [&] { return device.ReleaseChunk(1); }},
      {SimOp::kMap, [&] { return device.Map(kGran, kGran, 1); }},
      {SimOp::kUnmap, [&] { return device.Unmap(kGran, kGran); }},
      {SimOp::kGrantPeerAccess, [&] { return device.GrantPeerAccess(kGran, kGran, 1); }},
      {SimOp::kCreateEvent, [&] { return device.CreateEvent().status(); }},
      {SimOp::kDestroyEvent, [&] { return device.DestroyEvent(event); }},
      {SimOp::kRecordEvent, [&] { return device.RecordEvent(event, 0); }},
      {SimOp::kQueryEvent, [&] { return device.QueryEvent(event).status(); }},
      {SimOp::kSynchronizeEvent, [&] { return device.SynchronizeEvent(event); }},
      {SimOp::kStreamWaitEvent, [&] { return device.StreamWaitEvent(0, event); }},
      {SimOp::kSynchronizeDevice, [&] { return device.SynchronizeDevice(); }},
      {SimOp::kIsCapturing, [&] { return device.IsCapturing(0).status(); }},
      {SimOp::kFill, [&] { return device.Fill(FillRequest{}, 0); }},
      {SimOp::kStreamOrdinal, [&] { return device.StreamOrdinal(0).status(); }},
  };
  ASSERT_EQ(cases.size(), kSimOpCount);
  for (const Case& c : cases) {
    device.FailNext(c.op, injected);
    EXPECT_EQ(c.call(), injected) << SimOpName(c.op);
    EXPECT_EQ(device.Counters().injected_failures[static_cast<std::size_t>(c.op)], 1)
        << SimOpName(c.op);
  }
  EXPECT_EQ(device.HeldBytes(), 0u);
  EXPECT_EQ(device.LiveReservations(), 0u);
  EXPECT_EQ(device.LiveEvents(), 1u);
  ASSERT_OK(device.DestroyEvent(event));
}

TEST(SimDeviceFaultTest, OpNamesAreDistinctSnakeCase) {
  std::set<std::string, std::less<>> names;
  for (std::size_t i = 0; i < kSimOpCount; ++i) {
    const absl::string_view name = SimOpName(static_cast<SimOp>(i));
    EXPECT_NE(name, "unknown");
    EXPECT_EQ(name.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), absl::string_view::npos);
    names.emplace(name);
  }
  EXPECT_EQ(names.size(), kSimOpCount);
  EXPECT_EQ(SimOpName(SimOp::kCreateChunk), "create_chunk");
}

std::unique_ptr<SimDevice> StreamDevice(SimCompletion completion, int queries_until_complete = 2,
                                        bool reuse_stream_handles = true) {
  SimDeviceOptions options;
  options.completion = completion;
  options.queries_until_complete = queries_until_complete;
  options.reuse_stream_handles = reuse_stream_handles;
  return std::make_unique<SimDevice>(options);
}

TEST(SimDeviceEventTest, ImmediateCompletionReportsEverythingDone) {
  auto device = StreamDevice(SimCompletion::kImmediate);
  ASSIGN_OR_FAIL(event, device->CreateEvent());
  device->SubmitWork(3);
  ASSERT_OK(device->RecordEvent(event, 3));
  ASSIGN_OR_FAIL(done, device->QueryEvent(event));
  EXPECT_TRUE(done);
  EXPECT_EQ(device->Counters().pending_work, 0u);
  ASSERT_OK(device->DestroyEvent(event));
}

TEST(SimDeviceEventTest, ManualCompletionWaitsForTheTest) {
  auto device = StreamDevice(SimCompletion::kManual);
  ASSIGN_OR_FAIL(unrecorded, device->CreateEvent());
  ASSIGN_OR_FAIL(done_unrecorded, device->QueryEvent(unrecorded));
  EXPECT_TRUE(done_unrecorded) << "an event never recorded is complete, as in CUDA";

  ASSIGN_OR_FAIL(event, device->CreateEvent());
  ASSERT_OK(device->RecordEvent(event, 0));
  ASSIGN_OR_FAIL(empty_stream, device->QueryEvent(event));
  EXPECT_TRUE(empty_stream) << "recorded on a stream with no work";

  const std::uint64_t first = device->SubmitWork(0);
  const std::uint64_t second = device->SubmitWork(0);
  ASSERT_OK(device->RecordEvent(event, 0));
  for (int i = 0; i < 5; ++i) {
    ASSIGN_OR_FAIL(pending, device->QueryEvent(event));
    EXPECT_FALSE(pending);
  }
  ASSERT_OK(device->CompleteWork(0, first));
  ASSIGN_OR_FAIL(half, device->QueryEvent(event));
  EXPECT_FALSE(half);
  ASSERT_OK(device->CompleteWork(0, second));
  ASSIGN_OR_FAIL(done, device->QueryEvent(event));
  EXPECT_TRUE(done);

  EXPECT_TRUE(absl::IsInvalidArgument(device->CompleteWork(0, second + 10)));
  EXPECT_TRUE(absl::IsInvalidArgument(device->CompleteWork(42, 1))) << "nothing on stream 42";
  EXPECT_EQ(device->Calls(SimOp::kQueryEvent), 9);
}

TEST(SimDeviceEventTest, AfterQueriesCompletesOnTheNthQuery) {
  auto device = StreamDevice(SimCompletion::kAfterQueries, 3);
  ASSIGN_OR_FAIL(event, device->CreateEvent());
  ASSIGN_OR_FAIL(twin, device->CreateEvent());
  device->SubmitWork(1);
  ASSERT_OK(device->RecordEvent(event, 1));
  ASSERT_OK(device->RecordEvent(twin, 1));
  std::vector<bool> answers;
  for (int i = 0; i < 4; ++i) {
    ASSIGN_OR_FAIL(done, device->QueryEvent(event));
    answers.push_back(done);
  }
  EXPECT_EQ(answers, (std::vector<bool>{false, false, true, true}));
  ASSIGN_OR_FAIL(twin_done, device->QueryEvent(twin));
  EXPECT_TRUE(twin_done) << "the work itself completed, so every event on it did";

  // Re-recording restarts the count.
  device->SubmitWork(1);
  ASSERT_OK(device->RecordEvent(event, 1));
  ASSIGN_OR_FAIL(again, device->QueryEvent(event));
  EXPECT_FALSE(again);
}

TEST(SimDeviceEventTest, StreamWaitEventOrdersLaterWorkAfterTheEvent) {
  auto device = StreamDevice(SimCompletion::kManual);
  constexpr StreamHandle kProducer = 1, kConsumer = 2;
  ASSIGN_OR_FAIL(produced, device->CreateEvent());
  ASSIGN_OR_FAIL(consumed, device->CreateEvent());
  ASSIGN_OR_FAIL(waited, device->CreateEvent());

  const std::uint64_t produce = device->SubmitWork(kProducer);
  ASSERT_OK(device->RecordEvent(produced, kProducer));
  ASSERT_OK(device->StreamWaitEvent(kConsumer, produced));
  // Recorded after the wait but before any kernel: still ordered after the producer.
  ASSERT_OK(device->RecordEvent(waited, kConsumer));
  const std::uint64_t consume = device->SubmitWork(kConsumer);
  ASSERT_OK(device->RecordEvent(consumed, kConsumer));
  ASSIGN_OR_FAIL(waited_early, device->QueryEvent(waited));
  EXPECT_FALSE(waited_early);

  // The consumer's kernel cannot finish before the producer's: completing it completes both.
  ASSERT_OK(device->CompleteWork(kConsumer, consume));
  ASSIGN_OR_FAIL(producer_done, device->QueryEvent(produced));
  EXPECT_TRUE(producer_done);
  ASSIGN_OR_FAIL(consumer_done, device->QueryEvent(consumed));
  EXPECT_TRUE(consumer_done);
  (void)produce;
}

TEST(SimDeviceEventTest, AWaitCompletesOnItsOwnOnceTheEventsWorkIsDone) {
  auto device = StreamDevice(SimCompletion::kManual);
  ASSIGN_OR_FAIL(produced, device->CreateEvent());
  ASSIGN_OR_FAIL(waited, device->CreateEvent());
  ASSIGN_OR_FAIL(consumed, device->CreateEvent());
  const std::uint64_t produce = device->SubmitWork(1);
  ASSERT_OK(device->RecordEvent(produced, 1));
  ASSERT_OK(device->StreamWaitEvent(2, produced));
  ASSERT_OK(device->RecordEvent(waited, 2));
  device->SubmitWork(2);
  ASSERT_OK(device->RecordEvent(consumed, 2));

  ASSERT_OK(device->CompleteWork(1, produce));
  ASSIGN_OR_FAIL(waited_done, device->QueryEvent(waited));
  EXPECT_TRUE(waited_done);
  ASSIGN_OR_FAIL(consumed_done, device->QueryEvent(consumed));
  EXPECT_FALSE(consumed_done) << "the consumer's own kernel is still running";

  // Waiting on a completed event adds nothing to wait for.
  ASSERT_OK(device->StreamWaitEvent(3, produced));
  ASSERT_OK(device->RecordEvent(waited, 3));
  ASSIGN_OR_FAIL(nothing_to_wait, device->QueryEvent(waited));
  EXPECT_TRUE(nothing_to_wait);
}

TEST(SimDeviceEventTest, LongChainsOfWaitsCompleteTransitively) {
  auto device = StreamDevice(SimCompletion::kManual);
  ASSIGN_OR_FAIL(event, device->CreateEvent());
  constexpr int kStreams = 2000;
  for (StreamHandle s = 1; s <= kStreams; ++s) {
    if (s > 1) ASSERT_OK(device->StreamWaitEvent(s, event));
    device->SubmitWork(s);
    ASSERT_OK(device->RecordEvent(event, s));
  }
  EXPECT_EQ(device->Counters().pending_work, 2 * kStreams - 1u);
  device->CompleteStream(kStreams);
  EXPECT_EQ(device->Counters().pending_work, 0u);
}

TEST(SimDeviceEventTest, SynchronizeCompletesWhatItWaitsFor) {
  auto device = StreamDevice(SimCompletion::kManual);
  ASSIGN_OR_FAIL(event, device->CreateEvent());
  ASSIGN_OR_FAIL(other, device->CreateEvent());
  device->SubmitWork(1);
  ASSERT_OK(device->RecordEvent(event, 1));
  device->SubmitWork(2);
  ASSERT_OK(device->RecordEvent(other, 2));
  ASSERT_OK(device->SynchronizeEvent(event));
  ASSIGN_OR_FAIL(done, device->QueryEvent(event));
  EXPECT_TRUE(done);
  ASSIGN_OR_FAIL(other_pending, device->QueryEvent(other));
  EXPECT_FALSE(other_pending);
  ASSERT_OK(device->SynchronizeDevice());
  ASSIGN_OR_FAIL(other_done, device->QueryEvent(other));
  EXPECT_TRUE(other_done);
  EXPECT_EQ(device->Calls(SimOp::kSynchronizeEvent), 1);
  EXPECT_EQ(device->Calls(SimOp::kSynchronizeDevice), 1);
  EXPECT_EQ(device->Counters().pending_work, 0u);
}

// The latency that lets the hazard oracle meet defect b: the caller waits with the device's lock
// released, and what another thread queues meanwhile is not completed by the synchronization.
TEST(SimDeviceEventTest, WorkQueuedDuringASynchronizationsLatencyIsNotCoveredByIt) {
  auto device = StreamDevice(SimCompletion::kManual);
  EXPECT_EQ(device->SetSynchronizeLatency(absl::Microseconds(-1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device->SetSynchronizeLatency(absl::Seconds(2)).code(),
            absl::StatusCode::kInvalidArgument);
  constexpr absl::Duration kLatency = absl::Milliseconds(300);
  ASSERT_OK(device->SetSynchronizeLatency(kLatency));
  const std::uint64_t before = device->SubmitWork(1);
  absl::Time returned_at;
  std::thread synchronizer([&] {
    EXPECT_OK(device->SynchronizeDevice());
    returned_at = absl::Now();
  });
  // Counted once it holds the device's lock; this thread's calls get through only after it has
  // completed the earlier work and released the lock for its latency.
  while (device->Calls(SimOp::kSynchronizeDevice) == 0) std::this_thread::yield();
  const std::uint64_t during = device->SubmitWork(2);
  const absl::Time submitted_at = absl::Now();
  synchronizer.join();
  EXPECT_TRUE(device->IsWorkComplete(before));
  EXPECT_FALSE(device->IsWorkComplete(during));
  // Had the lock been held through the latency, the submission would come after it, at the
  // synchronization's return.
  EXPECT_GT(returned_at - submitted_at, kLatency / 2);
  ASSERT_OK(device->SetSynchronizeLatency(absl::ZeroDuration()));
  ASSERT_OK(device->SynchronizeDevice());
  EXPECT_TRUE(device->IsWorkComplete(during));
}

TEST(SimDeviceEventTest, UnknownEventsAreErrors) {
  auto device = StreamDevice(SimCompletion::kManual);
  ASSIGN_OR_FAIL(event, device->CreateEvent());
  ASSERT_OK(device->DestroyEvent(event));
  absl::Status destroyed = device->DestroyEvent(event);
  EXPECT_TRUE(absl::IsInvalidArgument(destroyed));
  EXPECT_THAT(destroyed.message(), HasSubstr("SimDevice::DestroyEvent"));
  EXPECT_TRUE(absl::IsInvalidArgument(device->RecordEvent(event, 0)));
  EXPECT_TRUE(absl::IsInvalidArgument(device->QueryEvent(event).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(device->SynchronizeEvent(event)));
  EXPECT_TRUE(absl::IsInvalidArgument(device->StreamWaitEvent(0, event)));
  EXPECT_TRUE(absl::IsInvalidArgument(device->DestroyEvent(12345)));
  EXPECT_EQ(device->LiveEvents(), 0u);
}

TEST(SimDeviceEventTest, CaptureMakesQueriesAndSynchronizationFail) {
  auto device = StreamDevice(SimCompletion::kImmediate);
  ASSIGN_OR_FAIL(event, device->CreateEvent());
  ASSERT_OK(device->RecordEvent(event, 0));
  device->SetCapturing(5, true);
  ASSIGN_OR_FAIL(capturing, device->IsCapturing(5));
  EXPECT_TRUE(capturing);
  ASSIGN_OR_FAIL(other, device->IsCapturing(0));
  EXPECT_FALSE(other);

  {
    // Each forbidden call is also hazard H3: collect them instead of failing the test.
    ScopedSimHazardCapture hazards;
    absl::Status query = device->QueryEvent(event).status();
    EXPECT_TRUE(absl::IsFailedPrecondition(query));
    EXPECT_THAT(query.message(), HasSubstr("SimDevice::QueryEvent"));
    EXPECT_THAT(query.message(), HasSubstr("cudaErrorStreamCaptureUnsupported"));
    EXPECT_TRUE(absl::IsFailedPrecondition(device->SynchronizeEvent(event)));
    EXPECT_TRUE(absl::IsFailedPrecondition(device->SynchronizeDevice()));
    EXPECT_EQ(hazards.count(SimHazardKind::kForbiddenDuringCapture), 3u);
  }
  EXPECT_OK(device->RecordEvent(event, 5));  // recording into a graph is legal

  device->SetCapturing(5, false);
  {
    // An event recorded into the graph may not be queried after the capture either.
    ScopedSimHazardCapture hazards;
    absl::Status captured = device->QueryEvent(event).status();
    EXPECT_TRUE(absl::IsFailedPrecondition(captured));
    EXPECT_THAT(captured.message(), HasSubstr("cudaErrorCapturedEvent"));
    EXPECT_EQ(hazards.count(SimHazardKind::kForbiddenDuringCapture), 1u);
  }
  ASSERT_OK(device->RecordEvent(event, 0));
  ASSIGN_OR_FAIL(done, device->QueryEvent(event));
  EXPECT_TRUE(done);
  EXPECT_OK(device->SynchronizeDevice());
}

TEST(SimDeviceStreamTest, ReusedHandleIsNotOrderedAfterTheDestroyedStreamsWork) {
  auto device = StreamDevice(SimCompletion::kManual);
  const StreamHandle old_stream = device->CreateStream();
  EXPECT_NE(old_stream, 0u);
  device->SubmitWork(old_stream);
  ASSIGN_OR_FAIL(old_work, device->CreateEvent());
  ASSERT_OK(device->RecordEvent(old_work, old_stream));
  ASSERT_OK(device->DestroyStream(old_stream));
  EXPECT_EQ(device->Counters().pending_work, 1u) << "destroying a stream does not finish it";

  const StreamHandle new_stream = device->CreateStream();
  EXPECT_EQ(new_stream, old_stream) << "CUDA hands out freed handle values again";
  ASSIGN_OR_FAIL(new_work, device->CreateEvent());
  ASSERT_OK(device->RecordEvent(new_work, new_stream));
  ASSIGN_OR_FAIL(new_done, device->QueryEvent(new_work));
  EXPECT_TRUE(new_done) << "the new stream has no work of its own yet";
  device->SubmitWork(new_stream);
  device->CompleteStream(new_stream);
  ASSIGN_OR_FAIL(old_done, device->QueryEvent(old_work));
  EXPECT_FALSE(old_done) << "the old stream's work must stay pending";

  device->CompleteAll();
  ASSIGN_OR_FAIL(old_done_now, device->QueryEvent(old_work));
  EXPECT_TRUE(old_done_now);
  ASSERT_OK(device->DestroyStream(new_stream));
  EXPECT_TRUE(absl::IsInvalidArgument(device->DestroyStream(new_stream)));
  EXPECT_TRUE(absl::IsInvalidArgument(device->DestroyStream(0)));
  EXPECT_EQ(device->Counters().live_streams, 0u);
}

TEST(SimDeviceStreamTest, HandleReuseCanBeTurnedOff) {
  auto device = StreamDevice(SimCompletion::kManual, 2, /*reuse_stream_handles=*/false);
  const StreamHandle first = device->CreateStream();
  ASSERT_OK(device->DestroyStream(first));
  const StreamHandle second = device->CreateStream();
  EXPECT_NE(first, second);
  EXPECT_EQ(device->Counters().live_streams, 1u);
}

TEST_P(SimDeviceModeTest, AddressesNeverOverlapWhileLive) {
  SimDevice device(ModeOptions(std::size_t{1} << 30));
  std::map<DevicePtr, std::size_t> ranges;  // base -> bytes, all live at once
  std::vector<DevicePtr> reservations;
  for (int i = 0; i < 24; ++i) {
    const std::size_t bytes = (1 + i % 5) * kGran;
    if (i % 2 == 0) {
      ASSIGN_OR_FAIL(p, device.Malloc(bytes - (i % 3) * 4096));
      ranges.emplace(p, bytes);
    } else {
      ASSIGN_OR_FAIL(p, device.ReserveAddress(bytes));
      EXPECT_EQ(p % kGran, 0u);
      ranges.emplace(p, bytes);
      reservations.push_back(p);
    }
  }
  ASSERT_EQ(ranges.size(), 24u) << "two allocations share a base";
  for (auto it = ranges.begin(); std::next(it) != ranges.end(); ++it) {
    EXPECT_LE(it->first + it->second, std::next(it)->first) << "overlap at " << it->first;
  }
  // A second device at the same time never hands out the same addresses either.
  SimDevice other(ModeOptions());
  ASSIGN_OR_FAIL(q, other.Malloc(kGran));
  auto next = ranges.upper_bound(q);
  EXPECT_TRUE(next == ranges.end() || q + kGran <= next->first);
  EXPECT_TRUE(next == ranges.begin() || std::prev(next)->first + std::prev(next)->second <= q);
  ASSERT_OK(other.Free(q));

  for (const auto& [base, bytes] : ranges) {
    if (std::find(reservations.begin(), reservations.end(), base) != reservations.end()) {
      ASSERT_OK(device.ReleaseAddress(base, bytes));
    } else {
      ASSERT_OK(device.Free(base));
    }
  }
  EXPECT_EQ(device.HeldBytes(), 0u);
  EXPECT_EQ(device.LiveReservations(), 0u);
}

TEST_P(SimDeviceModeTest, FillValidatesItsRangeAndIsOrderedOnTheStream) {
  SimDeviceOptions options = ModeOptions();
  options.completion = SimCompletion::kManual;
  SimDevice device(options);
  ASSIGN_OR_FAIL(block, device.Malloc(kGran));
  ASSIGN_OR_FAIL(va, device.ReserveAddress(4 * kGran));
  ASSIGN_OR_FAIL(a, device.CreateChunk(kGran));
  ASSIGN_OR_FAIL(b, device.CreateChunk(kGran));
  ASSERT_OK(device.Map(va, kGran, a));
  ASSERT_OK(device.Map(va + kGran, kGran, b));

  EXPECT_OK(device.Fill({block + 3, 1001, 0xdeadbeef}, 0));
  // Across two adjacent chunks.
  EXPECT_OK(device.Fill({va + kGran - 10, 20, 0x01020304}, 0));
  absl::Status wild = device.Fill({0x1000, 64, 0}, 0);
  EXPECT_TRUE(absl::IsInvalidArgument(wild));
  EXPECT_THAT(wild.message(), HasSubstr("SimDevice::Fill"));
  EXPECT_TRUE(absl::IsInvalidArgument(device.Fill({block + kGran - 4, 8, 0}, 0)))
      << "past the end of the block";
  EXPECT_TRUE(absl::IsInvalidArgument(device.Fill({va + 2 * kGran, 8, 0}, 0)))
      << "reserved but not mapped";
  EXPECT_TRUE(absl::IsInvalidArgument(device.Fill({va + kGran, 2 * kGran, 0}, 0)))
      << "runs off the mapped chunks";
  EXPECT_TRUE(absl::IsInvalidArgument(device.Fill({~DevicePtr{0} - 4, 64, 0}, 0)));
  const SimCounters counters = device.Counters();
  EXPECT_EQ(counters.filled_bytes, 1021u);
  EXPECT_EQ(counters.Calls(SimOp::kFill), 7);

  // The fill is work on its stream: an event recorded after it waits for it.
  ASSIGN_OR_FAIL(event, device.CreateEvent());
  ASSERT_OK(device.RecordEvent(event, 0));
  ASSIGN_OR_FAIL(pending, device.QueryEvent(event));
  EXPECT_FALSE(pending);
  device.CompleteAll();

  ASSERT_OK(device.Unmap(va, 2 * kGran));
  ASSERT_OK(device.ReleaseChunk(a));
  ASSERT_OK(device.ReleaseChunk(b));
  ASSERT_OK(device.ReleaseAddress(va, 4 * kGran));
  ASSERT_OK(device.Free(block));
}

TEST(SimDeviceMemoryTest, FillWritesThePatternAtAnyAlignmentAndLength) {
  SimDevice device(Options(/*accounting_only=*/false));
  ASSIGN_OR_FAIL(block, device.Malloc(64 * 1024));
  std::vector<unsigned char> zeros(64 * 1024, 0);
  ASSERT_OK(device.CopyFromHost(block, zeros.data(), zeros.size()));
  constexpr std::size_t kStart = 5, kLength = 10007;
  ASSERT_OK(device.Fill({block + kStart, kLength, 0x11223344}, 0));
  std::vector<unsigned char> bytes(64 * 1024);
  ASSERT_OK(device.CopyToHost(block, bytes.data(), bytes.size()));
  const unsigned char little_endian[4] = {0x44, 0x33, 0x22, 0x11};
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const unsigned char expected =
        i >= kStart && i < kStart + kLength ? little_endian[(i - kStart) % 4] : 0;
    ASSERT_EQ(bytes[i], expected) << "at byte " << i;
  }
  ASSERT_OK(device.Free(block));
}

TEST(SimDeviceAccountingTest, HostCopiesNeedMemoryMode) {
  SimDevice device(Options(/*accounting_only=*/true));
  ASSIGN_OR_FAIL(block, device.Malloc(kGran));
  char byte = 0;
  EXPECT_TRUE(absl::IsFailedPrecondition(device.CopyToHost(block, &byte, 1)));
  EXPECT_TRUE(absl::IsFailedPrecondition(device.CopyFromHost(block, &byte, 1)));
  ASSERT_OK(device.Free(block));
}

TEST(SimDeviceMemoryTest, HostCopiesRejectBadRanges) {
  SimDevice device(Options(/*accounting_only=*/false));
  ASSIGN_OR_FAIL(block, device.Malloc(4096));
  char buffer[16] = {};
  EXPECT_TRUE(absl::IsInvalidArgument(device.CopyToHost(block + 4090, buffer, 16)));
  EXPECT_TRUE(absl::IsInvalidArgument(device.CopyFromHost(0x10, buffer, 16)));
  EXPECT_OK(device.CopyToHost(block + 4080, buffer, 16));
  ASSERT_OK(device.Free(block));
  EXPECT_TRUE(absl::IsInvalidArgument(device.CopyToHost(block, buffer, 16))) << "freed";
}

TEST_P(SimDeviceModeTest, EverythingReleasedLeavesNothingHeld) {
  SimDevice device(ModeOptions());
  ASSIGN_OR_FAIL(block, device.Malloc(3 * kMiB));
  ASSIGN_OR_FAIL(va, device.ReserveAddress(4 * kGran));
  std::vector<ChunkHandle> chunks;
  for (int i = 0; i < 4; ++i) {
    ASSIGN_OR_FAIL(chunk, device.CreateChunk(kGran));
    ASSERT_OK(device.Map(va + i * kGran, kGran, chunk));
    chunks.push_back(chunk);
  }
  ASSIGN_OR_FAIL(event, device.CreateEvent());
  SimCounters live = device.Counters();
  EXPECT_EQ(live.held_bytes, 3 * kMiB + 4 * kGran);
  EXPECT_EQ(live.chunk_bytes, 4 * kGran);
  EXPECT_EQ(live.malloc_bytes, 3 * kMiB);
  EXPECT_EQ(live.live_mappings, 4u);
  EXPECT_EQ(live.mapped_bytes, 4 * kGran);
  EXPECT_EQ(live.live_reservations, 1u);
  EXPECT_EQ(live.reserved_bytes, 4 * kGran);
  EXPECT_EQ(live.live_events, 1u);

  ASSERT_OK(device.Unmap(va, 4 * kGran));
  for (ChunkHandle chunk : chunks) ASSERT_OK(device.ReleaseChunk(chunk));
  ASSERT_OK(device.ReleaseAddress(va, 4 * kGran));
  ASSERT_OK(device.Free(block));
  ASSERT_OK(device.DestroyEvent(event));
  const SimCounters after = device.Counters();
  EXPECT_EQ(after.held_bytes, 0u);
  EXPECT_EQ(after.chunk_bytes + after.malloc_bytes + after.mapped_bytes + after.reserved_bytes, 0u);
  EXPECT_EQ(after.live_mappings + after.live_reservations + after.live_chunks + after.live_mallocs +
                after.live_events,
            0u);
  EXPECT_EQ(after.Calls(SimOp::kCreateChunk), 4);
  device.ResetCallCounts();
  EXPECT_EQ(device.Calls(SimOp::kCreateChunk), 0);
}

TEST_P(SimDeviceModeTest, ManyThreadsMayCallAtOnce) {
  SimDevice device(ModeOptions(std::size_t{1} << 30));
  constexpr int kThreads = 4, kRounds = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        absl::StatusOr<DevicePtr> va = device.ReserveAddress(2 * kGran);
        absl::StatusOr<ChunkHandle> chunk = device.CreateChunk(kGran);
        absl::StatusOr<DevicePtr> block = device.Malloc(4096);
        absl::StatusOr<EventHandle> event = device.CreateEvent();
        if (!va.ok() || !chunk.ok() || !block.ok() || !event.ok()) {
          ++failures;
          return;
        }
        bool ok = device.Map(*va + kGran, kGran, *chunk).ok();
        ok &= device.Fill({*va + kGran, 64, static_cast<std::uint32_t>(t)}, t).ok();
        ok &= device.RecordEvent(*event, t).ok();
        ok &= device.QueryEvent(*event).ok();
        ok &= device.Unmap(*va + kGran, kGran).ok();
        ok &= device.ReleaseChunk(*chunk).ok();
        ok &= device.ReleaseAddress(*va, 2 * kGran).ok();
        ok &= device.Free(*block).ok();
        ok &= device.DestroyEvent(*event).ok();
        if (!ok) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(device.HeldBytes(), 0u);
  EXPECT_EQ(device.Calls(SimOp::kMap), kThreads * kRounds);
}

TEST(SimDeviceHostErrorsTest, OutOfMappingsNamesTheLinuxLimit) {
  absl::Status enomem = HostMappingError("mmap of the chunk", ENOMEM);
  EXPECT_TRUE(absl::IsResourceExhausted(enomem));
  EXPECT_THAT(enomem.message(), HasSubstr("vm.max_map_count"));
  EXPECT_THAT(enomem.message(), HasSubstr("mmap of the chunk"));
  absl::Status other = HostMappingError("munmap", EINVAL);
  EXPECT_TRUE(absl::IsInternal(other));
}

}  // namespace
}  // namespace vramcache
