// The simulated device's hazard checks: each kind (H1 release in use, H2 unordered reuse, H3
// forbidden during capture, H4 foreign or dead handle) is reported with both sides named, and
// what CUDA orders (stream order, event chains, completion seen by a query or synchronize) is
// not. Also kRandom completion, LaunchWork's validation and Free's device synchronization.
#include <cstdint>
#include <string>
#include <vector>

#include "allocator/device/sim_device.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/status_macros.h"

namespace vramcache {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr std::size_t kGran = std::size_t{2} << 20;

SimDeviceOptions ManualOptions(int ordinal = 0) {
  SimDeviceOptions options;
  options.capacity = 64u << 20;
  options.completion = SimCompletion::kManual;
  options.ordinal = ordinal;
  return options;
}

// A device with one reservation of four granules and chunk `chunk` mapped at its start.
struct MappedDevice {
  explicit MappedDevice(const SimDeviceOptions& options = ManualOptions()) : device(options) {
    va = *device.ReserveAddress(4 * kGran);
    chunk = *device.CreateChunk(kGran);
    EXPECT_TRUE(device.Map(va, kGran, chunk).ok());
  }
  SimDevice device;
  DevicePtr va = 0;
  ChunkHandle chunk = 0;
};

std::string Messages(const ScopedSimHazardCapture& capture) { return capture.Summary(); }

TEST(SimHazardTest, NamesAreStable) {
  EXPECT_EQ(SimHazardName(SimHazardKind::kReleaseInUse), "H1 release in use");
  EXPECT_EQ(SimHazardName(SimHazardKind::kUnorderedReuse), "H2 unordered reuse");
  EXPECT_EQ(SimHazardName(SimHazardKind::kForbiddenDuringCapture), "H3 forbidden during capture");
  EXPECT_EQ(SimHazardName(SimHazardKind::kForeignOrDeadHandle), "H4 foreign or dead handle");
}

TEST(SimHazardTest, UnmapAndReleaseUnderRunningWorkAreH1AndStillHappen) {
  MappedDevice d;
  ASSIGN_OR_FAIL(ticket, d.device.LaunchWork(3, {{d.va + 4096, 100, 7}}, "kernel seven"));
  ScopedSimHazardCapture capture;
  ASSERT_OK(d.device.Unmap(d.va, kGran));
  ASSERT_EQ(capture.count(SimHazardKind::kReleaseInUse), 1u) << Messages(capture);
  const std::string message = capture.hazards()[0].message;
  EXPECT_THAT(message, AllOf(HasSubstr("Unmap("), HasSubstr("work #" + std::to_string(ticket)),
                             HasSubstr("'kernel seven'"), HasSubstr("stream 0x3"),
                             HasSubstr("owner 7"), HasSubstr("chunk")));
  EXPECT_EQ(d.device.LiveMappings(), 0u) << "the unmap still happened";

  ASSERT_OK(d.device.ReleaseChunk(d.chunk));
  ASSERT_OK(d.device.ReleaseAddress(d.va, 4 * kGran));
  EXPECT_EQ(capture.count(SimHazardKind::kReleaseInUse), 3u) << Messages(capture);
  EXPECT_THAT(capture.hazards()[1].message, HasSubstr("ReleaseChunk(chunk"));
  EXPECT_THAT(capture.hazards()[2].message, HasSubstr("ReleaseAddress("));
  EXPECT_EQ(d.device.Hazards().size(), 3u);
  EXPECT_EQ(d.device.HeldBytes(), 0u);
}

TEST(SimHazardTest, ReleaseAfterTheWorkCompletedIsNoHazard) {
  MappedDevice d;
  ASSERT_TRUE(d.device.LaunchWork(3, {{d.va, kGran, 7}}).ok());
  // Synchronized, then unmapped: the order the allocator must keep.
  ASSERT_OK(d.device.SynchronizeDevice());
  ASSERT_OK(d.device.Unmap(d.va, kGran));
  ASSERT_OK(d.device.ReleaseChunk(d.chunk));
  ASSERT_OK(d.device.ReleaseAddress(d.va, 4 * kGran));
  EXPECT_TRUE(d.device.Hazards().empty());
}

TEST(SimHazardTest, UnmappingAnotherAliasOfTheChunkIsNoHazard) {
  MappedDevice d;
  ASSERT_OK(d.device.Map(d.va + kGran, kGran, d.chunk));  // an alias
  ASSERT_TRUE(d.device.LaunchWork(1, {{d.va + kGran, 64, 7}}).ok());
  ASSERT_OK(d.device.Unmap(d.va, kGran));  // the work uses the other address
  EXPECT_TRUE(d.device.Hazards().empty());
  d.device.CompleteAll();
}

TEST(SimHazardTest, AnotherOwnersUnorderedWorkOnTheSameBytesIsH2) {
  MappedDevice d;
  ASSIGN_OR_FAIL(first, d.device.LaunchWork(1, {{d.va, 8192, 11}}, "old user"));
  ScopedSimHazardCapture capture;
  ASSERT_TRUE(d.device.LaunchWork(2, {{d.va + 4096, 4096, 12}}, "new user").ok());
  ASSERT_EQ(capture.count(SimHazardKind::kUnorderedReuse), 1u) << Messages(capture);
  const SimHazard hazard = capture.hazards()[0];
  EXPECT_EQ(hazard.device, 0);
  EXPECT_THAT(hazard.message,
              AllOf(HasSubstr("'new user' on stream 0x2 for owner 12"),
                    HasSubstr("work #" + std::to_string(first) + " 'old user' on stream 0x1"),
                    HasSubstr("owner 11")));
  d.device.CompleteAll();
}

TEST(SimHazardTest, AliasesShareBytes) {
  MappedDevice d;
  const DevicePtr alias = d.va + 2 * kGran;
  ASSERT_OK(d.device.Map(alias, kGran, d.chunk));
  ASSERT_TRUE(d.device.LaunchWork(1, {{d.va + 100, 10, 1}}, "through VA1").ok());
  ScopedSimHazardCapture capture;
  ASSERT_TRUE(d.device.LaunchWork(2, {{alias + 105, 10, 2}}, "through VA2").ok());
  ASSERT_EQ(capture.count(SimHazardKind::kUnorderedReuse), 1u) << Messages(capture);
  EXPECT_THAT(capture.hazards()[0].message,
              AllOf(HasSubstr("through VA1"), HasSubstr("through VA2")));
  // Disjoint bytes of the same chunk do not conflict.
  capture.Clear();
  ASSERT_TRUE(d.device.LaunchWork(2, {{alias + 4096, 10, 3}}).ok());
  EXPECT_EQ(capture.size(), 0u) << Messages(capture);
  d.device.CompleteAll();
}

TEST(SimHazardTest, AFillIsWorkOfOwnerZero) {
  MappedDevice d;
  ASSERT_TRUE(d.device.LaunchWork(1, {{d.va, 64, 5}}, "user").ok());
  ScopedSimHazardCapture capture;
  ASSERT_OK(d.device.Fill({d.va, 64, 0xdeadbeef}, 2));
  ASSERT_EQ(capture.count(SimHazardKind::kUnorderedReuse), 1u) << Messages(capture);
  EXPECT_THAT(capture.hazards()[0].message,
              AllOf(HasSubstr("'Fill 0xdeadbeef' on stream 0x2 for owner 0"), HasSubstr("'user'")));
  d.device.CompleteAll();
}

TEST(SimHazardTest, MallocMemoryIsCheckedToo) {
  SimDevice device(ManualOptions());
  ASSIGN_OR_FAIL(block, device.Malloc(1 << 20));
  ASSERT_TRUE(device.LaunchWork(1, {{block, 512, 1}}).ok());
  ScopedSimHazardCapture capture;
  ASSERT_TRUE(device.LaunchWork(2, {{block + 256, 512, 2}}).ok());
  EXPECT_EQ(capture.count(SimHazardKind::kUnorderedReuse), 1u) << Messages(capture);
  EXPECT_THAT(capture.hazards()[0].message, HasSubstr("Malloc block"));
  device.CompleteAll();
  ASSERT_OK(device.Free(block));
}

// What orders work: none of these is a hazard.
TEST(SimHazardTest, OrderedWorkIsNoHazard) {
  MappedDevice d;
  SimDevice& device = d.device;
  const SimAccess a{d.va, 4096, 1}, b{d.va, 4096, 2}, c{d.va, 4096, 3}, e{d.va, 4096, 4};
  // Same stream.
  ASSERT_TRUE(device.LaunchWork(1, {a}).ok());
  ASSERT_TRUE(device.LaunchWork(1, {b}).ok());
  // An event recorded after it, waited on by the next stream.
  ASSIGN_OR_FAIL(event, device.CreateEvent());
  ASSERT_OK(device.RecordEvent(event, 1));
  ASSERT_OK(device.StreamWaitEvent(2, event));
  ASSERT_TRUE(device.LaunchWork(2, {c}).ok());
  // Transitively through a third stream: 2 -> 3 (nothing of its own) -> 4.
  ASSIGN_OR_FAIL(hop, device.CreateEvent());
  ASSERT_OK(device.RecordEvent(hop, 2));
  ASSERT_OK(device.StreamWaitEvent(3, hop));
  ASSIGN_OR_FAIL(hop2, device.CreateEvent());
  ASSERT_OK(device.RecordEvent(hop2, 3));
  ASSERT_OK(device.StreamWaitEvent(4, hop2));
  ASSERT_TRUE(device.LaunchWork(4, {e}).ok());
  // The same owner on an unordered stream is the user's own business.
  ASSERT_TRUE(device.LaunchWork(8, {{d.va + 8192, 64, 20}}).ok());
  ASSERT_TRUE(device.LaunchWork(5, {{d.va + 8192, 64, 20}}).ok());
  EXPECT_TRUE(device.Hazards().empty());

  // After a query that saw completion.
  ASSIGN_OR_FAIL(last, device.CreateEvent());
  ASSERT_OK(device.RecordEvent(last, 5));
  device.CompleteStream(5);
  ASSIGN_OR_FAIL(done, device.QueryEvent(last));
  ASSERT_TRUE(done);
  device.CompleteStream(4);
  ASSERT_TRUE(device.LaunchWork(6, {{d.va, 4096, 9}}).ok());
  // After a device synchronization.
  ASSERT_OK(device.SynchronizeDevice());
  ASSERT_TRUE(device.LaunchWork(7, {{d.va, 4096, 10}}).ok());
  EXPECT_TRUE(device.Hazards().empty());
  device.CompleteAll();
}

TEST(SimHazardTest, AnEventRecordedBeforeTheWorkDoesNotOrderIt) {
  MappedDevice d;
  ASSIGN_OR_FAIL(event, d.device.CreateEvent());
  ASSERT_OK(d.device.RecordEvent(event, 1));
  ASSERT_TRUE(d.device.LaunchWork(1, {{d.va, 64, 1}}, "after the record").ok());
  ASSERT_OK(d.device.StreamWaitEvent(2, event));
  ScopedSimHazardCapture capture;
  ASSERT_TRUE(d.device.LaunchWork(2, {{d.va, 64, 2}}).ok());
  EXPECT_EQ(capture.count(SimHazardKind::kUnorderedReuse), 1u) << Messages(capture);
  d.device.CompleteAll();
}

TEST(SimHazardTest, FreeCompletesAllWorkLikeCudaFree) {
  SimDevice device(ManualOptions());
  ASSIGN_OR_FAIL(block, device.Malloc(4096));
  ASSIGN_OR_FAIL(other, device.Malloc(4096));
  ASSIGN_OR_FAIL(ticket, device.LaunchWork(1, {{block, 4096, 1}}));
  ASSIGN_OR_FAIL(unrelated, device.LaunchWork(2, {{other, 4096, 2}}));
  ASSERT_OK(device.Free(block));
  EXPECT_TRUE(device.IsWorkComplete(ticket));
  EXPECT_TRUE(device.IsWorkComplete(unrelated));
  EXPECT_EQ(device.Counters().pending_work, 0u);
  EXPECT_TRUE(device.Hazards().empty());
  ASSERT_OK(device.Free(other));
}

TEST(SimHazardTest, CaptureForbidsSynchronizingCallsAsH3) {
  SimDeviceOptions options = ManualOptions();
  options.accounting_only = false;
  SimDevice device(options);
  ASSIGN_OR_FAIL(block, device.Malloc(4096));
  ASSIGN_OR_FAIL(event, device.CreateEvent());
  ASSERT_OK(device.RecordEvent(event, 0));
  device.SetCapturing(9, true);
  ScopedSimHazardCapture capture;
  // Malloc is legal: CudaDevice calls cudaMalloc in relaxed capture mode.
  ASSIGN_OR_FAIL(grown, device.Malloc(4096));
  EXPECT_TRUE(absl::IsFailedPrecondition(device.Free(grown)));
  EXPECT_TRUE(absl::IsFailedPrecondition(device.Free(block)));
  EXPECT_TRUE(absl::IsFailedPrecondition(device.QueryEvent(event).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(device.SynchronizeEvent(event)));
  EXPECT_TRUE(absl::IsFailedPrecondition(device.SynchronizeDevice()));
  EXPECT_TRUE(absl::IsFailedPrecondition(device.VerifyPatterns({{block, 4, 0}}, 0).status()));
  EXPECT_EQ(capture.count(SimHazardKind::kForbiddenDuringCapture), 6u) << Messages(capture);
  EXPECT_THAT(capture.hazards()[0].message,
              AllOf(HasSubstr("SimDevice::Free"), HasSubstr("stream 0x9")));

  // Recording on the capturing stream is legal, and so is a capturing stream's wait on it.
  capture.Clear();
  ASSIGN_OR_FAIL(captured, device.CreateEvent());
  ASSERT_OK(device.RecordEvent(captured, 9));
  device.SetCapturing(10, true);
  ASSERT_OK(device.StreamWaitEvent(10, captured));
  EXPECT_EQ(capture.size(), 0u) << Messages(capture);
  // A stream outside the capture may not wait on it.
  absl::Status wait = device.StreamWaitEvent(2, captured);
  EXPECT_TRUE(absl::IsFailedPrecondition(wait));
  EXPECT_THAT(wait.message(), HasSubstr("cudaErrorCapturedEvent"));
  EXPECT_EQ(capture.count(SimHazardKind::kForbiddenDuringCapture), 1u) << Messages(capture);
  device.SetCapturing(9, false);
  device.SetCapturing(10, false);
  // Nor may it be queried or synchronized after the capture, until recorded again.
  EXPECT_TRUE(absl::IsFailedPrecondition(device.QueryEvent(captured).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(device.SynchronizeEvent(captured)));
  EXPECT_EQ(capture.count(SimHazardKind::kForbiddenDuringCapture), 3u) << Messages(capture);
  ASSERT_OK(device.RecordEvent(captured, 2));
  EXPECT_TRUE(device.QueryEvent(captured).ok());
  ASSERT_OK(device.Free(block));
  ASSERT_OK(device.Free(grown));
  EXPECT_EQ(capture.size(), 3u) << Messages(capture);
}

TEST(SimHazardTest, DestroyedStreamsAreH4UntilHandedOutAgain) {
  MappedDevice d;
  SimDevice& device = d.device;
  const StreamHandle stream = device.CreateStream();
  ASSIGN_OR_FAIL(event, device.CreateEvent());
  ASSIGN_OR_FAIL(ordinal, device.StreamOrdinal(stream));
  EXPECT_EQ(ordinal, 0);
  ASSERT_OK(device.DestroyStream(stream));
  {
    ScopedSimHazardCapture capture;
    EXPECT_TRUE(device.RecordEvent(event, stream).ok());  // reported, carried out
    EXPECT_TRUE(device.StreamWaitEvent(stream, event).ok());
    EXPECT_TRUE(device.Fill({d.va, 64, 1}, stream).ok());
    EXPECT_TRUE(device.LaunchWork(stream, {{d.va, 64, 0}}).ok());
    EXPECT_TRUE(device.IsCapturing(stream).ok());
    EXPECT_TRUE(device.VerifyPatterns({}, stream).ok());
    EXPECT_TRUE(absl::IsFailedPrecondition(device.StreamOrdinal(stream).status()));
    EXPECT_EQ(capture.count(SimHazardKind::kForeignOrDeadHandle), 7u) << Messages(capture);
    EXPECT_THAT(capture.hazards()[0].message,
                AllOf(HasSubstr("SimDevice::RecordEvent"), HasSubstr("destroyed")));
  }
  // Handed out again: the value names the new stream, which is legal.
  const StreamHandle again = device.CreateStream();
  ASSERT_EQ(again, stream);
  ASSERT_OK(device.RecordEvent(event, again));
  ASSERT_TRUE(device.LaunchWork(again, {{d.va, 64, 0}}).ok());
  ASSERT_OK(device.DestroyStream(again));
  device.CompleteAll();
  EXPECT_TRUE(device.Hazards().size() == 7u);
}

TEST(SimHazardTest, AnotherDevicesStreamsAndEventsAreH4) {
  SimDevice zero(ManualOptions(0));
  SimDevice one(ManualOptions(1));
  const StreamHandle theirs = one.CreateStream();
  ASSIGN_OR_FAIL(their_event, one.CreateEvent());
  ASSIGN_OR_FAIL(our_event, zero.CreateEvent());
  ASSIGN_OR_FAIL(theirs_ordinal, zero.StreamOrdinal(theirs));
  EXPECT_EQ(theirs_ordinal, 1);
  ASSIGN_OR_FAIL(implicit_ordinal, one.StreamOrdinal(7));
  EXPECT_EQ(implicit_ordinal, 1) << "a handle no CreateStream made belongs to every device";

  ScopedSimHazardCapture capture;
  EXPECT_TRUE(zero.RecordEvent(our_event, theirs).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(zero.RecordEvent(their_event, 0)));
  EXPECT_TRUE(absl::IsInvalidArgument(zero.QueryEvent(their_event).status()));
  EXPECT_EQ(capture.count(SimHazardKind::kForeignOrDeadHandle), 3u) << Messages(capture);
  EXPECT_THAT(capture.hazards()[0].message, HasSubstr("ordinal 1"));
  EXPECT_THAT(capture.hazards()[1].message, HasSubstr("event"));
  EXPECT_EQ(capture.hazards()[0].device, 0);
  // Their own handles are fine on their device; small implicit values on every device.
  capture.Clear();
  EXPECT_TRUE(one.RecordEvent(their_event, theirs).ok());
  EXPECT_TRUE(zero.RecordEvent(our_event, 7).ok());
  EXPECT_TRUE(one.RecordEvent(their_event, 7).ok());
  EXPECT_EQ(capture.size(), 0u) << Messages(capture);
}

TEST(SimHazardTest, HandlesAreUniqueAcrossDevices) {
  SimDevice a(ManualOptions());
  SimDevice b(ManualOptions());
  EXPECT_NE(a.CreateStream(), b.CreateStream());
  EXPECT_NE(*a.CreateEvent(), *b.CreateEvent());
}

TEST(SimHazardTest, LaunchWorkNeedsDeviceMemory) {
  MappedDevice d;
  absl::StatusOr<std::uint64_t> wild = d.device.LaunchWork(1, {{d.va, 64, 1}, {0x1000, 64, 1}});
  EXPECT_TRUE(absl::IsInvalidArgument(wild.status()));
  EXPECT_THAT(wild.status().message(), AllOf(HasSubstr("LaunchWork"), HasSubstr("access 1 of 2")));
  EXPECT_TRUE(absl::IsInvalidArgument(d.device.LaunchWork(1, {{d.va + kGran, 64, 1}}).status()))
      << "reserved but not mapped";
  EXPECT_EQ(d.device.Counters().submitted_work, 0u) << "nothing submitted";
  ASSIGN_OR_FAIL(empty, d.device.LaunchWork(1, {{0x1000, 0, 1}}));  // empty ranges are ignored
  EXPECT_GT(empty, 0u);
  d.device.CompleteAll();
}

TEST(SimHazardTest, CheckingOffReportsNothing) {
  SimDeviceOptions options = ManualOptions();
  options.check_hazards = false;
  MappedDevice d(options);
  ASSERT_TRUE(d.device.LaunchWork(1, {{d.va, 64, 1}}).ok());
  ASSERT_TRUE(d.device.LaunchWork(2, {{d.va, 64, 2}}).ok());
  ASSERT_OK(d.device.Unmap(d.va, kGran));
  EXPECT_TRUE(d.device.Hazards().empty());
  d.device.CompleteAll();
}

// The completion pattern of a fixed call sequence: after every call, which items are done.
std::vector<bool> RandomCompletionTrace(std::uint64_t seed) {
  SimDeviceOptions options = ManualOptions();
  options.completion = SimCompletion::kRandom;
  options.seed = seed;
  options.max_work_duration = 6;
  SimDevice device(options);
  std::vector<std::uint64_t> tickets;
  std::vector<bool> trace;
  for (int i = 0; i < 40; ++i) {
    tickets.push_back(device.SubmitWork(static_cast<StreamHandle>(i % 3)));
    EXPECT_TRUE(device.MemInfo().ok());  // any device call lets time pass
    for (std::uint64_t ticket : tickets) trace.push_back(device.IsWorkComplete(ticket));
  }
  for (int i = 0; i < 200; ++i) EXPECT_TRUE(device.MemInfo().ok());
  EXPECT_EQ(device.Counters().pending_work, 0u) << "everything completes in time";
  return trace;
}

TEST(SimHazardTest, RandomCompletionIsReproducibleForASeed) {
  const std::vector<bool> first = RandomCompletionTrace(42);
  EXPECT_EQ(first, RandomCompletionTrace(42));
  EXPECT_NE(first, RandomCompletionTrace(43));
  // Some work is still running when later calls come: that is what makes it useful.
  EXPECT_NE(std::count(first.begin(), first.end(), false), 0);
}

TEST(SimHazardTest, RandomCompletionRespectsStreamOrderAndWaits) {
  SimDeviceOptions options = ManualOptions();
  options.completion = SimCompletion::kRandom;
  options.seed = 7;
  SimDevice device(options);
  for (int round = 0; round < 50; ++round) {
    const std::uint64_t first = device.SubmitWork(1);
    ASSIGN_OR_FAIL(event, device.CreateEvent());
    ASSERT_OK(device.RecordEvent(event, 1));
    ASSERT_OK(device.StreamWaitEvent(2, event));
    const std::uint64_t second = device.SubmitWork(1);
    const std::uint64_t waiter = device.SubmitWork(2);
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(device.MemInfo().ok());
      ASSERT_TRUE(!device.IsWorkComplete(second) || device.IsWorkComplete(first));
      ASSERT_TRUE(!device.IsWorkComplete(waiter) || device.IsWorkComplete(first));
    }
    ASSERT_OK(device.DestroyEvent(event));
  }
}

TEST(SimHazardDeathTest, WithoutASinkAHazardAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        SetSimHazardSink(nullptr);
        MappedDevice d;
        (void)d.device.LaunchWork(1, {{d.va, 64, 1}});
        (void)d.device.LaunchWork(2, {{d.va, 64, 2}});
      },
      "H2 unordered reuse");
}

}  // namespace
}  // namespace vramcache
