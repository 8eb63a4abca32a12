// vramcache's configuration in the benchmarks (vramcache_bench_settings.h).
#include "bench/micro/vramcache_bench_settings.h"

#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "allocator/api/config_parser.h"

namespace vramcache::bench {
namespace {

constexpr absl::string_view kConfFlag = "--vramcache_conf=";

AllocatorConfig DefaultBenchConfig() {
  AllocatorConfig config;
  config.device = DeviceKind::kSim;
  // Debug builds turn the O(blocks) structural check on after every call; a benchmark measures
  // the allocator, and the tests check its structure.
  config.check_invariants = false;
  return config;
}

struct BenchSettings {
  AllocatorConfig config = DefaultBenchConfig();
  std::string conf;
};

BenchSettings& Settings() {
  static BenchSettings settings;
  return settings;
}

}  // namespace

bool ParseVramcacheBenchFlag(absl::string_view arg, absl::Status* status) {
  *status = absl::OkStatus();
  if (!absl::StartsWith(arg, kConfFlag)) return false;
  const absl::string_view conf = arg.substr(kConfFlag.size());
  const AllocatorConfig base = DefaultBenchConfig();
  absl::StatusOr<AllocatorConfig> parsed =
      ParseConfigOnto(std::string_view(conf.data(), conf.size()), base, "--vramcache_conf");
  if (!parsed.ok()) {
    *status = parsed.status();
    return true;
  }
  if (parsed->device != base.device || parsed->sim_capacity != base.sim_capacity ||
      parsed->sim_granularity != base.sim_granularity ||
      parsed->sim_accounting_only != base.sim_accounting_only ||
      parsed->sim_devices != base.sim_devices) {
    *status = absl::InvalidArgumentError(absl::StrCat(
        "--vramcache_conf: \"", conf,
        "\": the device and sim_* keys do not apply to a benchmark, which runs every allocator "
        "on a simulated device of its own; leave them out"));
    return true;
  }
  Settings().config = *std::move(parsed);
  Settings().conf = std::string(conf);
  return true;
}

AllocatorConfig VramcacheBenchConfig() { return Settings().config; }

const std::string& VramcacheBenchConf() { return Settings().conf; }

}  // namespace vramcache::bench
