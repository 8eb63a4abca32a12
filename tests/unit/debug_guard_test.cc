// The debug modes on the simulated device in memory mode: guard bands written, kept and checked
// (with the exact band and offset of a planted out-of-bounds write), poison and zero fills read
// back, CheckAll over many blocks, no false positives over random sizes, capture and device
// errors; and SimDevice::VerifyPatterns itself against a byte-by-byte host model.
#include "allocator/core/debug_guard.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "allocator/device/sim_device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_macros.h"

namespace vramcache {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::size_t kArenaBytes = std::size_t{16} << 20;
constexpr StreamHandle kStream = 0x51;

std::uint8_t PatternByte(std::uint32_t pattern, std::size_t offset) {
  return static_cast<std::uint8_t>(pattern >> (8 * (offset % 4)));
}

AllocatorConfig Modes(bool canaries, bool poison, bool zero) {
  AllocatorConfig config;
  config.canaries = canaries;
  config.poison_on_free = poison;
  config.zero_on_alloc = zero;
  return config;
}

// A memory-mode device with one large Malloc'ed arena that tests carve blocks from, the way the
// allocator carves them from a segment.
class DebugGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SimDeviceOptions options;
    options.capacity = std::size_t{256} << 20;
    options.granularity = 64 * 1024;
    options.accounting_only = false;
    options.completion = SimCompletion::kManual;
    device_ = std::make_unique<SimDevice>(options);
    absl::StatusOr<DevicePtr> arena = device_->Malloc(kArenaBytes);
    ASSERT_TRUE(arena.ok()) << arena.status();
    arena_ = *arena;
    std::vector<std::uint8_t> garbage(kArenaBytes, 0x33);
    ASSERT_OK(device_->CopyFromHost(arena_, garbage.data(), garbage.size()));
  }

  // The block the allocator would carve at `offset` into the arena for `user_size` bytes, with
  // `slack` extra bytes of rounding at its end.
  GuardedBlock Carve(const DebugGuard& guard, std::size_t offset, std::size_t user_size,
                     std::size_t slack = 0) const {
    GuardedBlock b;
    b.block_addr = arena_ + offset;
    b.block_size = guard.PaddedSize(user_size) + slack;
    b.user_ptr = b.block_addr + guard.front_bytes();
    b.user_size = user_size;
    b.stream = kStream;
    return b;
  }

  std::vector<std::uint8_t> Read(DevicePtr ptr, std::size_t bytes) {
    std::vector<std::uint8_t> host(bytes);
    EXPECT_OK(device_->CopyToHost(ptr, host.data(), bytes));
    return host;
  }
  void WriteByte(DevicePtr ptr, std::uint8_t value) {
    ASSERT_OK(device_->CopyFromHost(ptr, &value, 1));
  }

  // Whether [ptr, ptr + bytes) holds `pattern` from ptr; names the first byte that does not.
  ::testing::AssertionResult Holds(DevicePtr ptr, std::size_t bytes, std::uint32_t pattern) {
    const std::vector<std::uint8_t> host = Read(ptr, bytes);
    for (std::size_t i = 0; i < host.size(); ++i) {
      if (host[i] != PatternByte(pattern, i)) {
        return ::testing::AssertionFailure() << absl::StrFormat(
                   "byte %d is 0x%02x, expected 0x%02x", i, host[i], PatternByte(pattern, i));
      }
    }
    return ::testing::AssertionSuccess();
  }

  std::unique_ptr<SimDevice> device_;
  DevicePtr arena_ = 0;
};

// --- Geometry ------------------------------------------------------------------------------

TEST_F(DebugGuardTest, OffByDefaultAndThenTouchesNothing) {
  DebugGuard guard(device_.get(), AllocatorConfig{});
  EXPECT_FALSE(guard.active());
  EXPECT_EQ(guard.front_bytes(), 0u);
  EXPECT_EQ(guard.PaddedSize(1000), 1000u);
  const GuardedBlock b = Carve(guard, 0, 1000);
  EXPECT_OK(guard.OnAllocate(b));
  EXPECT_OK(guard.OnFree(b));
  EXPECT_OK(guard.CheckAll({b}));
  EXPECT_EQ(device_->Counters().Calls(SimOp::kFill), 0);
  EXPECT_TRUE(Holds(arena_, 1000, 0x33333333)) << "nothing was written";
}

TEST_F(DebugGuardTest, PaddedSizeKeepsAlignmentAndAlwaysLeavesABackBand) {
  DebugGuard guard(device_.get(), Modes(true, false, false));
  EXPECT_TRUE(guard.active());
  EXPECT_EQ(guard.front_bytes(), kCanaryFrontBytes);
  EXPECT_EQ(kCanaryFrontBytes % 512, 0u);
  for (std::size_t size : {std::size_t{1}, std::size_t{511}, std::size_t{512}, std::size_t{513},
                           std::size_t{1000}, std::size_t{1} << 20}) {
    const std::size_t padded = guard.PaddedSize(size);
    EXPECT_EQ(padded % 512, 0u) << size;
    const std::size_t back = padded - kCanaryFrontBytes - size;
    EXPECT_GE(back, kCanaryBackBytes) << size;
    EXPECT_LT(back, 2 * kCanaryBackBytes) << size;
  }
  EXPECT_EQ(guard.PaddedSize(512), 512u + 512u + 512u);
  EXPECT_EQ(guard.PaddedSize(SIZE_MAX - 100), SIZE_MAX) << "saturates instead of wrapping";
}

TEST_F(DebugGuardTest, RejectsAUserRangeOutsideItsBlockAndWritesNothing) {
  DebugGuard guard(device_.get(), Modes(true, true, true));
  const GuardedBlock good = Carve(guard, 0, 1000);
  std::vector<GuardedBlock> bad(5, good);
  bad[0].user_size = good.block_size;                // runs past the block
  bad[1].user_ptr = good.block_addr - 512;           // starts before it
  bad[2].user_ptr = good.block_addr + 256;           // not where the front band ends
  bad[3].block_addr = 0;                             // no block
  bad[4].block_size = guard.PaddedSize(1000) - 512;  // no room for the back band
  for (const GuardedBlock& b : bad) {
    EXPECT_EQ(guard.OnAllocate(b).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(guard.OnFree(b).code(), absl::StatusCode::kInvalidArgument);
  }
  const absl::Status all = guard.CheckAll({good, bad[0]});
  EXPECT_EQ(all.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(all.message(), HasSubstr("live block 1 of 2"));
  EXPECT_EQ(device_->Counters().filled_bytes, 0u);
  EXPECT_EQ(device_->Counters().Calls(SimOp::kFill), 0);
}

// --- Canaries ------------------------------------------------------------------------------

TEST_F(DebugGuardTest, BandsAreWrittenOnTheStreamAndAnIntactBlockFreesCleanly) {
  DebugGuard guard(device_.get(), Modes(true, false, false));
  const GuardedBlock b = Carve(guard, 4096, 1000, /*slack=*/512);
  ASSERT_OK(guard.OnAllocate(b));
  EXPECT_TRUE(Holds(b.block_addr, kCanaryFrontBytes, kCanaryPattern));
  const std::size_t back = b.block_size - kCanaryFrontBytes - b.user_size;
  EXPECT_TRUE(Holds(b.user_ptr + b.user_size, back, kCanaryPattern))
      << "the back band covers the allocator's slack too";
  EXPECT_TRUE(Holds(b.user_ptr, b.user_size, 0x33333333)) << "user bytes untouched";
  EXPECT_EQ(device_->Counters().pending_work, 2u) << "two fills, queued on the block's stream";

  std::vector<std::uint8_t> data(b.user_size, 0xee);
  ASSERT_OK(device_->CopyFromHost(b.user_ptr, data.data(), data.size()));
  EXPECT_OK(guard.OnFree(b));
  EXPECT_EQ(device_->Counters().pending_work, 0u) << "verification synchronized the stream";
  EXPECT_EQ(device_->Counters().filled_bytes, b.block_size - b.user_size);
}

TEST_F(DebugGuardTest, OneBytePastTheEndIsReportedWithItsOffset) {
  DebugGuard guard(device_.get(), Modes(true, false, false));
  const GuardedBlock b = Carve(guard, 0, 1000);
  ASSERT_OK(guard.OnAllocate(b));
  WriteByte(b.user_ptr + 1000, 0x00);
  const absl::Status status = guard.OnFree(b);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(
      status.message(),
      AllOf(HasSubstr("out-of-bounds write"),
            HasSubstr(absl::StrFormat("allocation %#x (1000 bytes, stream 0x51)", b.user_ptr)),
            HasSubstr(absl::StrFormat("block %#x (%d bytes)", b.block_addr, b.block_size)),
            HasSubstr("back band [+1000, +1536) overwritten: 1 of 536 bytes differ"),
            HasSubstr("offset +1000 (end + 0) holds 0x00, expected 0xde"),
            Not(HasSubstr("front band"))));
}

TEST_F(DebugGuardTest, OneByteBeforeTheStartIsReportedWithANegativeOffset) {
  DebugGuard guard(device_.get(), Modes(true, false, false));
  const GuardedBlock b = Carve(guard, 0, 4096);
  ASSERT_OK(guard.OnAllocate(b));
  WriteByte(b.user_ptr - 1, 0xff);
  const absl::Status status = guard.OnFree(b);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  // Byte 511 of the band is pattern byte 3 (511 % 4): 0x5a.
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("front band [-512, 0) overwritten: 1 of 512 bytes differ"),
                    HasSubstr("offset -1 (start - 1) holds 0xff, expected 0x5a"),
                    Not(HasSubstr("back band"))));
}

TEST_F(DebugGuardTest, BothBandsDamagedAreBothReported) {
  DebugGuard guard(device_.get(), Modes(true, false, false));
  const GuardedBlock b = Carve(guard, 0, 700);
  ASSERT_OK(guard.OnAllocate(b));
  std::vector<std::uint8_t> zeros(8, 0);
  ASSERT_OK(device_->CopyFromHost(b.user_ptr - 8, zeros.data(), zeros.size()));
  ASSERT_OK(device_->CopyFromHost(b.user_ptr + 700 + 3, zeros.data(), 2));
  const absl::Status status = guard.OnFree(b);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("front band [-512, 0) overwritten: 8 of 512 bytes differ; the "
                              "lowest at offset -8 (start - 8)"),
                    HasSubstr("back band [+700, +1536) overwritten: 2 of 836 bytes differ; the "
                              "lowest at offset +703 (end + 3)")));
}

TEST_F(DebugGuardTest, EveryPlantedByteInEitherBandIsFoundAtItsExactOffset) {
  DebugGuard guard(device_.get(), Modes(true, false, false));
  std::mt19937_64 rng(20240917);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t user_size = 1 + rng() % 20000;
    const GuardedBlock b = Carve(guard, 512 * (rng() % 64), user_size, 512 * (rng() % 3));
    ASSERT_OK(guard.OnAllocate(b));
    const bool front = rng() % 2 == 0;
    const std::size_t band_bytes = front ? kCanaryFrontBytes : b.block_size - 512 - user_size;
    const std::size_t at = rng() % band_bytes;
    const DevicePtr band = front ? b.block_addr : b.user_ptr + user_size;
    const std::uint8_t expected = PatternByte(kCanaryPattern, at);
    const auto value = static_cast<std::uint8_t>(expected ^ (1 + rng() % 255));
    WriteByte(band + at, value);
    const absl::Status status = guard.OnFree(b);
    ASSERT_EQ(status.code(), absl::StatusCode::kDataLoss) << "trial " << trial;
    const std::string where = front ? absl::StrFormat("offset -%d (start - %d)", 512 - at, 512 - at)
                                    : absl::StrFormat("offset +%d (end + %d)", user_size + at, at);
    EXPECT_THAT(status.message(), HasSubstr(absl::StrFormat("%s holds 0x%02x, expected 0x%02x",
                                                            where, value, expected)))
        << "trial " << trial;
  }
}

TEST_F(DebugGuardTest, NoFalsePositivesOverRandomSizesAndPlacements) {
  DebugGuard guard(device_.get(), Modes(true, true, true));
  std::mt19937_64 rng(77);
  std::vector<GuardedBlock> live;
  std::size_t offset = 0;
  std::vector<std::uint8_t> data;
  for (int i = 0; i < 400; ++i) {
    // Mostly small sizes (odd ones included), sometimes a few hundred KiB.
    const std::size_t user_size = rng() % 8 == 0 ? 1 + rng() % (256 * 1024) : 1 + rng() % 3000;
    const GuardedBlock b = Carve(guard, offset, user_size, 512 * (rng() % 4));
    if (offset + b.block_size > kArenaBytes) break;
    offset += b.block_size + 512 * (rng() % 3);
    ASSERT_OK(guard.OnAllocate(b));
    // The user writes every byte it owns, with bytes that include the canary's own.
    data.resize(user_size);
    for (std::uint8_t& byte : data) byte = static_cast<std::uint8_t>(rng());
    ASSERT_OK(device_->CopyFromHost(b.user_ptr, data.data(), data.size()));
    live.push_back(b);
  }
  ASSERT_GT(live.size(), 100u);
  EXPECT_OK(guard.CheckAll(live));
  for (std::size_t i = 0; i < live.size(); i += 2) {
    const absl::Status status = guard.OnFree(live[i]);
    EXPECT_TRUE(status.ok()) << "block " << i << ": " << status;
  }
}

TEST_F(DebugGuardTest, CheckAllListsEveryDamagedBlockAndNoCleanOne) {
  DebugGuard guard(device_.get(), Modes(true, false, false));
  std::vector<GuardedBlock> live;
  for (int i = 0; i < 10; ++i) {
    live.push_back(Carve(guard, 8192 * static_cast<std::size_t>(i), 100 + 37 * i));
    ASSERT_OK(guard.OnAllocate(live.back()));
  }
  EXPECT_OK(guard.CheckAll(live));

  WriteByte(live[2].user_ptr + live[2].user_size + 10, 0);
  WriteByte(live[5].user_ptr - 3, 0);
  WriteByte(live[7].user_ptr - 512, 0);
  WriteByte(live[7].user_ptr + live[7].user_size, 0);
  // The check comes after every stream's work: pending work elsewhere is synchronized first.
  const std::uint64_t ticket = device_->SubmitWork(0x99);
  const absl::Status status = guard.CheckAll(live);
  EXPECT_TRUE(device_->IsWorkComplete(ticket));
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("4 damaged bands in 3 of 10 live allocations"),
                    HasSubstr(absl::StrFormat("allocation %#x", live[2].user_ptr)),
                    HasSubstr("offset +184 (end + 10)"), HasSubstr("offset -3 (start - 3)"),
                    HasSubstr("offset -512 (start - 512)"),
                    HasSubstr(absl::StrFormat("offset +%d (end + 0)", live[7].user_size))));
  for (int clean : {0, 1, 3, 4, 6, 8, 9}) {
    EXPECT_THAT(status.message(),
                Not(HasSubstr(absl::StrFormat("allocation %#x ", live[clean].user_ptr))))
        << clean;
  }
}

TEST_F(DebugGuardTest, CheckAllListsTheFirst64ViolationsAndCountsTheRest) {
  DebugGuard guard(device_.get(), Modes(true, false, false));
  std::vector<GuardedBlock> live;
  for (int i = 0; i < 70; ++i) {
    live.push_back(Carve(guard, 2048 * static_cast<std::size_t>(i), 64));
    ASSERT_OK(guard.OnAllocate(live.back()));
    WriteByte(live.back().user_ptr + 64, 0);
  }
  const absl::Status status = guard.CheckAll(live);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("70 damaged bands in 70 of 70 live allocations"),
                                      HasSubstr("... and 6 more")));
  EXPECT_THAT(status.message(),
              Not(HasSubstr(absl::StrFormat("allocation %#x", live[64].user_ptr))));
}

TEST_F(DebugGuardTest, VerificationIsSkippedOnACapturingStreamAndCheckAllRefusesCapture) {
  DebugGuard guard(device_.get(), Modes(true, true, false));
  const GuardedBlock b = Carve(guard, 0, 1000);
  ASSERT_OK(guard.OnAllocate(b));
  WriteByte(b.user_ptr + 1000, 0);
  device_->SetCapturing(kStream, true);
  EXPECT_TRUE(guard.VerifyBands(b).ok()) << "no synchronization inside a capture";
  {
    // CheckAll is refused through the device: its synchronization during the capture is hazard
    // H3, provoked on purpose here.
    ScopedSimHazardCapture hazards;
    const absl::Status all = guard.CheckAll({b});
    EXPECT_EQ(all.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(all.message(), HasSubstr("capturing"));
    EXPECT_EQ(hazards.count(SimHazardKind::kForbiddenDuringCapture), 1u) << hazards.Summary();
  }
  device_->SetCapturing(kStream, false);
  EXPECT_EQ(guard.CheckAll({b}).code(), absl::StatusCode::kDataLoss) << "found afterwards";
  EXPECT_EQ(guard.OnFree(b).code(), absl::StatusCode::kDataLoss);
}

TEST_F(DebugGuardTest, DeviceErrorsAreReturned) {
  DebugGuard guard(device_.get(), Modes(true, true, false));
  const GuardedBlock b = Carve(guard, 0, 1000);
  device_->FailNext(SimOp::kFill, absl::InternalError("injected fill failure"));
  const absl::Status allocate = guard.OnAllocate(b);
  EXPECT_EQ(allocate.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(allocate.message(), HasSubstr("injected fill failure"));

  ASSERT_OK(guard.OnAllocate(b));
  device_->FailNext(SimOp::kIsCapturing, absl::InternalError("injected query failure"));
  EXPECT_EQ(guard.VerifyBands(b).code(), absl::StatusCode::kInternal);
  device_->FailNext(SimOp::kSynchronizeDevice, absl::InternalError("injected sync failure"));
  EXPECT_EQ(guard.CheckAll({b}).code(), absl::StatusCode::kInternal);
  // The verification fails; the poison is still written.
  device_->FailNext(SimOp::kFill, absl::InternalError("injected verify failure"));
  const absl::Status free = guard.OnFree(b);
  EXPECT_EQ(free.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(free.message(), HasSubstr("injected verify failure"));
  EXPECT_TRUE(Holds(b.block_addr, b.block_size, kPoisonPattern));
}

// --- Poison and zero -------------------------------------------------------------------------

TEST_F(DebugGuardTest, PoisonCoversTheWholeFreedBlock) {
  DebugGuard guard(device_.get(), Modes(false, true, false));
  EXPECT_EQ(guard.front_bytes(), 0u);
  const GuardedBlock b = Carve(guard, 1024, 3000, /*slack=*/72);
  ASSERT_OK(guard.OnAllocate(b));
  EXPECT_EQ(device_->Counters().Calls(SimOp::kFill), 0) << "poison alone writes nothing on alloc";
  ASSERT_OK(guard.OnFree(b));
  EXPECT_TRUE(Holds(b.block_addr, b.block_size, kPoisonPattern));
  EXPECT_TRUE(Holds(b.block_addr + b.block_size, 64, 0x33333333)) << "and nothing past it";
  EXPECT_EQ(device_->Counters().pending_work, 1u) << "queued on the block's stream";
}

TEST_F(DebugGuardTest, PoisonIsAFloatNaNInEveryWidth) {
  std::uint32_t bits32 = kPoisonPattern;
  float f32 = 0;
  std::memcpy(&f32, &bits32, sizeof(f32));
  EXPECT_TRUE(f32 != f32) << "float32 NaN";
  const std::uint64_t bits64 = (std::uint64_t{kPoisonPattern} << 32) | kPoisonPattern;
  double f64 = 0;
  std::memcpy(&f64, &bits64, sizeof(f64));
  EXPECT_TRUE(f64 != f64) << "float64 NaN";
  const auto half = static_cast<std::uint16_t>(kPoisonPattern);
  EXPECT_EQ(half & 0x7c00, 0x7c00) << "float16: exponent all ones";
  EXPECT_NE(half & 0x03ff, 0) << "float16: mantissa not zero";
  EXPECT_EQ(half & 0x7f80, 0x7f80) << "bfloat16: exponent all ones";
  EXPECT_NE(half & 0x007f, 0) << "bfloat16: mantissa not zero";
}

TEST_F(DebugGuardTest, PoisonIsWrittenEvenWhenTheBandsWereDamaged) {
  DebugGuard guard(device_.get(), Modes(true, true, false));
  const GuardedBlock b = Carve(guard, 0, 1000);
  ASSERT_OK(guard.OnAllocate(b));
  WriteByte(b.user_ptr - 1, 0);
  EXPECT_EQ(guard.OnFree(b).code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Holds(b.block_addr, b.block_size, kPoisonPattern));
}

TEST_F(DebugGuardTest, ZeroOnAllocZeroesTheUserBytesOnly) {
  DebugGuard plain(device_.get(), Modes(false, false, true));
  const GuardedBlock a = Carve(plain, 0, 5000, /*slack=*/8);
  ASSERT_OK(plain.OnAllocate(a));
  EXPECT_TRUE(Holds(a.user_ptr, 5000, 0));
  EXPECT_TRUE(Holds(a.user_ptr + 5000, 8, 0x33333333));
  EXPECT_TRUE(plain.OnFree(a).ok()) << "zero_on_alloc does nothing at free";

  DebugGuard guarded(device_.get(), Modes(true, false, true));
  const GuardedBlock b = Carve(guarded, 65536, 777);
  ASSERT_OK(guarded.OnAllocate(b));
  EXPECT_TRUE(Holds(b.user_ptr, 777, 0));
  EXPECT_TRUE(Holds(b.block_addr, 512, kCanaryPattern));
  EXPECT_TRUE(Holds(b.user_ptr + 777, b.block_size - 512 - 777, kCanaryPattern));
  EXPECT_OK(guarded.OnFree(b));
}

// --- SimDevice::VerifyPatterns -----------------------------------------------------------------

TEST_F(DebugGuardTest, VerifyPatternsFindsTheFirstDifferenceAndCountsThemAll) {
  const DevicePtr at = arena_ + 13;  // any alignment
  ASSERT_OK(device_->Fill({at, 100, 0x44332211}, kStream));
  ASSIGN_OR_FAIL(intact, device_->VerifyPatterns({{at, 100, 0x44332211}}, kStream));
  ASSERT_EQ(intact.size(), 1u);
  EXPECT_FALSE(intact[0].has_value());

  WriteByte(at + 9, 0xab);
  WriteByte(at + 50, 0xcd);
  ASSIGN_OR_FAIL(
      found, device_->VerifyPatterns({{at, 100, 0x44332211}, {at + 10, 40, 0x44332211}, {at, 0, 0}},
                                     kStream));
  ASSERT_EQ(found.size(), 3u);
  ASSERT_TRUE(found[0].has_value());
  EXPECT_EQ(found[0]->first_offset, 9u);
  EXPECT_EQ(found[0]->found, 0xab);
  EXPECT_EQ(found[0]->expected, 0x22);
  EXPECT_EQ(found[0]->differing_bytes, 2u);
  // The same bytes seen from offset 10 are out of phase with the pattern: nearly all differ.
  ASSERT_TRUE(found[1].has_value());
  EXPECT_EQ(found[1]->first_offset, 0u);
  EXPECT_FALSE(found[2].has_value()) << "an empty range matches";
  ASSIGN_OR_FAIL(none, device_->VerifyPatterns({}, kStream));
  EXPECT_TRUE(none.empty());
}

TEST_F(DebugGuardTest, VerifyPatternsAgreesWithAHostModelOnRandomRanges) {
  std::mt19937_64 rng(4242);
  std::vector<std::uint8_t> host;
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t bytes = 1 + rng() % 70000;
    const DevicePtr at = arena_ + rng() % (kArenaBytes - bytes);
    const auto pattern = static_cast<std::uint32_t>(rng());
    ASSERT_OK(device_->Fill({at, bytes, pattern}, kStream));
    const int corruptions = static_cast<int>(rng() % 4);
    for (int c = 0; c < corruptions; ++c)
      WriteByte(at + rng() % bytes, static_cast<std::uint8_t>(rng()));
    host = Read(at, bytes);
    std::optional<PatternMismatch> model;
    for (std::size_t i = 0; i < bytes; ++i) {
      if (host[i] == PatternByte(pattern, i)) continue;
      if (!model) model = PatternMismatch{i, host[i], PatternByte(pattern, i), 0};
      ++model->differing_bytes;
    }
    ASSIGN_OR_FAIL(found, device_->VerifyPatterns({{at, bytes, pattern}}, kStream));
    ASSERT_EQ(found[0].has_value(), model.has_value()) << "trial " << trial;
    if (!model) continue;
    EXPECT_EQ(found[0]->first_offset, model->first_offset) << "trial " << trial;
    EXPECT_EQ(found[0]->found, model->found) << "trial " << trial;
    EXPECT_EQ(found[0]->expected, model->expected) << "trial " << trial;
    EXPECT_EQ(found[0]->differing_bytes, model->differing_bytes) << "trial " << trial;
  }
}

TEST_F(DebugGuardTest, VerifyPatternsRejectsBadRangesWithoutReadingThem) {
  const std::vector<std::pair<PatternCheck, std::string>> cases = {
      {{0, 16, 0}, "not inside a Malloc'ed block"},
      {{arena_ + kArenaBytes - 8, 16, 0}, "runs past the end"},
      {{arena_ + 8, SIZE_MAX, 0}, "wraps around"},
      {{0x1000, 4, 0}, "not inside a Malloc'ed block"},
  };
  for (const auto& [bad, message] : cases) {
    const auto result = device_->VerifyPatterns({{arena_, 64, 0x33333333}, bad}, kStream);
    ASSERT_FALSE(result.ok()) << message;
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(), AllOf(HasSubstr("SimDevice::VerifyPatterns"),
                                                 HasSubstr(message), HasSubstr("check 1 of 2")));
  }
}

TEST_F(DebugGuardTest, VerifyPatternsSynchronizesItsStreamAndRefusesDuringCapture) {
  const std::uint64_t mine = device_->SubmitWork(kStream);
  const std::uint64_t other = device_->SubmitWork(kStream + 1);
  ASSERT_OK(device_->VerifyPatterns({{arena_, 64, 0x33333333}}, kStream).status());
  EXPECT_TRUE(device_->IsWorkComplete(mine));
  EXPECT_FALSE(device_->IsWorkComplete(other)) << "only its own stream";

  device_->SetCapturing(kStream + 1, true);
  ScopedSimHazardCapture hazards;  // the refused call is hazard H3, on purpose
  const auto refused = device_->VerifyPatterns({{arena_, 64, 0}}, kStream);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(hazards.count(SimHazardKind::kForbiddenDuringCapture), 1u) << hazards.Summary();
  device_->SetCapturing(kStream + 1, false);
}

TEST(DebugGuardAccountingTest, AccountingModeValidatesAndHasNothingToCompare) {
  SimDevice device;  // accounting-only by default
  ASSIGN_OR_FAIL(ptr, device.Malloc(1 << 20));
  ASSIGN_OR_FAIL(found, device.VerifyPatterns({{ptr, 4096, 0x12345678}}, 0));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_FALSE(found[0].has_value());
  EXPECT_EQ(device.VerifyPatterns({{ptr, 2 << 20, 0}}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);

  // The guard runs on it too (replays with canaries on): it fills and finds nothing.
  DebugGuard guard(&device, Modes(true, true, true));
  GuardedBlock b{ptr, guard.PaddedSize(100), ptr + 512, 100, 0};
  EXPECT_OK(guard.OnAllocate(b));
  EXPECT_OK(guard.OnFree(b));
  EXPECT_OK(guard.CheckAll({b}));
}

}  // namespace
}  // namespace vramcache
