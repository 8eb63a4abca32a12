// The golden test's recorder against its interface: RecordingDevice forwards every call and
// names what the device handed out by order of appearance; DeviceCallLog counts, hashes, keeps
// the lines it is asked to keep, and records runs of releasing calls in sorted order.
#include "tests/support/recording_device.h"

#include <set>
#include <string>
#include <vector>

#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/device_call_log.h"

namespace vramcache {
namespace {

TEST(RecordingDeviceTest, NamesAddressesChunksAndEventsByFirstAppearance) {
  SimDeviceOptions options;
  options.capacity = 64u << 20;
  SimDevice sim(options);
  DeviceCallLog log(std::set<std::string>{});
  RecordingDevice device(&sim, &log);
  const std::size_t granule = sim.Capabilities().granularity;

  absl::StatusOr<DevicePtr> first = device.Malloc(4096);
  absl::StatusOr<DevicePtr> second = device.Malloc(8192);
  ASSERT_TRUE(first.ok() && second.ok());
  absl::StatusOr<DevicePtr> base = device.ReserveAddress(2 * granule);
  absl::StatusOr<ChunkHandle> chunk = device.CreateChunk(granule);
  ASSERT_TRUE(base.ok() && chunk.ok());
  ASSERT_TRUE(device.Map(*base + granule, granule, *chunk).ok());
  absl::StatusOr<EventHandle> event = device.CreateEvent();
  ASSERT_TRUE(event.ok());
  ASSERT_TRUE(device.RecordEvent(*event, 0).ok());
  ASSERT_TRUE(device.QueryEvent(*event).ok());
  EXPECT_FALSE(device.Free(*first + 1).ok());  // not a base: refused, and logged as an error
  ASSERT_TRUE(device.Unmap(*base + granule, granule).ok());
  ASSERT_TRUE(device.ReleaseChunk(*chunk).ok());
  ASSERT_TRUE(device.ReleaseAddress(*base, 2 * granule).ok());
  ASSERT_TRUE(device.DestroyEvent(*event).ok());
  ASSERT_TRUE(device.Free(*second).ok());
  ASSERT_TRUE(device.Free(*first).ok());
  log.Finish();

  const std::string g = std::to_string(granule);
  const std::vector<std::string> expected = {
      "Malloc 4096 -> m0",
      "Malloc 8192 -> m1",
      "ReserveAddress " + std::to_string(2 * granule) + " -> r0",
      "CreateChunk " + g + " -> c0",
      "Map r0+" + g + " " + g + " c0",
      "CreateEvent -> e0",
      "RecordEvent e0 0",
      "QueryEvent e0 -> true",
      "Free m0+1 -> error INVALID_ARGUMENT",
      "Unmap r0+" + g + " " + g,
      "ReleaseChunk c0",
      "ReleaseAddress r0 " + std::to_string(2 * granule),
      "DestroyEvent e0",
      // Two frees in a row: recorded sorted, whatever order the allocator walked them in.
      "Free m0",
      "Free m1",
  };
  EXPECT_EQ(log.lines(), expected);
  EXPECT_EQ(log.calls(), expected.size());
  EXPECT_EQ(log.counts().at("Free"), 3u);
  EXPECT_EQ(log.counts().at("Malloc"), 2u);
}

TEST(DeviceCallLogTest, TheHashDependsOnOrderButNotOnWhatIsKept) {
  DeviceCallLog all(std::set<std::string>{});
  DeviceCallLog some(std::set<std::string>{"IsCapturing"});
  DeviceCallLog none;
  for (DeviceCallLog* log : {&all, &some, &none}) {
    log->Add("IsCapturing 0 -> false");
    log->Add("Malloc 1 -> m0");
    log->Finish();
  }
  EXPECT_EQ(all.hash(), some.hash());
  EXPECT_EQ(all.hash(), none.hash());
  EXPECT_EQ(all.lines().size(), 2u);
  EXPECT_EQ(some.lines(), std::vector<std::string>{"Malloc 1 -> m0"});
  EXPECT_TRUE(none.lines().empty());
  EXPECT_EQ(none.calls(), 2u);

  DeviceCallLog swapped;
  swapped.Add("Malloc 1 -> m0");
  swapped.Add("IsCapturing 0 -> false");
  swapped.Finish();
  EXPECT_NE(swapped.hash(), all.hash());
}

TEST(DeviceCallLogTest, ARunOfReleasesIsOrderFreeButNotAcrossOtherCalls) {
  DeviceCallLog forward;
  DeviceCallLog backward;
  for (const char* line : {"ReleaseChunk c1", "ReleaseChunk c2"}) forward.Add(line);
  for (const char* line : {"ReleaseChunk c2", "ReleaseChunk c1"}) backward.Add(line);
  forward.Finish();
  backward.Finish();
  EXPECT_EQ(forward.hash(), backward.hash());

  DeviceCallLog split;
  split.Add("ReleaseChunk c2");
  split.Add("SynchronizeDevice");
  split.Add("ReleaseChunk c1");
  split.Finish();
  DeviceCallLog split_other_way;
  split_other_way.Add("ReleaseChunk c1");
  split_other_way.Add("SynchronizeDevice");
  split_other_way.Add("ReleaseChunk c2");
  split_other_way.Finish();
  EXPECT_NE(split.hash(), split_other_way.hash());
}

}  // namespace
}  // namespace vramcache
