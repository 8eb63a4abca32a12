// _set_allocator_settings: reading PyTorch's text against the configuration in use
// (ParseRuntimeSettings), and the C ABI that applies it to every device's allocator before and
// after the first allocation. A refused text changes nothing.
#include "allocator/api/allocator_settings.h"

#include <string>

#include "allocator/api/vramcache.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

TEST(ParseRuntimeSettingsTest, ReadsTheKeysThatMayChange) {
  AllocatorConfig current;
  absl::StatusOr<RuntimeSettings> settings = ParseRuntimeSettings(
      "max_split_size_mb:64,garbage_collection_threshold:0.6,max_non_split_rounding_mb:40,"
      "roundup_power2_divisions:[256:4,>:8]",
      current);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->max_split_size, 64 * kMiB);
  EXPECT_EQ(settings->max_non_split_rounding, 40 * kMiB);
  EXPECT_DOUBLE_EQ(settings->garbage_collection_threshold, 0.6);
  ASSERT_GT(settings->roundup_power2_divisions.size(), 30u);
  EXPECT_EQ(settings->roundup_power2_divisions[20], 4u);  // [1 MiB, 2 MiB): up to 256 MiB
  EXPECT_EQ(settings->roundup_power2_divisions[30], 8u);  // [1 GiB, 2 GiB): ">"
}

TEST(ParseRuntimeSettingsTest, KeepsWhatTheTextDoesNotName) {
  AllocatorConfig current;
  current.max_split_size = 128 * kMiB;
  current.garbage_collection_threshold = 0.8;
  absl::StatusOr<RuntimeSettings> settings =
      ParseRuntimeSettings("roundup_power2_divisions:4", current);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->max_split_size, 128 * kMiB);
  EXPECT_DOUBLE_EQ(settings->garbage_collection_threshold, 0.8);
}

TEST(ParseRuntimeSettingsTest, RefusesAKeyFixedAfterTheFirstAllocation) {
  AllocatorConfig current;
  absl::StatusOr<RuntimeSettings> settings =
      ParseRuntimeSettings("max_split_size_mb:64,expandable_segments:True", current);
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(settings.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(settings.status().message());
  EXPECT_NE(message.find("\"expandable_segments\" cannot change"), std::string::npos) << message;
  EXPECT_NE(message.find("garbage_collection_threshold"), std::string::npos) << message;
}

TEST(ParseRuntimeSettingsTest, AcceptsAFixedKeyGivenWithTheValueInUse) {
  AllocatorConfig current;  // expandable_segments off
  absl::StatusOr<RuntimeSettings> settings =
      ParseRuntimeSettings("expandable_segments:False,max_split_size_mb:64", current);
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->max_split_size, 64 * kMiB);
}

TEST(ParseRuntimeSettingsTest, BadTextIsAnErrorNamingIt) {
  AllocatorConfig current;
  for (const char* text :
       {"max_split_size_mb", "max_split_size_mb:abc", "garbage_collection_threshold:1.5",
        "max_split_size_mb:2", "budget:1GiB", "max_spilt_size_mb:64"}) {
    absl::StatusOr<RuntimeSettings> settings = ParseRuntimeSettings(text, current);
    ASSERT_FALSE(settings.ok()) << text;
    EXPECT_EQ(settings.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(settings.status().message().find("_set_allocator_settings"), std::string_view::npos)
        << settings.status();
  }
}

class SetAllocatorSettingsCApiTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(vramcache_shutdown(), 0); }
  void TearDown() override { EXPECT_EQ(vramcache_shutdown(), 0); }
  static vramcache_stats Stats(int device) {
    vramcache_stats s{};
    s.struct_size = sizeof(s);
    EXPECT_EQ(vramcache_get_stats(device, &s), 0) << vramcache_last_error();
    return s;
  }
};

TEST_F(SetAllocatorSettingsCApiTest, InUseChangesEveryDeviceOrNone) {
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB,sim_devices:2"), 0)
      << vramcache_last_error();
  void* p = vramcache_try_malloc(1000, 0, nullptr);
  ASSERT_NE(p, nullptr) << vramcache_last_error();
  EXPECT_EQ(Stats(0).max_split_size, -1);

  ASSERT_EQ(vramcache_set_allocator_settings("max_split_size_mb:64"), 0) << vramcache_last_error();
  EXPECT_EQ(Stats(0).max_split_size, static_cast<std::int64_t>(64 * kMiB));
  EXPECT_EQ(Stats(1).max_split_size, static_cast<std::int64_t>(64 * kMiB));

  // Refused as a whole: the runtime key beside the fixed one does not apply either.
  EXPECT_EQ(vramcache_set_allocator_settings("max_split_size_mb:128,expandable_segments:True"), -1);
  EXPECT_NE(std::string(vramcache_last_error()).find("expandable_segments"), std::string::npos)
      << vramcache_last_error();
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_OTHER);
  EXPECT_EQ(Stats(0).max_split_size, static_cast<std::int64_t>(64 * kMiB));
  EXPECT_EQ(Stats(1).max_split_size, static_cast<std::int64_t>(64 * kMiB));

  EXPECT_EQ(vramcache_set_allocator_settings("max_split_size_mb:x"), -1);
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_INVALID);
  EXPECT_EQ(vramcache_set_allocator_settings(nullptr), -1);
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_INVALID);
  EXPECT_EQ(Stats(0).max_split_size, static_cast<std::int64_t>(64 * kMiB));
  vramcache_free(p, 1000, 0, nullptr);
}

TEST_F(SetAllocatorSettingsCApiTest, BeforeTheFirstAllocationAnyKeyApplies) {
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB"), 0) << vramcache_last_error();
  ASSERT_EQ(vramcache_set_allocator_settings("max_split_size_mb:64,expandable_segments:True"), 0)
      << vramcache_last_error();
  void* p = vramcache_try_malloc(1000, 0, nullptr);
  ASSERT_NE(p, nullptr) << vramcache_last_error();
  EXPECT_EQ(Stats(0).max_split_size, static_cast<std::int64_t>(64 * kMiB));
  vramcache_free(p, 1000, 0, nullptr);
  // And a refused text before the first allocation changes nothing either.
  ASSERT_EQ(vramcache_shutdown(), 0);
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB"), 0) << vramcache_last_error();
  EXPECT_EQ(vramcache_set_allocator_settings("max_split_size_mb:64,budget:1GiB"), -1);
  p = vramcache_try_malloc(1000, 0, nullptr);
  ASSERT_NE(p, nullptr) << vramcache_last_error();
  EXPECT_EQ(Stats(0).max_split_size, -1);
  vramcache_free(p, 1000, 0, nullptr);
}

}  // namespace
}  // namespace vramcache
