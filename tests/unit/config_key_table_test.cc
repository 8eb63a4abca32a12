// The key table against its interface: names, homes and description order are consistent, every
// printed key reads back as what it printed, and ApplyConfigEntry's errors name what is wrong.
#include "allocator/api/config_key_table.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "allocator/api/config_parser.h"
#include "allocator/api/config_syntax.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

absl::Status Apply(std::string_view text, ConfigParseState& state) {
  absl::StatusOr<std::vector<ConfigEntry>> entries = SplitConfigText(state.source, text);
  EXPECT_TRUE(entries.ok()) << entries.status();
  if (!entries.ok()) return entries.status();
  for (const ConfigEntry& entry : *entries) {
    if (absl::Status s = ApplyConfigEntry(entry, state); !s.ok()) return s;
  }
  return absl::OkStatus();
}

ConfigParseState StateFor(bool pytorch_variable) {
  ConfigParseState state;
  state.pytorch_variable = pytorch_variable;
  state.source = pytorch_variable ? "PYTORCH_ALLOC_CONF" : "VRAMCACHE_CONF";
  return state;
}

TEST(ConfigKeyTableTest, NamesAreUniqueAndVramcachesKeysComeFirst) {
  std::set<std::string_view> names;
  bool seen_pytorch = false;
  for (const ConfigKey& key : ConfigKeyTable()) {
    EXPECT_TRUE(names.insert(key.name).second) << key.name;
    EXPECT_EQ(FindConfigKey(key.name), &key);
    EXPECT_NE(key.set, nullptr) << key.name;
    EXPECT_FALSE(key.allowed.empty()) << key.name;
    if (key.home == ConfigKeyHome::kPytorch) seen_pytorch = true;
    EXPECT_FALSE(seen_pytorch && key.home == ConfigKeyHome::kVramcache) << key.name;
  }
  EXPECT_EQ(FindConfigKey("no_such_key"), nullptr);
}

TEST(ConfigKeyTableTest, DescribedKeysHaveDistinctPositionsFromOne) {
  std::vector<int> positions;
  for (const ConfigKey& key : ConfigKeyTable()) {
    if (key.describe == nullptr) {
      EXPECT_EQ(key.describe_position, 0) << key.name;
      continue;
    }
    positions.push_back(key.describe_position);
  }
  std::sort(positions.begin(), positions.end());
  for (std::size_t i = 0; i < positions.size(); ++i)
    EXPECT_EQ(positions[i], static_cast<int>(i) + 1);
}

TEST(ConfigKeyTableTest, EnumKeysAllowExactlyTheirChoices) {
  EXPECT_EQ(FindConfigKey("device")->allowed, "cuda, sim or auto");
  EXPECT_EQ(FindConfigKey("sim_backing")->allowed, "accounting or memory");
  EXPECT_EQ(FindConfigKey("vmm")->allowed, "on, off or auto");
  EXPECT_EQ(FindConfigKey("cross_stream")->allowed, "none, query or wait");
}

TEST(ConfigKeyTableTest, TheDefaultsPrintEveryVramcacheKeyInPositionOrder) {
  const std::string line = DescribeConfigKeys(AllocatorConfig{});
  EXPECT_THAT(line, StartsWith("device:auto,sim_capacity:80GiB,sim_granularity:2MiB,"));
  std::size_t last = 0;
  std::vector<const ConfigKey*> by_position;
  for (const ConfigKey& key : ConfigKeyTable()) {
    if (key.describe != nullptr && key.describe(AllocatorConfig{}).has_value()) {
      by_position.push_back(&key);
    }
  }
  std::sort(by_position.begin(), by_position.end(), [](const ConfigKey* a, const ConfigKey* b) {
    return a->describe_position < b->describe_position;
  });
  for (const ConfigKey* key : by_position) {
    const std::size_t at = line.find(std::string(key->name) + ":");
    ASSERT_NE(at, std::string::npos) << key->name;
    EXPECT_GE(at, last) << key->name;
    last = at;
  }
  // PyTorch's keys at PyTorch's defaults are left out.
  EXPECT_THAT(line, ::testing::Not(HasSubstr("max_split_size_mb")));
}

TEST(ConfigKeyTableTest, EveryPrintedValueReadsBackAsItself) {
  ConfigParseState state = StateFor(false);
  ASSERT_TRUE(Apply("device:sim,sim_backing:memory,budget:12GiB,soft_budget:0.5,vmm:on,"
                    "cross_stream:query,canaries:on,history_capacity:7,reuse_cache:3MiB,"
                    "max_split_size_mb:64,garbage_collection_threshold:0.6,"
                    "roundup_power2_divisions:[256:1,>:4],expandable_segments:true,"
                    "per_process_memory_fraction:0.25,release_lock_on_cudamalloc:true,"
                    "graph_capture_record_stream_reuse:true,backend:cudaMallocAsync",
                    state)
                  .ok());
  const std::string line = DescribeConfigKeys(state.config);
  ConfigParseState again = StateFor(false);
  ASSERT_TRUE(Apply(line, again).ok()) << line;
  EXPECT_EQ(DescribeConfigKeys(again.config), line);
  EXPECT_THAT(line, HasSubstr("budget:12GiB,soft_budget:0.5,vmm:on,cross_stream:query"));
  EXPECT_THAT(line, HasSubstr("reuse_cache:3MiB,max_split_size_mb:64"));
  EXPECT_THAT(line, HasSubstr("expandable_segments:True,per_process_memory_fraction:0.25"));
  EXPECT_THAT(line, ::testing::EndsWith("backend:cudaMallocAsync"));
}

TEST(ConfigKeyTableTest, ApplyNamesTheVariableKeyValueAndWhatIsAllowed) {
  ConfigParseState state = StateFor(false);
  EXPECT_EQ(Apply("vmm:sometimes", state).message(),
            "VRAMCACHE_CONF: bad value \"sometimes\" for key \"vmm\": not one of the choices; "
            "allowed: on, off or auto");
  EXPECT_THAT(std::string(Apply("vmm:[a:b]", state).message()),
              HasSubstr("a list, but the key takes a single value"));
  ConfigParseState pytorch = StateFor(true);
  EXPECT_THAT(std::string(Apply("expandable_segments:true", pytorch).message()),
              HasSubstr("allowed: True or False (PyTorch's spelling)"));
  EXPECT_THAT(std::string(Apply("vmm:on", pytorch).message()),
              HasSubstr("key \"vmm\" (value \"on\") is vramcache's own, not PyTorch's: set it in "
                        "VRAMCACHE_CONF. valid keys (PyTorch 2.11's): large_segment_size_mb,"));
}

TEST(ConfigKeyTableTest, AnUnknownKeyGetsASuggestionAndTheValidKeys) {
  ConfigParseState state = StateFor(false);
  EXPECT_THAT(std::string(Apply("devcie:sim", state).message()),
              HasSubstr("VRAMCACHE_CONF: unknown key \"devcie\" (value \"sim\"); did you mean "
                        "\"device\"? valid keys: vramcache's device, sim_capacity,"));
  EXPECT_THAT(std::string(Apply("zzzzzzzzzz:1", state).message()),
              HasSubstr("(value \"1\"); valid keys: vramcache's device"));
  // In PyTorch's variable only PyTorch's keys are suggested.
  ConfigParseState pytorch = StateFor(true);
  EXPECT_THAT(std::string(Apply("devcie:sim", pytorch).message()),
              HasSubstr("unknown key \"devcie\" (value \"sim\"); valid keys (PyTorch 2.11's)"));
}

}  // namespace
}  // namespace vramcache
