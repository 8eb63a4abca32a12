// DeviceCallLog: counts, hashes and keeps the normalized lines of one run's device calls.
#include "tests/support/device_call_log.h"

#include <algorithm>
#include <string_view>

namespace vramcache {
namespace {

bool IsReleasingCall(std::string_view name) {
  return name == "ReleaseChunk" || name == "Unmap" || name == "ReleaseAddress" || name == "Free" ||
         name == "DestroyEvent";
}

}  // namespace

void DeviceCallLog::Add(const std::string& line) {
  const std::string name = line.substr(0, line.find(' '));
  if (!pending_.empty() && name != pending_name_) Finish();
  if (IsReleasingCall(name)) {
    pending_name_ = name;
    pending_.push_back(line);
    return;
  }
  Record(name, line);
}

void DeviceCallLog::Finish() {
  std::sort(pending_.begin(), pending_.end());
  for (const std::string& line : pending_) Record(pending_name_, line);
  pending_.clear();
}

void DeviceCallLog::Record(const std::string& name, const std::string& line) {
  constexpr std::uint64_t kFnvPrime = 1099511628211ull;
  // Each line hashed with its newline, so the hash equals that of the lines written one a line.
  for (const char c : line) {
    hash_ = (hash_ ^ static_cast<unsigned char>(c)) * kFnvPrime;
  }
  hash_ = (hash_ ^ static_cast<unsigned char>('\n')) * kFnvPrime;
  ++calls_;
  ++counts_[name];
  if (keep_lines_ && !not_kept_.contains(name)) lines_.push_back(line);
}

}  // namespace vramcache
