// The benchmark flags that change vramcache's settings (vramcache_bench_settings.h).
#include "bench/micro/vramcache_bench_settings.h"

#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace vramcache::bench {
namespace {

constexpr absl::string_view kReuseCacheFlag = "--vramcache_reuse_cache=";
constexpr absl::string_view kCrossStreamFlag = "--vramcache_cross_stream=";

VramcacheBenchSettings& MutableSettings() {
  static VramcacheBenchSettings settings;
  return settings;
}

}  // namespace

bool ParseVramcacheBenchFlag(absl::string_view arg, absl::Status* status) {
  *status = absl::OkStatus();
  if (absl::StartsWith(arg, kReuseCacheFlag)) {
    const absl::string_view value = arg.substr(kReuseCacheFlag.size());
    std::uint64_t bytes = 0;
    if (!absl::SimpleAtoi(value, &bytes)) {
      *status = absl::InvalidArgumentError(absl::StrCat("--vramcache_reuse_cache: \"", value,
                                                        "\" is not a byte count (e.g. 8388608)"));
      return true;
    }
    MutableSettings().reuse_cache_bytes = static_cast<std::size_t>(bytes);
    return true;
  }
  if (absl::StartsWith(arg, kCrossStreamFlag)) {
    const absl::string_view value = arg.substr(kCrossStreamFlag.size());
    if (value == "none") {
      MutableSettings().cross_stream = CrossStreamPolicy::kNone;
    } else if (value == "query") {
      MutableSettings().cross_stream = CrossStreamPolicy::kQuery;
    } else if (value == "wait") {
      MutableSettings().cross_stream = CrossStreamPolicy::kWait;
    } else {
      *status = absl::InvalidArgumentError(absl::StrCat("--vramcache_cross_stream: \"", value,
                                                        "\" is not one of none, query, wait"));
    }
    return true;
  }
  return false;
}

const VramcacheBenchSettings& GetVramcacheBenchSettings() { return MutableSettings(); }

std::string DescribeVramcacheBenchSettings() {
  const VramcacheBenchSettings& settings = GetVramcacheBenchSettings();
  std::string out;
  if (settings.reuse_cache_bytes.has_value()) {
    absl::StrAppend(&out, "reuse_cache=", *settings.reuse_cache_bytes);
  }
  if (settings.cross_stream.has_value()) {
    const CrossStreamPolicy policy = *settings.cross_stream;
    absl::StrAppend(&out, out.empty() ? "" : " ", "cross_stream=",
                    policy == CrossStreamPolicy::kNone    ? "none"
                    : policy == CrossStreamPolicy::kQuery ? "query"
                                                          : "wait");
  }
  return out;
}

void ApplyVramcacheBenchSettings(AllocatorConfig& config) {
  const VramcacheBenchSettings& settings = GetVramcacheBenchSettings();
  if (settings.reuse_cache_bytes.has_value()) config.reuse_cache_bytes = settings.reuse_cache_bytes;
  if (settings.cross_stream.has_value()) config.cross_stream = *settings.cross_stream;
}

}  // namespace vramcache::bench
