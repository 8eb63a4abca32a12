// Parses VRAMCACHE_CONF and PyTorch's allocator variables into an AllocatorConfig and describes a
// config back in the same syntax (see config_parser.h): the variables applied as layers, one on
// top of the other, and the checks that need every layer in. The pieces it drives: the syntax
// (config_syntax.h), the value readers and writers (config_values.h, config_divisions.h), the
// key table (config_key_table.h, with the setters in config_key_setters.h) and the suggestions
// for unknown keys (config_suggestions.h).
#include "allocator/api/config_parser.h"

#include <array>
#include <cstdlib>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/api/config_key_setters.h"
#include "allocator/api/config_key_table.h"
#include "allocator/api/config_syntax.h"
#include "allocator/api/config_values.h"

namespace vramcache {
namespace {

using config_values::FormatSize;

// The name errors give a string passed to vramcache_configure() / vramcache.install(conf).
constexpr std::string_view kConfigureSource = "vramcache_configure(conf)";

// One variable, on top of what `state` holds. Its large_segment_size_mb goes first.
absl::Status ApplyText(std::string_view source, std::string_view text, bool pytorch_variable,
                       ConfigParseState& state) {
  absl::StatusOr<std::vector<ConfigEntry>> entries = SplitConfigText(source, text);
  if (!entries.ok()) return entries.status();
  state.source = source;
  state.pytorch_variable = pytorch_variable;
  for (const ConfigEntry& entry : *entries) {
    if (entry.key != "large_segment_size_mb") continue;
    if (absl::Status s = ApplyConfigEntry(entry, state); !s.ok()) return s;
  }
  for (const ConfigEntry& entry : *entries) {
    if (entry.key == "large_segment_size_mb") continue;
    if (absl::Status s = ApplyConfigEntry(entry, state); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Across variables a split key can end below a large_segment_size_mb set elsewhere.
absl::Status CheckSplitFloors(const ConfigParseState& state) {
  const std::size_t floor_mb = state.large_segment_size / kMiB;
  const auto check = [&](std::string_view key, std::size_t bytes,
                         std::string_view key_source) -> absl::Status {
    if (key_source.empty() || bytes >= state.large_segment_size) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: bad value \"%d\" for key \"%s\": below large_segment_size_mb %d set in %s; allowed: "
        "a whole number of MiB >= large_segment_size_mb",
        key_source, bytes / kMiB, key, floor_mb, state.large_segment_source));
  };
  if (absl::Status s =
          check("max_split_size_mb", state.config.max_split_size, state.max_split_source);
      !s.ok()) {
    return s;
  }
  return check("max_non_split_rounding_mb", state.config.max_non_split_rounding,
               state.max_non_split_source);
}

struct Layer {
  std::string_view source;
  std::string_view text;
  bool pytorch_variable;
};

// Simulated sizes no allocation could use are refused with what would work: a capacity below
// one granule fails every allocation, and a capacity's remainder of a granule is never used.
// Checked once every layer is in, as the two keys may come from different variables.
absl::Status CheckSimSizes(const AllocatorConfig& config) {
  const std::size_t capacity = config.sim_capacity;
  const std::size_t granularity = config.sim_granularity;
  if (capacity < granularity) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: sim_capacity %s is smaller than sim_granularity %s: every allocation would "
        "fail; use a capacity of at least %s, or a smaller granularity",
        FormatSize(capacity), FormatSize(granularity), FormatSize(granularity)));
  }
  const std::size_t rest = capacity % granularity;
  if (rest == 0) return absl::OkStatus();
  const std::size_t below = capacity - rest;
  const std::string above = capacity - rest <= std::numeric_limits<std::size_t>::max() - granularity
                                ? absl::StrCat(" or ", FormatSize(below + granularity))
                                : "";
  return absl::InvalidArgumentError(absl::StrFormat(
      "vramcache: sim_capacity %s is not a multiple of sim_granularity %s: %s of it could never "
      "be used; use %s%s",
      FormatSize(capacity), FormatSize(granularity), FormatSize(rest), FormatSize(below), above));
}

absl::StatusOr<AllocatorConfig> ApplyLayers(const AllocatorConfig& base,
                                            std::span<const Layer> layers) {
  ConfigParseState state;
  state.config = base;
  state.max_non_split_fixed = base.max_non_split_rounding != kDefaultLargeSegmentSize;
  for (const Layer& layer : layers) {
    if (absl::Status s = ApplyText(layer.source, layer.text, layer.pytorch_variable, state);
        !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = CheckSplitFloors(state); !s.ok()) return s;
  if (absl::Status s = CheckSimSizes(state.config); !s.ok()) return s;
  return state.config;
}

std::string_view GetEnv(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  return value == nullptr ? std::string_view() : std::string_view(value);
}

bool EnvSet(std::string_view name) { return std::getenv(std::string(name).c_str()) != nullptr; }

}  // namespace

absl::StatusOr<AllocatorConfig> ParseConfig(std::string_view vramcache_conf,
                                            std::string_view pytorch_conf,
                                            std::string_view pytorch_variable) {
  const std::array<Layer, 2> layers = {{
      {pytorch_variable, pytorch_conf, true},
      {kVramcacheConfVariable, vramcache_conf, false},
  }};
  return ApplyLayers(AllocatorConfig{}, layers);
}

absl::StatusOr<AllocatorConfig> ParseConfigOnto(std::string_view conf, const AllocatorConfig& base,
                                                std::string_view source, bool pytorch_variable) {
  const std::array<Layer, 1> layers = {{{source, conf, pytorch_variable}}};
  return ApplyLayers(base, layers);
}

std::string_view PytorchConfVariableInEnvironment() {
  // PyTorch 2.11 (CUDAAllocatorConfig::instance and AcceleratorAllocatorConfig::instance) looks
  // for the old name first and parses the first variable it finds.
  if (EnvSet(kPytorchCudaAllocConfVariable)) return kPytorchCudaAllocConfVariable;
  if (EnvSet(kPytorchAllocConfVariable)) return kPytorchAllocConfVariable;
  return {};
}

absl::StatusOr<AllocatorConfig> ConfigFromEnvironment() {
  return ConfigFromEnvironmentWith({}, nullptr);
}

absl::StatusOr<AllocatorConfig> ConfigFromEnvironmentWith(std::string_view conf,
                                                          std::string* set_aside) {
  const std::string_view pytorch_variable = PytorchConfVariableInEnvironment();
  const std::string pytorch_text(
      GetEnv(pytorch_variable.empty() ? kPytorchAllocConfVariable : pytorch_variable));
  const std::string vramcache_text(GetEnv(kVramcacheConfVariable));
  // PyTorch's switch for running under compute-sanitizer: "1" turns caching off (below the
  // two variables, which may turn it back on), "0" or unset changes nothing.
  const std::string_view no_caching = GetEnv(kNoCachingVariable);
  if (!no_caching.empty() && no_caching != "0" && no_caching != "1") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: %s=\"%s\": expected 1 (no caching: every allocation a device allocation, "
        "for compute-sanitizer) or 0",
        kNoCachingVariable, no_caching));
  }
  const std::array<Layer, 4> layers = {{
      {pytorch_variable.empty() ? kPytorchAllocConfVariable : pytorch_variable, pytorch_text, true},
      {kNoCachingVariable, no_caching == "1" ? "caching:off" : "", false},
      {kVramcacheConfVariable, vramcache_text, false},
      {kConfigureSource, conf, false},
  }};
  absl::StatusOr<AllocatorConfig> config = ApplyLayers(AllocatorConfig{}, layers);
  if (config.ok() || TrimConfigSpace(conf).empty()) return config;
  // A bad environment must not outlive an explicit configuration (the process could never
  // recover): when the variables alone fail, `conf` replaces them.
  absl::StatusOr<AllocatorConfig> environment =
      ApplyLayers(AllocatorConfig{}, std::span<const Layer>(layers.data(), 3));
  if (environment.ok()) return config;  // the error is conf's, or conf's with the variables'
  absl::StatusOr<AllocatorConfig> explicit_only =
      ApplyLayers(AllocatorConfig{}, std::span<const Layer>(layers.data() + 3, 1));
  if (explicit_only.ok() && set_aside != nullptr) {
    *set_aside = std::string(environment.status().message());
  }
  return explicit_only;
}

std::vector<std::string_view> ConfigKeyNames(bool pytorch_only) {
  std::vector<std::string_view> names;
  for (const ConfigKey& key : ConfigKeyTable()) {
    if (!pytorch_only || key.home == ConfigKeyHome::kPytorch) names.push_back(key.name);
  }
  return names;
}

absl::StatusOr<std::size_t> ParseByteSize(std::string_view text) {
  absl::StatusOr<std::size_t> bytes = config_values::ReadSize(TrimConfigSpace(text));
  if (!bytes.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("\"%s\" is not a size (%s); e.g. 3221225472, 3GiB, 512MiB", text,
                        bytes.status().message()));
  }
  return bytes;
}

absl::Status CheckImplemented(const AllocatorConfig& config) {
  if (!config.caching && (config.vmm == VmmMode::kOn || config.unmap_on_free)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: caching:off gives every allocation its own device allocation (segment "
        "mode); %s needs the virtual-memory mode: drop one of them",
        config.unmap_on_free ? "unmap_on_free" : "vmm:on"));
  }
  if (config.unmap_on_free && config.vmm == VmmMode::kOff) {
    return absl::InvalidArgumentError(
        "vramcache: unmap_on_free needs the virtual-memory mode (freed ranges are unmapped); "
        "use vmm:auto or vmm:on with it");
  }
  return absl::OkStatus();
}

std::string DescribeConfig(const AllocatorConfig& config) { return DescribeConfigKeys(config); }

}  // namespace vramcache
