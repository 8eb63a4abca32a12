// Turns the text of VRAMCACHE_CONF and of PyTorch's PYTORCH_CUDA_ALLOC_CONF / PYTORCH_ALLOC_CONF
// into an AllocatorConfig, and a config back into text. The only code that reads those variables;
// the core gets the result as plain data. Every key, its values and its default: docs/tuning.md.
//
// Syntax (PyTorch's): `key:value,key:value`, a list value as `key:[a:b,c:d]`, whitespace around
// tokens ignored, one trailing comma (at the end or before `]`) tolerated, anything else malformed
// an error. A key given twice: the later one wins.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "allocator/core/config.h"

namespace vramcache {

inline constexpr std::string_view kVramcacheConfVariable = "VRAMCACHE_CONF";
inline constexpr std::string_view kNoCachingVariable = "PYTORCH_NO_CUDA_MEMORY_CACHING";
inline constexpr std::string_view kPytorchAllocConfVariable = "PYTORCH_ALLOC_CONF";
inline constexpr std::string_view kPytorchCudaAllocConfVariable = "PYTORCH_CUDA_ALLOC_CONF";

// The defaults, then `pytorch_conf` (only the keys PyTorch 2.11 accepts, validated as PyTorch
// validates them), then `vramcache_conf` (vramcache's keys and PyTorch's): where both set the same
// key, `vramcache_conf` wins. `pytorch_variable` is the name errors give the PyTorch string. Empty
// strings keep the defaults. Errors are InvalidArgument naming the variable, key, value and what
// is allowed.
absl::StatusOr<AllocatorConfig> ParseConfig(
    std::string_view vramcache_conf, std::string_view pytorch_conf,
    std::string_view pytorch_variable = kPytorchAllocConfVariable);

// `conf`, in VRAMCACHE_CONF's syntax, applied on top of `base` (e.g. a command-line flag that
// must not depend on the environment). `source` is the name errors give `conf`. With
// `pytorch_variable`, `conf` is read as PyTorch's variable is: PyTorch's keys and spellings only.
absl::StatusOr<AllocatorConfig> ParseConfigOnto(std::string_view conf, const AllocatorConfig& base,
                                                std::string_view source = kVramcacheConfVariable,
                                                bool pytorch_variable = false);

// The variable PyTorch 2.11 takes its allocator settings from: PYTORCH_CUDA_ALLOC_CONF when it is
// set (even to ""), else PYTORCH_ALLOC_CONF when set, else "" (PyTorch reads one, never both).
std::string_view PytorchConfVariableInEnvironment();

// The process's configuration: ParseConfig(getenv(VRAMCACHE_CONF), the variable above).
absl::StatusOr<AllocatorConfig> ConfigFromEnvironment();

// ConfigFromEnvironment(), then `conf` (VRAMCACHE_CONF's syntax) on top, so its keys override
// the environment's: vramcache_configure() and vramcache.install(conf). When the environment's
// variables alone do not parse and `conf` has keys, `conf` replaces them (on the defaults), so an
// explicit configuration recovers a process started with a bad environment; the variables'
// error then goes to `*set_aside` (when given), for a notice. An empty `conf` is the
// environment's configuration, its error included.
absl::StatusOr<AllocatorConfig> ConfigFromEnvironmentWith(std::string_view conf,
                                                          std::string* set_aside = nullptr);

// Every key VRAMCACHE_CONF accepts, vramcache's own first; with `pytorch_only`, the keys PyTorch's
// variable accepts (PyTorch 2.11's).
std::vector<std::string_view> ConfigKeyNames(bool pytorch_only = false);

// A byte size as users type it ("3221225472", "3GiB", "1.5GiB", "512 MiB", "64k"): binary units
// whatever the spelling, exact (no fraction of a byte), at most 2^64 - 1. InvalidArgument naming
// the text otherwise. The same reading as every size key of the configuration.
absl::StatusOr<std::size_t> ParseByteSize(std::string_view text);

// OK when the settings of `config` can be honoured together; otherwise an error naming the
// combination that cannot (unmap_on_free with vmm:off), so that no setting is silently ignored.
// Device-dependent checks (vmm:on on a device without VMM support) happen when the devices are
// opened (registry.cc).
absl::Status CheckImplemented(const AllocatorConfig& config);

// One line in VRAMCACHE_CONF's syntax: every vramcache key, then the PyTorch keys whose values
// differ from PyTorch's defaults. ParseConfig(DescribeConfig(c), "") gives back c's settings
// (for PyTorch's keys: the values their *_mb / interval forms can express, as parsing makes them).
std::string DescribeConfig(const AllocatorConfig& config);

}  // namespace vramcache
