// The C ABI on the simulated device: allocation, statistics, bad input reported through
// vramcache_last_error without a crash and without changing anything.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "allocator/api/vramcache.h"
#include "gtest/gtest.h"

namespace {

class CApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(vramcache_shutdown(), 0);
    ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB"), 0) << vramcache_last_error();
  }
  void TearDown() override { EXPECT_EQ(vramcache_shutdown(), 0); }

  static vramcache_stats Stats() {
    vramcache_stats s{};
    s.struct_size = sizeof(s);
    EXPECT_EQ(vramcache_get_stats(0, &s), 0) << vramcache_last_error();
    return s;
  }
};

TEST_F(CApiTest, AllocateFreeAndStatistics) {
  void* p = vramcache_try_malloc(1000, 0, nullptr);
  ASSERT_NE(p, nullptr) << vramcache_last_error();
  EXPECT_STREQ(vramcache_last_error(), "");
  vramcache_stats s = Stats();
  EXPECT_EQ(s.version, VRAMCACHE_STATS_VERSION);
  EXPECT_EQ(s.requested_bytes[0].current, 1000);
  EXPECT_EQ(s.allocated_bytes[0].current, 1024);
  EXPECT_EQ(s.allocation[1].current, 1);  // small pool
  vramcache_free(p, 1000, 0, nullptr);
  EXPECT_STREQ(vramcache_last_error(), "");
  s = Stats();
  EXPECT_EQ(s.allocated_bytes[0].current, 0);
  EXPECT_EQ(s.allocated_bytes[0].peak, 1024);
  ASSERT_EQ(vramcache_reset_peak_stats(0), 0);
  EXPECT_EQ(Stats().allocated_bytes[0].peak, 0);
  const std::string json = vramcache_stats_json(0);
  EXPECT_NE(json.find("\"allocated_bytes.all.peak\":0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"requested_bytes.all.allocated\":1000"), std::string::npos) << json;
}

TEST_F(CApiTest, SizeZeroGivesNull) {
  EXPECT_EQ(vramcache_try_malloc(0, 0, nullptr), nullptr);
  EXPECT_STREQ(vramcache_last_error(), "");
  EXPECT_EQ(vramcache_malloc(0, 0, nullptr), nullptr);
}

TEST_F(CApiTest, UnknownAndDoubleFreeAreReportedNotFatal) {
  int local = 0;
  vramcache_free(&local, 4, 0, nullptr);
  EXPECT_NE(std::string(vramcache_last_error()).find("never allocated"), std::string::npos)
      << vramcache_last_error();
  void* p = vramcache_try_malloc(4096, 0, nullptr);
  vramcache_free(p, 4096, 0, nullptr);
  vramcache_free(p, 4096, 0, nullptr);
  EXPECT_NE(std::string(vramcache_last_error()).find("double free"), std::string::npos)
      << vramcache_last_error();
  EXPECT_EQ(Stats().allocation[0].current, 0);
}

TEST_F(CApiTest, WrongDeviceIsAnError) {
  EXPECT_EQ(vramcache_try_malloc(1000, 3, nullptr), nullptr);
  EXPECT_NE(std::string(vramcache_last_error()).find("device 3 does not exist"), std::string::npos)
      << vramcache_last_error();
  void* p = vramcache_try_malloc(1000, 0, nullptr);
  vramcache_free(p, 1000, 5, nullptr);
  EXPECT_NE(std::string(vramcache_last_error()).find("device 5"), std::string::npos);
  EXPECT_EQ(Stats().allocation[0].current, 1) << "a free on the wrong device freed something";
  vramcache_free(p, 1000, 0, nullptr);
  vramcache_stats s{};
  s.struct_size = sizeof(s);
  EXPECT_EQ(vramcache_get_stats(-1, &s), -1);
}

TEST_F(CApiTest, HugeSizeFailsWithMessage) {
  EXPECT_EQ(vramcache_try_malloc(std::size_t{1} << 63, 0, nullptr), nullptr);
  EXPECT_NE(std::string(vramcache_last_error()).find("larger than any device"), std::string::npos)
      << vramcache_last_error();
  EXPECT_EQ(Stats().num_ooms, 0);
}

TEST_F(CApiTest, OutOfMemoryThrowsFromMallocAndReturnsNullFromTryMalloc) {
  EXPECT_EQ(vramcache_try_malloc(std::size_t{2} << 30, 0, nullptr), nullptr);
  EXPECT_NE(std::string(vramcache_last_error()).find("CUDA out of memory"), std::string::npos);
  try {
    vramcache_malloc(std::size_t{2} << 30, 0, nullptr);
    ADD_FAILURE() << "vramcache_malloc returned instead of throwing";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("Tried to allocate 2.00 GiB"), std::string::npos)
        << e.what();
  }
  const std::string oom = vramcache_last_oom_json(0);
  EXPECT_NE(oom.find("\"requested_bytes\":2147483648"), std::string::npos) << oom;
}

// The reviewer's case: 2 GiB on an empty 1 GiB device is too large, not "the device is full".
TEST_F(CApiTest, RequestLargerThanTheDeviceSaysSo) {
  ASSERT_EQ(vramcache_shutdown(), 0);
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB,vmm:off"), 0)
      << vramcache_last_error();
  EXPECT_EQ(vramcache_try_malloc(std::size_t{2} << 30, 0, nullptr), nullptr);
  const std::string error = vramcache_last_error();
  EXPECT_NE(error.find("larger than the device: it needs 2.00 GiB, more than the device's total "
                       "of 1.00 GiB"),
            std::string::npos)
      << error;
  EXPECT_EQ(error.find("device is full"), std::string::npos) << error;
  const std::string oom = vramcache_last_oom_json(0);
  EXPECT_NE(oom.find("\"verdict\":\"too_large\""), std::string::npos) << oom;
}

TEST_F(CApiTest, MalformedConfigurationIsRejectedAndNamed) {
  ASSERT_EQ(vramcache_shutdown(), 0);
  EXPECT_EQ(vramcache_configure("budget:lots"), -1);
  EXPECT_NE(std::string(vramcache_last_error()).find("budget"), std::string::npos)
      << vramcache_last_error();
  EXPECT_EQ(vramcache_configure("no_such_key:1"), -1);
  EXPECT_NE(std::string(vramcache_last_error()).find("no_such_key"), std::string::npos);
  EXPECT_EQ(vramcache_configure(nullptr), -1);
  // Settings that cannot be honoured together are refused, not silently ignored.
  EXPECT_EQ(vramcache_configure("device:sim,unmap_on_free:on,vmm:off"), -1);
  EXPECT_NE(std::string(vramcache_last_error()).find("unmap_on_free"), std::string::npos);
  // Configuration after the first allocation is refused.
  ASSERT_EQ(vramcache_configure("device:sim"), 0);
  void* p = vramcache_try_malloc(10, 0, nullptr);
  EXPECT_EQ(vramcache_configure("device:sim"), -1);
  vramcache_free(p, 10, 0, nullptr);
}

// A bad environment is reported, and an explicit configuration replaces it: the process can
// recover without restarting.
TEST_F(CApiTest, ExplicitConfigurationReplacesABadEnvironment) {
  ASSERT_EQ(vramcache_shutdown(), 0);
  ASSERT_EQ(setenv("VRAMCACHE_CONF", "budget:lots", 1), 0);
  EXPECT_EQ(vramcache_try_malloc(4096, 0, nullptr), nullptr);  // the environment's error
  EXPECT_NE(std::string(vramcache_last_error()).find("VRAMCACHE_CONF: bad value \"lots\""),
            std::string::npos)
      << vramcache_last_error();
  EXPECT_EQ(vramcache_configure(""), -1) << "no keys: the environment's configuration and error";
  const int configured = vramcache_configure("device:sim,sim_capacity:64MiB");
  const std::string error = vramcache_last_error();
  unsetenv("VRAMCACHE_CONF");
  ASSERT_EQ(configured, 0) << error;
  EXPECT_EQ(vramcache_device_total_bytes(0), std::size_t{64} << 20);
  void* p = vramcache_try_malloc(4096, 0, nullptr);
  EXPECT_NE(p, nullptr) << vramcache_last_error();
  vramcache_free(p, 4096, 0, nullptr);
}

TEST_F(CApiTest, MemoryFractionCapsReservedBytes) {
  EXPECT_EQ(vramcache_set_memory_fraction(1.5, 0), -1);
  EXPECT_NE(std::string(vramcache_last_error()).find("outside [0, 1]"), std::string::npos)
      << vramcache_last_error();
  EXPECT_EQ(vramcache_set_memory_fraction(-0.1, 0), -1);
  EXPECT_EQ(vramcache_set_memory_fraction(std::nan(""), 0), -1);
  // PyTorch's 0.0: accepted, and nothing fits.
  ASSERT_EQ(vramcache_set_memory_fraction(0.0, 0), 0) << vramcache_last_error();
  EXPECT_EQ(vramcache_try_malloc(512, 0, nullptr), nullptr);
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_OUT_OF_MEMORY);
  ASSERT_EQ(vramcache_set_memory_fraction(0.25, 0), 0);  // 256 MiB of 1 GiB
  EXPECT_EQ(Stats().budget_bytes, 256 << 20);
  EXPECT_EQ(vramcache_try_malloc(300u << 20, 0, nullptr), nullptr);
  EXPECT_NE(std::string(vramcache_last_error()).find("budget"), std::string::npos);
}

TEST_F(CApiTest, StatsStructVersioning) {
  vramcache_stats s{};
  s.struct_size = 4;  // too small to hold even the header
  EXPECT_EQ(vramcache_get_stats(0, &s), -1);
  EXPECT_EQ(vramcache_get_stats(0, nullptr), -1);
  // An older caller that knows only the header and the first counter gets exactly that.
  struct OldStats {
    uint64_t struct_size, version;
    vramcache_stat allocation[3];
  } old{};
  old.struct_size = sizeof(old);
  void* p = vramcache_try_malloc(10, 0, nullptr);
  ASSERT_EQ(vramcache_get_stats(0, reinterpret_cast<vramcache_stats*>(&old)), 0);
  EXPECT_EQ(old.struct_size, sizeof(old));
  EXPECT_EQ(old.allocation[0].current, 1);
  vramcache_free(p, 10, 0, nullptr);
}

TEST_F(CApiTest, SnapshotAndRecordStream) {
  void* p = vramcache_try_malloc(3u << 20, 0, nullptr);
  EXPECT_EQ(vramcache_record_stream(p, reinterpret_cast<void*>(7)), 0);
  int local = 0;
  EXPECT_EQ(vramcache_record_stream(&local, nullptr), -1);
  const std::string snapshot = vramcache_snapshot_json();
  EXPECT_NE(snapshot.find("\"segment_type\":\"large\""), std::string::npos) << snapshot;
  EXPECT_NE(snapshot.find("\"state\":\"active_allocated\""), std::string::npos) << snapshot;
  vramcache_free(p, 3u << 20, 0, nullptr);
  EXPECT_EQ(vramcache_empty_cache(), 0);
  EXPECT_EQ(vramcache_device_count(), 1);
}

TEST_F(CApiTest, NativeHooks) {
  // Segment mode, whose segment sizes are PyTorch's (virtual-memory mode: vmm_allocator_test).
  ASSERT_EQ(vramcache_shutdown(), 0);
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB,vmm:off"), 0)
      << vramcache_last_error();
  // Private pools through the C ABI, with a stream filter.
  auto only_stream_7 = [](void* stream, void*) {
    return stream == reinterpret_cast<void*>(7) ? 1 : 0;
  };
  EXPECT_EQ(vramcache_begin_allocate_to_pool(0, 0, nullptr, nullptr), -1);
  ASSERT_EQ(vramcache_begin_allocate_to_pool(0, 5, only_stream_7, nullptr), 0);
  void* in_pool = vramcache_try_malloc(1000, 0, reinterpret_cast<void*>(7));
  ASSERT_EQ(vramcache_end_allocate_to_pool(0, 5), 0);
  EXPECT_EQ(vramcache_end_allocate_to_pool(0, 5), -1);
  vramcache_free(in_pool, 1000, 0, reinterpret_cast<void*>(7));
  ASSERT_EQ(vramcache_release_pool(0, 5), 0);
  EXPECT_EQ(vramcache_release_pool(0, 5), -1);

  // Observer, fraction, cache info, base allocation.
  static int observed = 0;
  observed = 0;
  ASSERT_EQ(vramcache_attach_oom_observer(
                0, [](int, size_t, size_t, size_t, size_t, void*) { ++observed; }, nullptr),
            0);
  EXPECT_EQ(vramcache_attach_oom_observer(0, nullptr, nullptr), -1);
  EXPECT_EQ(vramcache_try_malloc(std::size_t{4} << 30, 0, nullptr), nullptr);
  EXPECT_EQ(observed, 1);
  ASSERT_EQ(vramcache_set_memory_fraction(0.5, 0), 0);
  EXPECT_DOUBLE_EQ(vramcache_get_memory_fraction(0), 0.5);
  EXPECT_EQ(vramcache_device_total_bytes(0), std::size_t{1} << 30);
  void* p = vramcache_try_malloc(3u << 20, 0, nullptr);
  size_t segment_size = 0;
  void* base = vramcache_base_allocation(static_cast<char*>(p) + 100, &segment_size);
  EXPECT_EQ(base, p);
  EXPECT_EQ(segment_size, 20u << 20);
  int local = 0;
  EXPECT_EQ(vramcache_base_allocation(&local, &segment_size), nullptr);
  size_t largest = 0;
  ASSERT_EQ(vramcache_cache_info(0, &largest), 0);
  EXPECT_EQ(largest, (20u << 20) - (3u << 20));
  EXPECT_EQ(vramcache_cache_info(0, nullptr), -1);
  vramcache_free(p, 3u << 20, 0, nullptr);
}

TEST_F(CApiTest, LastErrorKindSaysWhatFailed) {
  void* p = vramcache_try_malloc(4096, 0, nullptr);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_OK);
  vramcache_free(p, 4096, 0, nullptr);
  vramcache_free(p, 4096, 0, nullptr);  // double free
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_INVALID);
  EXPECT_EQ(vramcache_try_malloc(std::size_t{4} << 30, 0, nullptr), nullptr);
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_OUT_OF_MEMORY);
  EXPECT_EQ(vramcache_configure("device:sim"), -1);  // after the first allocation
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_OTHER);
}

TEST_F(CApiTest, DamagedBandIsCorruptionAndTheMemoryIsFreed) {
  ASSERT_EQ(vramcache_shutdown(), 0);
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB,sim_backing:memory,canaries:on"), 0)
      << vramcache_last_error();
  auto* p = static_cast<unsigned char*>(vramcache_try_malloc(1000, 0, nullptr));
  ASSERT_NE(p, nullptr);
  p[1000] = 0;  // the simulated device's memory is host memory: one byte past the end
  vramcache_free(p, 1000, 0, nullptr);
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_CORRUPTION);
  EXPECT_NE(std::string(vramcache_last_error()).find("end + 0"), std::string::npos)
      << vramcache_last_error();
  vramcache_free(p, 1000, 0, nullptr);  // it was freed: now an unknown pointer
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_INVALID);
}

TEST_F(CApiTest, UnmapOnFreeNeedsVirtualMemory) {
  ASSERT_EQ(vramcache_shutdown(), 0);
  EXPECT_EQ(vramcache_configure("device:sim,unmap_on_free:on,vmm:off"), -1);
  EXPECT_NE(std::string(vramcache_last_error()).find("virtual-memory"), std::string::npos)
      << vramcache_last_error();
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB,unmap_on_free:on"), 0)
      << vramcache_last_error();
  void* p = vramcache_try_malloc(100, 0, nullptr);
  ASSERT_NE(p, nullptr) << vramcache_last_error();
  vramcache_free(p, 100, 0, nullptr);
  void* q = vramcache_try_malloc(100, 0, nullptr);
  EXPECT_NE(q, p) << "a freed address was handed out again";
  vramcache_free(q, 100, 0, nullptr);
}

}  // namespace
