// The one table of configuration keys: for each, which variables accept it, what values it
// allows, how its value is read into the configuration (config_key_setters.h) and how it is
// printed back. Parsing, the error messages ("valid keys: ..."), ConfigKeyNames and
// DescribeConfig all come from it; docs/tuning.md follows its order.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "allocator/api/config_key_setters.h"
#include "allocator/api/config_syntax.h"
#include "allocator/core/config.h"

namespace vramcache {

enum class ConfigKeyHome {
  kVramcache,  // VRAMCACHE_CONF only
  kPytorch,    // PyTorch's keys: both variables
};

struct ConfigKey {
  std::string_view name;
  ConfigKeyHome home;
  bool is_bool;  // the allowed spellings then depend on the variable
  bool takes_list;
  std::string allowed;  // for messages: "allowed: ..."
  absl::Status (*set)(const ConfigEntry& entry, ConfigParseState& state);
  // The value DescribeConfig prints for the key, or nullopt to leave it out (a PyTorch key at
  // PyTorch's default). Null for keys never printed: those only validated, and those printed
  // under another name (release_lock_on_hipmalloc is release_lock_on_cudamalloc).
  std::optional<std::string> (*describe)(const AllocatorConfig& config);
  // Where DescribeConfig prints the key, from 1 (0 when never printed). Its order differs from
  // the table's: the table's order is the one of the "valid keys" lists.
  int describe_position;
};

// Every key, vramcache's first, then PyTorch 2.11's (AcceleratorAllocatorConfig's, then
// CUDAAllocatorConfig's).
std::span<const ConfigKey> ConfigKeyTable();

// nullptr for a name not in the table.
const ConfigKey* FindConfigKey(std::string_view name);

// Reads `entry` into `state` by its key. InvalidArgument naming the variable, key and value:
// for an unknown key (with the closest valid one, and the valid keys), a key of vramcache's in
// PyTorch's variable, a list for a key that takes one value, or a bad value (with what is
// allowed).
absl::Status ApplyConfigEntry(const ConfigEntry& entry, ConfigParseState& state);

// "key:value,key:value" for every key with something to print, in describe_position order.
std::string DescribeConfigKeys(const AllocatorConfig& config);

}  // namespace vramcache
