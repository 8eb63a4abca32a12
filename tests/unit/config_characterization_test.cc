// Pins the configuration parser's observable output, byte for byte: DescribeConfig for every key
// given each of a set of values (valid and not) in VRAMCACHE_CONF and in PyTorch's variable, and
// every error message, for those and for malformed syntax, layered variables, byte sizes and
// combinations. Written before the parser was split into syntax, values, key table and
// suggestions, to prove the split changed nothing; kept so later changes to messages are
// deliberate. Regenerate tests/golden/config_messages.txt, only for an intended change, with
//   tests/golden/regenerate.sh config
// (runs this test with VRAMCACHE_GOLDEN_UPDATE=1, which writes the file instead of comparing).
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "allocator/api/config_parser.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

const std::string kMessagesPath =
    std::string(VRAMCACHE_SOURCE_DIR) + "/tests/golden/config_messages.txt";

// Values tried for every key: each is valid for some key and invalid for others.
constexpr std::string_view kValues[] = {"1",
                                        "0",
                                        "True",
                                        "false",
                                        "on",
                                        "none",
                                        "auto",
                                        "sim",
                                        "2MiB",
                                        "0.5",
                                        "1.5GiB",
                                        "4",
                                        "21",
                                        "[1:2,>:4]",
                                        "[]",
                                        "x",
                                        "-1",
                                        "1e-1",
                                        "99999999999999999999",
                                        "3KB",
                                        "native",
                                        "query"};

// Inputs that are not one key's value: syntax, layering, sizes and combinations.
struct Layered {
  std::string_view vramcache_conf;
  std::string_view pytorch_conf;
};
constexpr Layered kLayered[] = {
    {"", ""},
    {",", ""},
    {"device:sim,", ""},
    {"device:sim,,vmm:on", ""},
    {",device:sim", ""},
    {"device", ""},
    {"device:", ""},
    {":sim", ""},
    {"device:sim:vmm", ""},
    {"device sim", ""},
    {"dev ice:sim", ""},
    {"device:[sim", ""},
    {"device:sim]", ""},
    {"device:s[im", ""},
    {"roundup_power2_divisions:[1:2", ""},
    {"roundup_power2_divisions:[1:2,", ""},
    {"roundup_power2_divisions:[1:2,]", ""},
    {"roundup_power2_divisions:[1:2,,3:4]", ""},
    {"roundup_power2_divisions:[1]", ""},
    {"roundup_power2_divisions:[:1]", ""},
    {"roundup_power2_divisions:[1:]", ""},
    {"roundup_power2_divisions:[1:[2]]", ""},
    {"roundup_power2_divisions:[1:2:3]", ""},
    {"roundup_power2_divisions:[256:1,512:2,1024:4,>:8]", ""},
    {"roundup_power2_divisions:[3:2]", ""},
    {"roundup_power2_divisions:[64:3]", ""},
    {"roundup_power2_divisions:[1:0,2:4]", ""},
    {"roundup_power2_divisions:[65536:8]", ""},
    {"roundup_power2_divisions:[>:8]", ""},
    {"roundup_power2_divisions:[1:8,1:0]", ""},
    {"  device : sim , vmm : on  ", ""},
    {"devcie:sim", ""},
    {"DEVICE:sim", ""},
    {"max_split_size:64", ""},
    {"garbage_collection:0.5", ""},
    {"completely_unknown_key:1", ""},
    {"x:1", ""},
    {std::string_view(
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaa:1"),
     ""},
    {"", "device:sim"},
    {"", "expandable_segments:true"},
    {"", "expandable_segments:True"},
    {"", "max_split_size_mb:64,large_segment_size_mb:128"},
    {"max_split_size_mb:64", "large_segment_size_mb:128"},
    {"large_segment_size_mb:128", "max_split_size_mb:64"},
    {"large_segment_size_mb:32", ""},
    {"large_segment_size_mb:32,max_non_split_rounding_mb:20", ""},
    {"max_non_split_rounding_mb:64,large_segment_size_mb:32", ""},
    {"budget:20GiB,per_process_memory_fraction:0.5", ""},
    {"per_process_memory_fraction:0", ""},
    {"budget:0.25", ""},
    {"budget:0.25,budget:none", ""},
    {"soft_budget:0.25,soft_budget:1GiB", ""},
    {"sim_capacity:1MiB,sim_granularity:2MiB", ""},
    {"sim_capacity:3MiB,sim_granularity:2MiB", ""},
    {"sim_capacity:18446744073709551615,sim_granularity:4KiB", ""},
    {"sim_capacity:8GiB", "garbage_collection_threshold:0.7"},
    {"reuse_cache:0", ""},
    {"release_lock_on_hipmalloc:true", ""},
    {"backend:cudaMallocAsync", "backend:native"},
    {"roundup_power2_divisions:4", "roundup_power2_divisions:[256:1,>:2]"},
    {"garbage_collection_threshold:0.1234567890123", ""},
    {"per_process_memory_fraction:0.3333333333333333", ""},
};

constexpr std::string_view kSizes[] = {"3221225472",
                                       "3GiB",
                                       "1.5GiB",
                                       "512 MiB",
                                       "64k",
                                       " 2MiB ",
                                       "0",
                                       "1.5",
                                       "0.5KiB",
                                       "1.25K",
                                       "x",
                                       "3 GB",
                                       "3 xb",
                                       "",
                                       ".",
                                       "1..5G",
                                       "16TiB",
                                       "17179869184GiB",
                                       "0.0000000000000000001K",
                                       "1.0000000000000000000000G",
                                       "18446744073709551615",
                                       "18446744073709551616"};

// check_invariants defaults to true in Debug builds only: where the input leaves it unset, the
// description says "(build default)" instead, so the recorded text fits every build type.
std::string Describe(const AllocatorConfig& config, std::string_view input) {
  std::string line = DescribeConfig(config);
  if (input.find("check_invariants") != std::string_view::npos) return line;
  const std::string token =
      absl::StrCat("check_invariants:", AllocatorConfig{}.check_invariants ? "true" : "false");
  if (const std::size_t at = line.find(token); at != std::string::npos) {
    line.replace(at, token.size(), "check_invariants:(build default)");
  }
  return line;
}

// `input` is every text that was parsed, concatenated.
std::string Outcome(const absl::StatusOr<AllocatorConfig>& config, std::string_view input) {
  if (!config.ok()) return absl::StrCat("  error: ", config.status().ToString(), "\n");
  std::string out = absl::StrCat("  describe: ", Describe(*config, input), "\n");
  if (absl::Status implemented = CheckImplemented(*config); !implemented.ok()) {
    absl::StrAppend(&out, "  not implemented: ", implemented.ToString(), "\n");
  }
  return out;
}

std::string Characterize() {
  std::string out;
  for (const bool pytorch_only : {false, true}) {
    out += pytorch_only ? "pytorch keys:" : "keys:";
    // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict) about `" " + std::string(key)`.
    for (const std::string_view key : ConfigKeyNames(pytorch_only)) {
      out += ' ';
      out += key;
    }
    out += "\n";
  }
  for (const std::string_view key : ConfigKeyNames()) {
    for (const std::string_view value : kValues) {
      const std::string entry = std::string(key) + ":" + std::string(value);
      absl::StrAppend(&out, "VRAMCACHE_CONF=", entry, "\n", Outcome(ParseConfig(entry, ""), entry));
      absl::StrAppend(&out, "PYTORCH_CUDA_ALLOC_CONF=", entry, "\n",
                      Outcome(ParseConfig("", entry, kPytorchCudaAllocConfVariable), entry));
    }
  }
  for (const Layered& layered : kLayered) {
    absl::StrAppend(&out, "VRAMCACHE_CONF=", std::string(layered.vramcache_conf),
                    " PYTORCH_ALLOC_CONF=", std::string(layered.pytorch_conf), "\n",
                    Outcome(ParseConfig(layered.vramcache_conf, layered.pytorch_conf),
                            absl::StrCat(std::string(layered.vramcache_conf),
                                         std::string(layered.pytorch_conf))));
  }
  AllocatorConfig base;
  base.max_non_split_rounding = 64u << 20;
  base.vmm = VmmMode::kOn;
  for (const std::string_view conf :
       {"", "large_segment_size_mb:32", "unmap_on_free:true", "vmm:off,unmap_on_free:true",
        "expandable_segments:True", "bogus:1"}) {
    absl::StrAppend(&out, "onto --conf=", std::string(conf), "\n",
                    Outcome(ParseConfigOnto(conf, base, "--conf"), conf));
  }
  for (const std::string_view size : kSizes) {
    absl::StatusOr<std::size_t> bytes = ParseByteSize(size);
    absl::StrAppend(&out, "size \"", std::string(size),
                    "\": ", bytes.ok() ? absl::StrCat(*bytes) : bytes.status().ToString(), "\n");
  }
  return out;
}

TEST(ConfigCharacterizationTest, OutputMatchesTheRecordedMessages) {
  const std::string now = Characterize();
  const char* update = std::getenv("VRAMCACHE_GOLDEN_UPDATE");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(kMessagesPath, std::ios::binary | std::ios::trunc) << now;
    GTEST_SKIP() << "wrote " << kMessagesPath;
  }
  std::ifstream in(kMessagesPath, std::ios::binary);
  std::ostringstream recorded;
  recorded << in.rdbuf();
  ASSERT_FALSE(recorded.str().empty()) << kMessagesPath << " is missing";
  const std::string recorded_text = recorded.str();
  const std::vector<std::string> want = absl::StrSplit(recorded_text, '\n');
  const std::vector<std::string> got = absl::StrSplit(now, '\n');
  for (std::size_t i = 0; i < want.size() && i < got.size(); ++i) {
    ASSERT_EQ(want[i], got[i]) << "first difference at line " << i + 1 << " of " << kMessagesPath;
  }
  ASSERT_EQ(want.size(), got.size()) << "line counts differ from " << kMessagesPath;
}

}  // namespace
}  // namespace vramcache
