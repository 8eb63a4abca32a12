// The configuration parser: every key with valid and invalid values, size units, PyTorch's
// division lists, the syntax and its malformed forms, precedence between PyTorch's variable,
// VRAMCACHE_CONF and vramcache_configure(), error messages (variable, key, value, what is allowed,
// typo suggestions) and DescribeConfig's round trip.
#include "allocator/api/config_parser.h"

#include <bit>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

AllocatorConfig Parse(std::string_view vramcache_conf, std::string_view pytorch_conf = "") {
  absl::StatusOr<AllocatorConfig> config = ParseConfig(vramcache_conf, pytorch_conf);
  EXPECT_TRUE(config.ok()) << "VRAMCACHE_CONF=\"" << vramcache_conf << "\" PYTORCH_ALLOC_CONF=\""
                           << pytorch_conf << "\": " << config.status();
  return config.ok() ? *config : AllocatorConfig{};
}

// The message of the InvalidArgument that parsing must fail with.
std::string ErrorOf(std::string_view vramcache_conf, std::string_view pytorch_conf = "") {
  absl::StatusOr<AllocatorConfig> config = ParseConfig(vramcache_conf, pytorch_conf);
  EXPECT_FALSE(config.ok()) << "VRAMCACHE_CONF=\"" << vramcache_conf << "\" PYTORCH_ALLOC_CONF=\""
                            << pytorch_conf << "\" was accepted";
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
  return std::string(config.status().message());
}

void ExpectSameSettings(const AllocatorConfig& a, const AllocatorConfig& b) {
  EXPECT_EQ(a.device, b.device);
  EXPECT_EQ(a.sim_capacity, b.sim_capacity);
  EXPECT_EQ(a.sim_granularity, b.sim_granularity);
  EXPECT_EQ(a.sim_accounting_only, b.sim_accounting_only);
  EXPECT_EQ(a.sim_devices, b.sim_devices);
  EXPECT_EQ(a.budget_bytes, b.budget_bytes);
  EXPECT_EQ(a.soft_budget_bytes, b.soft_budget_bytes);
  EXPECT_EQ(a.soft_budget_fraction, b.soft_budget_fraction);
  EXPECT_EQ(a.vmm, b.vmm);
  EXPECT_EQ(a.cross_stream, b.cross_stream);
  EXPECT_EQ(a.poison_on_free, b.poison_on_free);
  EXPECT_EQ(a.canaries, b.canaries);
  EXPECT_EQ(a.unmap_on_free, b.unmap_on_free);
  EXPECT_EQ(a.zero_on_alloc, b.zero_on_alloc);
  EXPECT_EQ(a.record_history, b.record_history);
  EXPECT_EQ(a.history_capacity, b.history_capacity);
  EXPECT_EQ(a.check_invariants, b.check_invariants);
  EXPECT_EQ(a.max_split_size, b.max_split_size);
  EXPECT_EQ(a.max_non_split_rounding, b.max_non_split_rounding);
  EXPECT_EQ(a.roundup_power2_divisions, b.roundup_power2_divisions);
  EXPECT_EQ(a.garbage_collection_threshold, b.garbage_collection_threshold);
  EXPECT_EQ(a.expandable_segments, b.expandable_segments);
  EXPECT_EQ(a.per_process_memory_fraction, b.per_process_memory_fraction);
  EXPECT_EQ(a.release_lock_on_cudamalloc, b.release_lock_on_cudamalloc);
  EXPECT_EQ(a.graph_capture_record_stream_reuse, b.graph_capture_record_stream_reuse);
  EXPECT_EQ(a.backend, b.backend);
}

// Sets (or unsets, with nullopt) an environment variable for one test and restores it after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name); old != nullptr) old_ = old;
    Set(value);
  }
  ~ScopedEnv() { Set(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void Set(const std::optional<std::string>& value) {
    if (value.has_value()) {
      setenv(name_, value->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  const char* name_;
  std::optional<std::string> old_;
};

// All three variables unset, then whatever a test sets on top.
class ConfigEnvironmentTest : public ::testing::Test {
 protected:
  ScopedEnv vramcache_{"VRAMCACHE_CONF", std::nullopt};
  ScopedEnv pytorch_{"PYTORCH_ALLOC_CONF", std::nullopt};
  ScopedEnv pytorch_cuda_{"PYTORCH_CUDA_ALLOC_CONF", std::nullopt};
  ScopedEnv no_caching_{"PYTORCH_NO_CUDA_MEMORY_CACHING", std::nullopt};
};

// ---------------------------------------------------------------------------------------------

TEST(ConfigParserTest, EmptyAndBlankStringsKeepDefaults) {
  const AllocatorConfig defaults;
  ExpectSameSettings(Parse(""), defaults);
  ExpectSameSettings(Parse("  \t ", " "), defaults);
  ExpectSameSettings(Parse("", ""), defaults);
}

TEST(ConfigParserTest, VramcacheKeysValid) {
  EXPECT_EQ(Parse("device:cuda").device, DeviceKind::kCuda);
  EXPECT_EQ(Parse("device:sim").device, DeviceKind::kSim);
  EXPECT_EQ(Parse("device:SIM").device, DeviceKind::kSim);
  EXPECT_EQ(Parse("device:sim,device:auto").device, DeviceKind::kAuto);
  EXPECT_EQ(Parse("sim_capacity:24GiB").sim_capacity, 24 * kGiB);
  EXPECT_EQ(Parse("sim_granularity:4KiB").sim_granularity, 4 * kKiB);
  EXPECT_EQ(Parse("sim_granularity:64MiB").sim_granularity, 64 * kMiB);
  EXPECT_FALSE(Parse("sim_backing:memory").sim_accounting_only);
  EXPECT_TRUE(Parse("sim_backing:memory,sim_backing:accounting").sim_accounting_only);
  EXPECT_EQ(Parse("vmm:on").vmm, VmmMode::kOn);
  EXPECT_EQ(Parse("vmm:off").vmm, VmmMode::kOff);
  EXPECT_EQ(Parse("vmm:on,vmm:auto").vmm, VmmMode::kAuto);
  EXPECT_EQ(Parse("cross_stream:none").cross_stream, CrossStreamPolicy::kNone);
  EXPECT_EQ(Parse("cross_stream:query").cross_stream, CrossStreamPolicy::kQuery);
  EXPECT_EQ(Parse("cross_stream:none,cross_stream:wait").cross_stream, CrossStreamPolicy::kWait);
  EXPECT_TRUE(Parse("poison_on_free:true").poison_on_free);
  EXPECT_TRUE(Parse("canaries:on").canaries);
  EXPECT_TRUE(Parse("unmap_on_free:yes").unmap_on_free);
  EXPECT_TRUE(Parse("zero_on_alloc:1").zero_on_alloc);
  EXPECT_TRUE(Parse("record_history:True").record_history);
  EXPECT_EQ(Parse("history_capacity:500").history_capacity, 500u);
  EXPECT_FALSE(Parse("check_invariants:false").check_invariants);
  EXPECT_TRUE(Parse("check_invariants:true").check_invariants);
}

TEST(ConfigParserTest, BudgetTakesBytesFractionOrNone) {
  AllocatorConfig config = Parse("budget:20GiB");
  EXPECT_EQ(config.budget_bytes, 20 * kGiB);
  EXPECT_FALSE(config.per_process_memory_fraction.has_value());

  config = Parse("budget:0.5");
  EXPECT_FALSE(config.budget_bytes.has_value());
  EXPECT_EQ(config.per_process_memory_fraction, 0.5);
  EXPECT_EQ(Parse("budget:1.0").per_process_memory_fraction, 1.0);
  EXPECT_EQ(Parse("budget:5e-1").per_process_memory_fraction, 0.5);

  // Bytes and a fraction are two caps that both apply; none lifts both.
  config = Parse("budget:20GiB,budget:0.25");
  EXPECT_EQ(config.budget_bytes, 20 * kGiB);
  EXPECT_EQ(config.per_process_memory_fraction, 0.25);
  config = Parse("budget:none", "per_process_memory_fraction:0.5");
  EXPECT_FALSE(config.budget_bytes.has_value());
  EXPECT_FALSE(config.per_process_memory_fraction.has_value());
  // An integer without a unit is bytes.
  EXPECT_EQ(Parse("budget:1").budget_bytes, 1u);
}

TEST(ConfigParserTest, SoftBudgetIsOneCapInEitherForm) {
  AllocatorConfig config = Parse("soft_budget:16GiB");
  EXPECT_EQ(config.soft_budget_bytes, 16 * kGiB);
  EXPECT_FALSE(config.soft_budget_fraction.has_value());

  config = Parse("soft_budget:16GiB,soft_budget:0.75");
  EXPECT_FALSE(config.soft_budget_bytes.has_value());
  EXPECT_EQ(config.soft_budget_fraction, 0.75);

  config = Parse("soft_budget:0.75,soft_budget:none");
  EXPECT_FALSE(config.soft_budget_bytes.has_value());
  EXPECT_FALSE(config.soft_budget_fraction.has_value());
}

struct BadCase {
  std::string conf;
  std::string key;
  std::string value;
  std::string allowed;  // a piece of the "allowed:" text
};

TEST(ConfigParserTest, VramcacheKeysInvalidNameVariableKeyValueAndAllowed) {
  const std::vector<BadCase> cases = {
      {"device:gpu", "device", "gpu", "cuda, sim or auto"},
      {"sim_capacity:0", "sim_capacity", "0", "a size"},
      {"sim_capacity:lots", "sim_capacity", "lots", "a size"},
      {"sim_capacity:-1GiB", "sim_capacity", "-1GiB", "a size"},
      {"sim_granularity:3000", "sim_granularity", "3000", "power-of-two size of at least 4KiB"},
      {"sim_granularity:2KiB", "sim_granularity", "2KiB", "power-of-two size of at least 4KiB"},
      {"sim_granularity:3MiB", "sim_granularity", "3MiB", "power-of-two size of at least 4KiB"},
      {"sim_backing:disk", "sim_backing", "disk", "accounting or memory"},
      {"budget:0", "budget", "0", "or none"},
      {"budget:1.5", "budget", "1.5", "fraction of the device's memory in (0, 1]"},
      {"budget:0.0", "budget", "0.0", "fraction of the device's memory in (0, 1]"},
      {"budget:-0.5", "budget", "-0.5", "or none"},
      {"budget:twenty", "budget", "twenty", "or none"},
      {"soft_budget:2.0", "soft_budget", "2.0", "or none"},
      {"soft_budget:0B", "soft_budget", "0B", "or none"},
      {"vmm:maybe", "vmm", "maybe", "on, off or auto"},
      {"cross_stream:sync", "cross_stream", "sync", "none, query or wait"},
      {"poison_on_free:2", "poison_on_free", "2", "true/false, on/off, yes/no or 1/0"},
      {"canaries:enable", "canaries", "enable", "true/false, on/off, yes/no or 1/0"},
      {"unmap_on_free:", "unmap_on_free", "", "has no value"},
      {"zero_on_alloc:y", "zero_on_alloc", "y", "true/false"},
      {"record_history:tru", "record_history", "tru", "true/false"},
      {"check_invariants:maybe", "check_invariants", "maybe", "true/false"},
      {"history_capacity:0", "history_capacity", "0", "a whole number >= 1"},
      {"history_capacity:-5", "history_capacity", "-5", "a whole number >= 1"},
      {"history_capacity:1e3", "history_capacity", "1e3", "a whole number >= 1"},
  };
  for (const BadCase& bad : cases) {
    const std::string message = ErrorOf(bad.conf);
    EXPECT_THAT(message, AllOf(HasSubstr("VRAMCACHE_CONF"), HasSubstr("\"" + bad.key + "\""),
                               HasSubstr(bad.allowed)))
        << bad.conf;
    if (!bad.value.empty()) {
      EXPECT_THAT(message, HasSubstr("\"" + bad.value + "\"")) << bad.conf;
    }
  }
}

TEST(ConfigParserTest, BooleanSpellings) {
  for (const char* yes : {"true", "TRUE", "True", "on", "On", "yes", "1"}) {
    EXPECT_TRUE(Parse(absl::StrFormat("record_history:%s", yes)).record_history) << yes;
    EXPECT_TRUE(Parse(absl::StrFormat("expandable_segments:%s", yes)).expandable_segments) << yes;
  }
  for (const char* no : {"false", "FALSE", "False", "off", "no", "0"}) {
    EXPECT_FALSE(Parse(absl::StrFormat("record_history:true,record_history:%s", no)).record_history)
        << no;
  }
  // PyTorch's own variable takes only PyTorch's spelling, as PyTorch does.
  EXPECT_TRUE(Parse("", "expandable_segments:True").expandable_segments);
  EXPECT_FALSE(Parse("", "expandable_segments:False").expandable_segments);
  for (const char* other : {"true", "1", "on", "TRUE"}) {
    EXPECT_THAT(ErrorOf("", absl::StrFormat("expandable_segments:%s", other)),
                AllOf(HasSubstr("PYTORCH_ALLOC_CONF"), HasSubstr("\"expandable_segments\""),
                      HasSubstr("True or False")))
        << other;
  }
}

TEST(ConfigParserTest, SizeUnitsAreBinaryAndExact) {
  const std::vector<std::pair<std::string, std::size_t>> sizes = {
      {"4096", 4096},
      {"4096B", 4096},
      {"4096 b", 4096},
      {"4k", 4 * kKiB},
      {"4KB", 4 * kKiB},
      {"4KiB", 4 * kKiB},
      {"4kib", 4 * kKiB},
      {"3M", 3 * kMiB},
      {"3MB", 3 * kMiB},
      {"3MiB", 3 * kMiB},
      {"24 GB", 24 * kGiB},
      {"24GiB", 24 * kGiB},
      {"2T", 2 * kGiB * 1024},
      {"2TB", 2 * kGiB * 1024},
      {"2TiB", 2 * kGiB * 1024},
      {"1.5GiB", 3 * kGiB / 2},
      {".5MiB", kMiB / 2},
      {"0.5KiB", 512},
      {"2.000MiB", 2 * kMiB},
      {"1.25", 0},  // not whole: checked below
  };
  // budget reads sizes as every size key does (sim_capacity must also be whole granules).
  for (const auto& [text, bytes] : sizes) {
    if (bytes == 0) continue;
    EXPECT_EQ(Parse("budget:" + text).budget_bytes, bytes) << text;
  }
  EXPECT_EQ(Parse("budget:18446744073709551615").budget_bytes,
            std::numeric_limits<std::size_t>::max());

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"18446744073709551616", "larger than 2^64 - 1"},
      {"17179869184GiB", "larger than 2^64 - 1"},
      {"16777216TiB", "larger than 2^64 - 1"},
      {"16777215.99999999999999999999TiB", "too many decimal places"},
      {"1.25", "not a whole number of bytes"},
      {"0.1KiB", "not a whole number of bytes"},
      {"1.2.3GiB", "not a number"},
      {"GiB", "not a number"},
      {"5XB", "unknown unit \"xb\""},
      {"5 Gibibytes", "unknown unit"},
  };
  for (const auto& [text, why] : bad) {
    EXPECT_THAT(ErrorOf("sim_capacity:" + text), AllOf(HasSubstr(why), HasSubstr(text))) << text;
  }
}

// ---------------------------------------------------------------------------------------------
// PyTorch's keys.

TEST(ConfigParserTest, PytorchKeysValidInBothVariables) {
  for (const bool in_pytorch_variable : {true, false}) {
    const auto parse = [&](std::string_view conf) {
      return in_pytorch_variable ? Parse("", conf) : Parse(conf);
    };
    EXPECT_EQ(parse("max_split_size_mb:512").max_split_size, 512 * kMiB);
    EXPECT_EQ(parse("max_split_size_mb:20").max_split_size, 20 * kMiB);
    EXPECT_EQ(parse("max_non_split_rounding_mb:64").max_non_split_rounding, 64 * kMiB);
    EXPECT_EQ(parse("garbage_collection_threshold:0.8").garbage_collection_threshold, 0.8);
    EXPECT_TRUE(parse("expandable_segments:True").expandable_segments);
    EXPECT_EQ(parse("per_process_memory_fraction:0.5").per_process_memory_fraction, 0.5);
    EXPECT_EQ(parse("per_process_memory_fraction:0").per_process_memory_fraction, 0.0);
    EXPECT_EQ(parse("per_process_memory_fraction:1").per_process_memory_fraction, 1.0);
    EXPECT_TRUE(parse("release_lock_on_cudamalloc:True").release_lock_on_cudamalloc);
    EXPECT_TRUE(parse("release_lock_on_hipmalloc:True").release_lock_on_cudamalloc);
    EXPECT_TRUE(parse("graph_capture_record_stream_reuse:True").graph_capture_record_stream_reuse);
    EXPECT_EQ(parse("backend:cudaMallocAsync").backend, "cudaMallocAsync");
    EXPECT_EQ(parse("backend:native").backend, "native");
    // Accepted and validated, but about PyTorch's pinned host memory: nothing changes.
    ExpectSameSettings(
        parse("pinned_use_cuda_host_register:True,pinned_use_hip_host_register:False,"
              "pinned_num_register_threads:128,pinned_reserve_segment_size_mb:256,"
              "pinned_use_background_threads:True"),
        AllocatorConfig{});
    // A huge max_split_size_mb is clamped so the bytes fit, as PyTorch clamps it.
    EXPECT_EQ(parse("max_split_size_mb:18446744073709551615").max_split_size,
              std::numeric_limits<std::size_t>::max() / kMiB * kMiB);
  }
}

TEST(ConfigParserTest, PytorchKeysInvalidInBothVariables) {
  const std::vector<BadCase> cases = {
      {"max_split_size_mb:19", "max_split_size_mb", "19", ">= large_segment_size_mb"},
      {"max_split_size_mb:0", "max_split_size_mb", "0", ">= large_segment_size_mb"},
      {"max_split_size_mb:512MiB", "max_split_size_mb", "512MiB", "whole number of MiB"},
      {"max_split_size_mb:-1", "max_split_size_mb", "-1", "whole number of MiB"},
      {"max_split_size_mb:99999999999999999999", "max_split_size_mb", "99999999999999999999",
       "whole number of MiB"},
      {"max_non_split_rounding_mb:8", "max_non_split_rounding_mb", "8", ">= large_segment_size_mb"},
      {"large_segment_size_mb:10", "large_segment_size_mb", "10", "above 10"},
      {"large_segment_size_mb:x", "large_segment_size_mb", "x", "above 10"},
      {"garbage_collection_threshold:0", "garbage_collection_threshold", "0", "(0, 1)"},
      {"garbage_collection_threshold:1", "garbage_collection_threshold", "1", "(0, 1)"},
      {"garbage_collection_threshold:1.5", "garbage_collection_threshold", "1.5", "(0, 1)"},
      {"garbage_collection_threshold:-0.2", "garbage_collection_threshold", "-0.2", "(0, 1)"},
      {"garbage_collection_threshold:nan", "garbage_collection_threshold", "nan", "(0, 1)"},
      {"garbage_collection_threshold:0.8x", "garbage_collection_threshold", "0.8x", "(0, 1)"},
      {"per_process_memory_fraction:1.1", "per_process_memory_fraction", "1.1", "[0, 1]"},
      {"per_process_memory_fraction:-0.1", "per_process_memory_fraction", "-0.1", "[0, 1]"},
      {"per_process_memory_fraction:half", "per_process_memory_fraction", "half", "[0, 1]"},
      {"backend:hipMallocAsync", "backend", "hipMallocAsync", "native or cudaMallocAsync"},
      {"backend:Native", "backend", "Native", "native or cudaMallocAsync"},
      {"expandable_segments:maybe", "expandable_segments", "maybe", ""},
      {"pinned_use_background_threads:maybe", "pinned_use_background_threads", "maybe", ""},
      {"pinned_use_cuda_host_register:2", "pinned_use_cuda_host_register", "2", ""},
      {"release_lock_on_cudamalloc:x", "release_lock_on_cudamalloc", "x", ""},
      {"graph_capture_record_stream_reuse:x", "graph_capture_record_stream_reuse", "x", ""},
      {"pinned_num_register_threads:3", "pinned_num_register_threads", "3", "power of two <= 128"},
      {"pinned_num_register_threads:0", "pinned_num_register_threads", "0", "power of two <= 128"},
      {"pinned_num_register_threads:256", "pinned_num_register_threads", "256",
       "power of two <= 128"},
      {"pinned_reserve_segment_size_mb:0", "pinned_reserve_segment_size_mb", "0", "MiB > 0"},
      {"max_split_size_mb:[1:2]", "max_split_size_mb", "[1:2]", "takes a single value"},
  };
  for (const BadCase& bad : cases) {
    for (const bool in_pytorch_variable : {true, false}) {
      const std::string message = in_pytorch_variable ? ErrorOf("", bad.conf) : ErrorOf(bad.conf);
      EXPECT_THAT(message,
                  AllOf(HasSubstr(in_pytorch_variable ? "PYTORCH_ALLOC_CONF" : "VRAMCACHE_CONF"),
                        HasSubstr("\"" + bad.key + "\""), HasSubstr("\"" + bad.value + "\""),
                        HasSubstr(bad.allowed)))
          << bad.conf;
    }
  }
}

TEST(ConfigParserTest, LargeSegmentSizeSetsTheSplitFloorWhereverItIsWritten) {
  // Read first within a variable, as PyTorch does, so the order of the keys does not matter.
  EXPECT_EQ(Parse("max_split_size_mb:40,large_segment_size_mb:32").max_split_size, 40 * kMiB);
  EXPECT_THAT(ErrorOf("max_split_size_mb:30,large_segment_size_mb:32"),
              AllOf(HasSubstr("\"max_split_size_mb\""), HasSubstr("below 32")));
  // It is also the default of max_non_split_rounding_mb, unless that key is given.
  EXPECT_EQ(Parse("large_segment_size_mb:64").max_non_split_rounding, 64 * kMiB);
  EXPECT_EQ(Parse("large_segment_size_mb:64,max_non_split_rounding_mb:100").max_non_split_rounding,
            100 * kMiB);
  EXPECT_EQ(Parse("large_segment_size_mb:11").max_non_split_rounding, 11 * kMiB);
  // Across variables: a split size from one below the floor set in the other is refused.
  EXPECT_THAT(ErrorOf("large_segment_size_mb:64", "max_split_size_mb:32"),
              AllOf(HasSubstr("PYTORCH_ALLOC_CONF"), HasSubstr("\"max_split_size_mb\""),
                    HasSubstr("large_segment_size_mb 64 set in VRAMCACHE_CONF")));
  EXPECT_EQ(
      Parse("max_non_split_rounding_mb:100", "large_segment_size_mb:64").max_non_split_rounding,
      100 * kMiB);
}

TEST(ConfigParserTest, RoundupPower2DivisionsSingleNumber) {
  const std::vector<std::size_t> divisions =
      Parse("roundup_power2_divisions:4").roundup_power2_divisions;
  ASSERT_EQ(divisions.size(), 64u);
  for (std::size_t d : divisions) EXPECT_EQ(d, 4u);
  EXPECT_EQ(Parse("", "roundup_power2_divisions:1").roundup_power2_divisions,
            std::vector<std::size_t>(64, 1));
  for (const char* bad : {"0", "3", "-4", "x", "4.0"}) {
    EXPECT_THAT(ErrorOf(absl::StrFormat("roundup_power2_divisions:%s", bad)),
                AllOf(HasSubstr("\"roundup_power2_divisions\""), HasSubstr("power of two")))
        << bad;
  }
}

// Entry i of the config: divisions for sizes in [2^i, 2^(i+1)) bytes.
std::size_t DivisionsFor(const AllocatorConfig& config, std::size_t bytes) {
  const int log2 = std::bit_width(bytes) - 1;
  return config.roundup_power2_divisions.at(log2);
}

TEST(ConfigParserTest, RoundupPower2DivisionsListFollowsPytorch) {
  // PyTorch's documented example: 1 division below 512 MiB, 2 in [512 MiB, 1 GiB), 4 in
  // [1 GiB, 2 GiB), 8 from 2 GiB on.
  const AllocatorConfig config = Parse("", "roundup_power2_divisions:[256:1,512:2,1024:4,>:8]");
  ASSERT_EQ(config.roundup_power2_divisions.size(), 64u);
  EXPECT_EQ(DivisionsFor(config, 4096), 1u);
  EXPECT_EQ(DivisionsFor(config, 3 * kMiB), 1u);
  EXPECT_EQ(DivisionsFor(config, 300 * kMiB), 1u);
  EXPECT_EQ(DivisionsFor(config, 600 * kMiB), 2u);
  EXPECT_EQ(DivisionsFor(config, 1536 * kMiB), 4u);
  EXPECT_EQ(DivisionsFor(config, 3 * kGiB), 8u);
  EXPECT_EQ(DivisionsFor(config, std::size_t{1} << 62), 8u);

  // Later bounds set only their own interval; ">" covers what follows the last bound.
  const AllocatorConfig sparse = Parse("roundup_power2_divisions:[64:8, 1024:2]");
  EXPECT_EQ(DivisionsFor(sparse, 2 * kMiB), 8u);
  EXPECT_EQ(DivisionsFor(sparse, 64 * kMiB), 8u);
  EXPECT_EQ(DivisionsFor(sparse, 128 * kMiB), 0u);
  EXPECT_EQ(DivisionsFor(sparse, kGiB), 2u);
  EXPECT_EQ(DivisionsFor(sparse, 2 * kGiB), 0u);

  // ">" first: PyTorch fills from the second interval on, the first (below 2 MiB) stays 0.
  const AllocatorConfig rest = Parse("roundup_power2_divisions:[>:4]");
  EXPECT_EQ(DivisionsFor(rest, kMiB), 0u);
  EXPECT_EQ(DivisionsFor(rest, 2 * kMiB), 4u);
  // Bounds past 32 GiB land in the last interval (PyTorch clamps).
  const AllocatorConfig huge = Parse("roundup_power2_divisions:[1048576:2]");
  EXPECT_EQ(DivisionsFor(huge, kMiB), 2u);
  EXPECT_EQ(DivisionsFor(huge, std::size_t{1} << 40), 2u);
  // 0 divisions turn rounding off for an interval; an empty list, or all zeros, everywhere.
  EXPECT_EQ(DivisionsFor(Parse("roundup_power2_divisions:[256:0,>:4]"), kMiB), 0u);
  EXPECT_TRUE(Parse("roundup_power2_divisions:[]").roundup_power2_divisions.empty());
  EXPECT_TRUE(Parse("roundup_power2_divisions:[1:0,>:0]").roundup_power2_divisions.empty());
  // A later roundup_power2_divisions replaces the earlier one entirely.
  EXPECT_EQ(Parse("roundup_power2_divisions:[256:0,>:8]", "roundup_power2_divisions:2")
                .roundup_power2_divisions.at(20),
            0u);
  // One trailing comma inside the list is tolerated, as at the end of the string.
  EXPECT_EQ(DivisionsFor(Parse("roundup_power2_divisions:[256:1, >:8,]"), kGiB), 8u);
}

TEST(ConfigParserTest, RoundupPower2DivisionsListErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"roundup_power2_divisions:[3:2]", "bound \"3\" must be a power-of-two number of MiB"},
      {"roundup_power2_divisions:[0:2]", "bound \"0\""},
      {"roundup_power2_divisions:[x:2]", "bound \"x\""},
      {"roundup_power2_divisions:[256:3]", "divisions \"3\" (for \"256\") must be 0 or a power"},
      {"roundup_power2_divisions:[>:-1]", "divisions \"-1\""},
  };
  for (const auto& [conf, why] : cases) {
    EXPECT_THAT(ErrorOf(conf),
                AllOf(HasSubstr("VRAMCACHE_CONF"), HasSubstr("\"roundup_power2_divisions\""),
                      HasSubstr(why), HasSubstr("[256:1,512:2,1024:4,>:8]")))
        << conf;
  }
}

// ---------------------------------------------------------------------------------------------
// Syntax.

TEST(ConfigParserTest, WhitespaceAndATrailingCommaAreTolerated) {
  const AllocatorConfig config = Parse(
      "  device : sim ,\tbudget : 1.5 GiB , roundup_power2_divisions : [ 256 : 1 , > : 2 ] ,");
  EXPECT_EQ(config.device, DeviceKind::kSim);
  EXPECT_EQ(config.budget_bytes, 3 * kGiB / 2);
  EXPECT_EQ(DivisionsFor(config, kGiB), 2u);
  EXPECT_EQ(Parse("", "max_split_size_mb:64,").max_split_size, 64 * kMiB);
}

TEST(ConfigParserTest, MalformedStringsAreRejectedWithTheirPlace) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"max_split_size_mb", "entry \"max_split_size_mb\" has no ':'"},
      {"device:sim,budget", "entry \"budget\" has no ':'"},
      {":5", "empty key before ':'"},
      {"device:", "key \"device\" has no value"},
      {"device:,budget:1GiB", "key \"device\" has no value"},
      {",device:sim", "empty entry (a leading comma)"},
      {"device:sim,,budget:1GiB", "empty entry (two commas in a row)"},
      {"device:sim,,", "empty entry (two commas in a row)"},
      {"device:sim budget:1GiB", "a second ':' in the value of key \"device\" (a missing comma"},
      {"device:sim:cuda", "a second ':' in the value of key \"device\""},
      {"device:sim]", "unbalanced ']' in the value of key \"device\""},
      {"device:s[im", "unexpected '[' inside the value of key \"device\""},
      {"dev[ice:sim", "unexpected '[' in key \"dev\""},
      {"roundup_power2_divisions:[256:1",
       "unbalanced '[' in the value of key "
       "\"roundup_power2_divisions\": no closing ']'"},
      {"roundup_power2_divisions:[256:1,", "no closing ']'"},
      {"roundup_power2_divisions:[", "no closing ']'"},
      {"roundup_power2_divisions:[256:1]]", "unexpected ']' after the value"},
      {"roundup_power2_divisions:[256:1] device:sim", "unexpected 'd' after the value"},
      {"roundup_power2_divisions:[[256:1]]", "nested '['"},
      {"roundup_power2_divisions:[256:[1]]", "unexpected '[' in list item \"256\""},
      {"roundup_power2_divisions:[256]",
       "list item \"256\" of key \"roundup_power2_divisions\" "
       "has no ':'"},
      {"roundup_power2_divisions:[:1]", "empty item key"},
      {"roundup_power2_divisions:[256:]",
       "list item \"256\" of key \"roundup_power2_divisions\" "
       "has no value"},
      {"roundup_power2_divisions:[256:1,,>:2]", "empty item in the list"},
      {"roundup_power2_divisions:[256:1:2]", "unexpected ':' in list item \"256\""},
  };
  for (const auto& [conf, why] : cases) {
    const std::string message = ErrorOf(conf);
    EXPECT_THAT(message, AllOf(HasSubstr("VRAMCACHE_CONF: malformed"), HasSubstr(why),
                               HasSubstr("at character"), HasSubstr("key:value")))
        << conf;
  }
  EXPECT_THAT(ErrorOf("", "max_split_size_mb"),
              HasSubstr("PYTORCH_ALLOC_CONF: malformed \"max_split_size_mb\""));
  // Positions count from 1: the second ':' is the 18th character.
  EXPECT_THAT(ErrorOf("device:sim budget:1GiB"), HasSubstr("at character 18:"));
}

// ---------------------------------------------------------------------------------------------
// Unknown keys and where keys belong.

TEST(ConfigParserTest, UnknownKeySuggestsTheClosestAndListsValidKeys) {
  const std::vector<std::pair<std::string, std::string>> typos = {
      {"max_split_sise_mb:512", "max_split_size_mb"},
      {"max_split_size:512", "max_split_size_mb"},
      {"devcie:sim", "device"},
      {"Device:sim", "device"},
      {"budgte:1GiB", "budget"},
      {"garbage_collection_treshold:0.5", "garbage_collection_threshold"},
      {"expandable_segment:True", "expandable_segments"},
  };
  for (const auto& [conf, suggestion] : typos) {
    const std::string key = conf.substr(0, conf.find(':'));
    EXPECT_THAT(ErrorOf(conf),
                AllOf(HasSubstr("VRAMCACHE_CONF: unknown key \"" + key + "\""),
                      HasSubstr("(value \"" + conf.substr(conf.find(':') + 1) + "\")"),
                      HasSubstr("did you mean \"" + suggestion + "\"?"),
                      HasSubstr("valid keys: vramcache's device, sim_capacity"),
                      HasSubstr("PyTorch's large_segment_size_mb, max_split_size_mb")))
        << conf;
  }
  EXPECT_THAT(ErrorOf("frobnicate:1"),
              AllOf(HasSubstr("unknown key \"frobnicate\""), Not(HasSubstr("did you mean")),
                    HasSubstr("per_process_memory_fraction")));
  // In PyTorch's variable the list holds PyTorch's keys only, as do the suggestions.
  EXPECT_THAT(ErrorOf("", "max_split_sise_mb:512"),
              AllOf(HasSubstr("PYTORCH_ALLOC_CONF: unknown key \"max_split_sise_mb\""),
                    HasSubstr("did you mean \"max_split_size_mb\"?"),
                    HasSubstr("valid keys (PyTorch 2.11's): large_segment_size_mb"),
                    Not(HasSubstr("sim_capacity"))));
  EXPECT_THAT(ErrorOf("", "devcie:cuda"), Not(HasSubstr("did you mean \"device\"")));
}

TEST(ConfigParserTest, VramcacheKeysAreRefusedInPytorchVariable) {
  for (const char* conf : {"budget:4GiB", "device:sim", "record_history:True"}) {
    const std::string key = std::string(conf).substr(0, std::string(conf).find(':'));
    EXPECT_THAT(ErrorOf("", conf),
                AllOf(HasSubstr("PYTORCH_ALLOC_CONF: key \"" + key + "\""),
                      HasSubstr("vramcache's own, not PyTorch's: set it in VRAMCACHE_CONF")))
        << conf;
  }
  // The name given to the PyTorch string is the one errors use.
  absl::StatusOr<AllocatorConfig> config =
      ParseConfig("", "budget:4GiB", kPytorchCudaAllocConfVariable);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("PYTORCH_CUDA_ALLOC_CONF: key \"budget\""));
}

// ---------------------------------------------------------------------------------------------
// Precedence.

TEST(ConfigParserTest, VramcacheConfWinsOverPytorchVariable) {
  AllocatorConfig config =
      Parse("max_split_size_mb:512,garbage_collection_threshold:0.9",
            "max_split_size_mb:256,garbage_collection_threshold:0.6,expandable_segments:True");
  EXPECT_EQ(config.max_split_size, 512 * kMiB);
  EXPECT_EQ(config.garbage_collection_threshold, 0.9);
  EXPECT_TRUE(config.expandable_segments);  // set only by PyTorch's variable: kept

  config = Parse("budget:0.4", "per_process_memory_fraction:0.9");
  EXPECT_EQ(config.per_process_memory_fraction, 0.4);
  // Within one variable the later of two entries wins.
  EXPECT_EQ(Parse("", "max_split_size_mb:100,max_split_size_mb:200").max_split_size, 200 * kMiB);
}

TEST(ConfigParserTest, ParseConfigOntoKeepsTheBaseAndLeavesItUntouchedOnError) {
  AllocatorConfig base;
  base.check_invariants = false;
  base.sim_capacity = 3 * kGiB;
  absl::StatusOr<AllocatorConfig> config = ParseConfigOnto("device:sim,record_history:on", base);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_FALSE(config->check_invariants);
  EXPECT_EQ(config->sim_capacity, 3 * kGiB);
  EXPECT_EQ(config->device, DeviceKind::kSim);
  EXPECT_TRUE(config->record_history);

  config = ParseConfigOnto("record_history:on,bogus:1", base, "--conf");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("--conf: unknown key \"bogus\""));
  EXPECT_FALSE(base.record_history);
}

// PyTorch's switch for compute-sanitizer runs turns caching off; VRAMCACHE_CONF may turn it back
// on; a value other than 0 or 1 is an error, not ignored.
TEST_F(ConfigEnvironmentTest, NoCudaMemoryCachingTurnsCachingOff) {
  {
    ScopedEnv no_caching("PYTORCH_NO_CUDA_MEMORY_CACHING", "1");
    absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_FALSE(config->caching);
    EXPECT_THAT(DescribeConfig(*config), HasSubstr("caching:false"));
    ScopedEnv vramcache("VRAMCACHE_CONF", "caching:on");
    config = ConfigFromEnvironment();
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_TRUE(config->caching);
  }
  {
    ScopedEnv no_caching("PYTORCH_NO_CUDA_MEMORY_CACHING", "0");
    absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_TRUE(config->caching);
    EXPECT_THAT(DescribeConfig(*config), Not(HasSubstr("caching")));
  }
  {
    ScopedEnv no_caching("PYTORCH_NO_CUDA_MEMORY_CACHING", "yes");
    absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
    ASSERT_FALSE(config.ok());
    EXPECT_THAT(config.status().message(),
                HasSubstr("PYTORCH_NO_CUDA_MEMORY_CACHING=\"yes\": expected 1"));
  }
}

TEST(ConfigParserTest, CachingOffCannotCombineWithVirtualMemoryOnlyModes) {
  for (const char* conf : {"caching:off,vmm:on", "caching:off,unmap_on_free:on"}) {
    absl::StatusOr<AllocatorConfig> config = ParseConfig(conf, "");
    ASSERT_TRUE(config.ok()) << config.status();
    absl::Status implemented = CheckImplemented(*config);
    EXPECT_FALSE(implemented.ok()) << conf;
    EXPECT_THAT(implemented.message(), HasSubstr("caching:off gives every allocation")) << conf;
  }
  absl::StatusOr<AllocatorConfig> config = ParseConfig("caching:off", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(CheckImplemented(*config).ok());
}

TEST_F(ConfigEnvironmentTest, NoVariablesGiveDefaults) {
  absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
  ASSERT_TRUE(config.ok()) << config.status();
  ExpectSameSettings(*config, AllocatorConfig{});
  EXPECT_EQ(PytorchConfVariableInEnvironment(), "");
}

TEST_F(ConfigEnvironmentTest, ReadsEitherPytorchVariable) {
  {
    ScopedEnv pytorch("PYTORCH_ALLOC_CONF", "max_split_size_mb:128");
    absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->max_split_size, 128 * kMiB);
    EXPECT_EQ(PytorchConfVariableInEnvironment(), kPytorchAllocConfVariable);
  }
  {
    ScopedEnv pytorch_cuda("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:64");
    absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->max_split_size, 64 * kMiB);
    EXPECT_EQ(PytorchConfVariableInEnvironment(), kPytorchCudaAllocConfVariable);
  }
}

// PyTorch 2.11 looks for PYTORCH_CUDA_ALLOC_CONF first and reads only the first one it finds
// (CUDAAllocatorConfig::instance, AcceleratorAllocatorConfig::instance): the other is ignored,
// even when invalid.
TEST_F(ConfigEnvironmentTest, PytorchCudaAllocConfWinsWhenBothAreSet) {
  ScopedEnv pytorch("PYTORCH_ALLOC_CONF", "max_split_size_mb:128,no_such_key:1");
  ScopedEnv pytorch_cuda("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:64");
  absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->max_split_size, 64 * kMiB);
  {
    // Set but empty still counts as set.
    ScopedEnv empty_cuda("PYTORCH_CUDA_ALLOC_CONF", "");
    config = ConfigFromEnvironment();
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->max_split_size, AllocatorConfig{}.max_split_size);
  }
}

TEST_F(ConfigEnvironmentTest, ErrorsNameTheVariableRead) {
  {
    ScopedEnv pytorch("PYTORCH_ALLOC_CONF", "max_split_size_mb:5");
    absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
    ASSERT_FALSE(config.ok());
    EXPECT_THAT(config.status().message(), HasSubstr("PYTORCH_ALLOC_CONF: bad value \"5\""));
  }
  {
    ScopedEnv pytorch_cuda("PYTORCH_CUDA_ALLOC_CONF", "device:sim");
    absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
    ASSERT_FALSE(config.ok());
    EXPECT_THAT(config.status().message(), HasSubstr("PYTORCH_CUDA_ALLOC_CONF: key \"device\""));
  }
  {
    ScopedEnv vramcache("VRAMCACHE_CONF", "budget:lots");
    absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
    ASSERT_FALSE(config.ok());
    EXPECT_THAT(config.status().message(), HasSubstr("VRAMCACHE_CONF: bad value \"lots\""));
  }
}

TEST_F(ConfigEnvironmentTest, VramcacheConfThenConfigureStringWin) {
  ScopedEnv pytorch("PYTORCH_ALLOC_CONF", "max_split_size_mb:128,garbage_collection_threshold:0.5");
  ScopedEnv vramcache("VRAMCACHE_CONF", "max_split_size_mb:256,device:sim,budget:2GiB");
  absl::StatusOr<AllocatorConfig> config = ConfigFromEnvironment();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->max_split_size, 256 * kMiB);
  EXPECT_EQ(config->garbage_collection_threshold, 0.5);
  EXPECT_EQ(config->device, DeviceKind::kSim);
  EXPECT_EQ(config->budget_bytes, 2 * kGiB);

  config = ConfigFromEnvironmentWith("budget:1GiB,max_split_size_mb:512");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->budget_bytes, kGiB);
  EXPECT_EQ(config->max_split_size, 512 * kMiB);
  EXPECT_EQ(config->device, DeviceKind::kSim);  // from VRAMCACHE_CONF, not overridden

  config = ConfigFromEnvironmentWith("budget:1GiB,devcie:cuda");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              AllOf(HasSubstr("vramcache_configure(conf): unknown key \"devcie\""),
                    HasSubstr("did you mean \"device\"?")));
}

// ---------------------------------------------------------------------------------------------
// DescribeConfig.

void ExpectRoundTrip(const AllocatorConfig& config) {
  const std::string line = DescribeConfig(config);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  absl::StatusOr<AllocatorConfig> parsed = ParseConfig(line, "");
  ASSERT_TRUE(parsed.ok()) << line << ": " << parsed.status();
  SCOPED_TRACE(line);
  ExpectSameSettings(*parsed, config);
}

TEST(DescribeConfigTest, DefaultsInTheSameSyntax) {
  const std::string line = DescribeConfig(AllocatorConfig{});
  EXPECT_THAT(line, HasSubstr("device:auto,sim_capacity:80GiB,sim_granularity:2MiB,"
                              "sim_backing:accounting,sim_devices:1,budget:none,soft_budget:none,"
                              "vmm:auto,"
                              "cross_stream:wait,poison_on_free:false,canaries:false,"
                              "unmap_on_free:false,zero_on_alloc:false,record_history:false,"
                              "history_capacity:100000,check_invariants:"));
  EXPECT_THAT(line, Not(HasSubstr("_mb")));  // PyTorch's keys only when not their defaults
  ExpectRoundTrip(AllocatorConfig{});
}

TEST(DescribeConfigTest, RoundTripsParsedConfigs) {
  const std::vector<std::pair<std::string, std::string>> confs = {
      {"device:sim,sim_capacity:24GiB,sim_granularity:64KiB,sim_backing:memory,budget:20GiB,"
       "soft_budget:0.75,vmm:on,cross_stream:query,poison_on_free:on,canaries:on,"
       "unmap_on_free:on,zero_on_alloc:on,record_history:on,history_capacity:7,"
       "check_invariants:off",
       ""},
      {"device:cuda,sim_capacity:12346MiB,budget:0.1,soft_budget:1000000001,vmm:off,"
       "cross_stream:none",
       ""},
      {"budget:1.0,soft_budget:1e-05", ""},
      {"budget:3GiB", "per_process_memory_fraction:0.3"},
      {"", "per_process_memory_fraction:0"},
      {"",
       "max_split_size_mb:512,max_non_split_rounding_mb:64,garbage_collection_threshold:0.7,"
       "expandable_segments:True,release_lock_on_cudamalloc:True,"
       "graph_capture_record_stream_reuse:True,backend:cudaMallocAsync"},
      {"", "large_segment_size_mb:32"},
      {"", "roundup_power2_divisions:4"},
      {"", "roundup_power2_divisions:[256:1,512:2,1024:4,>:8]"},
      {"", "roundup_power2_divisions:[64:8,1024:2]"},
      {"", "roundup_power2_divisions:[>:4]"},
      {"", "roundup_power2_divisions:[1:2,2:0,>:2]"},
      {"", "roundup_power2_divisions:[1048576:16]"},
      {"", "max_split_size_mb:18446744073709551615"},
  };
  for (const auto& [vramcache_conf, pytorch_conf] : confs) {
    SCOPED_TRACE(vramcache_conf + " | " + pytorch_conf);
    ExpectRoundTrip(Parse(vramcache_conf, pytorch_conf));
  }
  EXPECT_THAT(DescribeConfig(Parse("", "roundup_power2_divisions:[256:1,512:2,1024:4,>:8]")),
              HasSubstr("roundup_power2_divisions:[256:1,512:2,1024:4,>:8]"));
  EXPECT_THAT(DescribeConfig(Parse("budget:0.5")), HasSubstr("budget:0.5,"));
  EXPECT_THAT(DescribeConfig(Parse("budget:1.0")), HasSubstr("budget:1.0,"));
  EXPECT_THAT(DescribeConfig(Parse("sim_capacity:1.5GiB")), HasSubstr("sim_capacity:1536MiB,"));
}

TEST(DescribeConfigTest, RoundTripsRandomVramcacheSettings) {
  std::mt19937_64 random(20240611);
  const auto pick = [&](int n) { return static_cast<int>(random() % n); };
  for (int round = 0; round < 300; ++round) {
    AllocatorConfig config;
    config.device = static_cast<DeviceKind>(pick(3));
    config.sim_granularity = std::size_t{4096} << pick(20);
    // Whole granules: anything else is refused (SimCapacityMustBeAWholeNumberOfGranules).
    config.sim_capacity =
        config.sim_granularity * (1 + random() % (std::size_t{1} << (1 + pick(30))));
    config.sim_accounting_only = pick(2) == 0;
    if (pick(2) == 0) config.budget_bytes = 1 + random() % (std::size_t{1} << 50);
    if (pick(2) == 0) config.per_process_memory_fraction = (1 + pick(1000)) / 1000.0;
    if (pick(3) == 0) {
      config.soft_budget_bytes = 1 + random() % (std::size_t{1} << 50);
    } else if (pick(2) == 0) {
      config.soft_budget_fraction = (1 + pick(999983)) / 999983.0;
    }
    config.vmm = static_cast<VmmMode>(pick(3));
    config.cross_stream = static_cast<CrossStreamPolicy>(pick(3));
    config.poison_on_free = pick(2) == 0;
    config.canaries = pick(2) == 0;
    config.unmap_on_free = pick(2) == 0;
    config.zero_on_alloc = pick(2) == 0;
    config.record_history = pick(2) == 0;
    config.history_capacity = 1 + random() % 1000000;
    config.check_invariants = pick(2) == 0;
    SCOPED_TRACE(round);
    ExpectRoundTrip(config);
  }
}

// ---------------------------------------------------------------------------------------------
// docs/tuning.md stays in step with the parser.

std::string ReadTuningDoc() {
  std::ifstream file(std::string(VRAMCACHE_SOURCE_DIR) + "/docs/tuning.md");
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

TEST(ConfigParserTest, ReuseCacheTakesASizeAndZeroTurnsItOff) {
  absl::StatusOr<AllocatorConfig> config = ParseConfig("reuse_cache:64MiB", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->reuse_cache_bytes, 64 * kMiB);
  config = ParseConfig("reuse_cache:0", "");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->reuse_cache_bytes, 0u);
  absl::StatusOr<AllocatorConfig> bad = ParseConfig("reuse_cache:lots", "");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("reuse_cache"));
}

TEST(ConfigParserTest, SimDevicesIsBounded) {
  EXPECT_EQ(Parse("").sim_devices, 1);
  EXPECT_EQ(Parse("sim_devices:4").sim_devices, 4);
  EXPECT_EQ(Parse("sim_devices:16").sim_devices, 16);
  for (const char* bad : {"sim_devices:0", "sim_devices:17", "sim_devices:1.5", "sim_devices:x"}) {
    absl::StatusOr<AllocatorConfig> config = ParseConfig(bad, "");
    ASSERT_FALSE(config.ok()) << bad;
    EXPECT_THAT(std::string(config.status().message()),
                HasSubstr("for key \"sim_devices\": not a whole number from 1 to 16"));
  }
}

// Simulated sizes that would leave memory unusable, or make every allocation fail, are refused
// with the numbers and what would work.
TEST(ConfigParserTest, SimCapacityMustBeAWholeNumberOfGranules) {
  for (const char* conf :
       {"sim_capacity:1", "sim_capacity:4KiB", "sim_capacity:1MiB", "sim_granularity:1TiB"}) {
    absl::StatusOr<AllocatorConfig> config = ParseConfig(conf, "");
    ASSERT_FALSE(config.ok()) << conf;
    EXPECT_THAT(std::string(config.status().message()),
                HasSubstr("is smaller than sim_granularity"))
        << conf;
  }
  absl::StatusOr<AllocatorConfig> odd = ParseConfig("sim_capacity:3MiB", "");
  ASSERT_FALSE(odd.ok());
  EXPECT_THAT(std::string(odd.status().message()),
              HasSubstr("sim_capacity 3MiB is not a multiple of sim_granularity 2MiB: 1MiB of it "
                        "could never be used; use 2MiB or 4MiB"));
  EXPECT_EQ(Parse("sim_capacity:3MiB,sim_granularity:1MiB").sim_capacity, 3 * kMiB);
  EXPECT_EQ(Parse("sim_capacity:2MiB").sim_capacity, 2 * kMiB);
}

// Without a suggestion the list of valid keys is still set off by "; ".
TEST(ConfigParserTest, UnknownKeyMessageReadsWell) {
  absl::StatusOr<AllocatorConfig> far = ParseConfig("zzzzzzzzzzzz:1", "");
  ASSERT_FALSE(far.ok());
  EXPECT_THAT(std::string(far.status().message()),
              HasSubstr("unknown key \"zzzzzzzzzzzz\" (value \"1\"); valid keys: "));
  absl::StatusOr<AllocatorConfig> near = ParseConfig("max_split_sise_mb:512", "");
  ASSERT_FALSE(near.ok());
  EXPECT_THAT(std::string(near.status().message()),
              HasSubstr("; did you mean \"max_split_size_mb\"? valid keys: "));
}

TEST(TuningDocTest, EveryKeyHasARow) {
  const std::string doc = ReadTuningDoc();
  ASSERT_FALSE(doc.empty());
  const std::vector<std::string_view> keys = ConfigKeyNames();
  EXPECT_EQ(keys.size(), 35u);
  for (std::string_view key : keys) {
    EXPECT_THAT(doc, HasSubstr(absl::StrFormat("| `%s` |", key))) << key;
  }
  const std::vector<std::string_view> pytorch_keys = ConfigKeyNames(/*pytorch_only=*/true);
  EXPECT_EQ(pytorch_keys.size(), 16u);
  EXPECT_EQ(pytorch_keys.front(), "large_segment_size_mb");
}

TEST(TuningDocTest, ExamplesParse) {
  const std::string doc = ReadTuningDoc();
  int examples = 0;
  for (const std::string variable : {"VRAMCACHE_CONF=\"", "PYTORCH_ALLOC_CONF=\""}) {
    for (std::size_t at = doc.find(variable); at != std::string::npos;
         at = doc.find(variable, at + 1)) {
      const std::size_t start = at + variable.size();
      const std::string conf = doc.substr(start, doc.find('"', start) - start);
      SCOPED_TRACE(variable + conf);
      EXPECT_TRUE(variable[0] == 'P' ? ParseConfig("", conf).ok() : ParseConfig(conf, "").ok());
      ++examples;
    }
  }
  EXPECT_GE(examples, 5);
  // DescribeConfig's sample output.
  std::istringstream lines(doc);
  int described = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("device:", 0) != 0) continue;
    SCOPED_TRACE(line);
    EXPECT_TRUE(ParseConfig(line, "").ok());
    ++described;
  }
  EXPECT_EQ(described, 1);
}

}  // namespace
}  // namespace vramcache
