// Builds the shared size stream with splitmix64, a generator whose output is fixed by its
// definition, so every platform and standard library draws the same sizes.
#include "bench/micro/size_mix.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "allocator/trace/trace.h"
#include "bench/micro/trace_library.h"

namespace vramcache::bench {

namespace {

class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
  std::uint64_t Next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::size_t Below(std::size_t bound) { return static_cast<std::size_t>(Next() % bound); }

 private:
  std::uint64_t state_;
};

absl::StatusOr<std::unique_ptr<SizeMix>> BuildSizeMix() {
  std::vector<std::vector<std::size_t>> per_trace;
  for (const std::string& name : ListTraceNames()) {
    absl::StatusOr<const Trace*> trace = LoadTrace(name);
    if (!trace.ok()) return trace.status();
    std::vector<std::size_t> sizes;
    for (const TraceEvent& event : (*trace)->events) {
      // Zero-byte requests never reach a device allocator's bookkeeping in vramcache.
      if (event.kind == TraceEventKind::kAllocate && event.size > 0) sizes.push_back(event.size);
    }
    if (!sizes.empty()) per_trace.push_back(std::move(sizes));
  }
  if (per_trace.empty()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "no allocations in any trace under \"%s\" (set --trace_dir)", TraceDirectory()));
  }
  auto mix = std::make_unique<SizeMix>();
  mix->sizes.reserve(kMixLength);
  mix->slots.reserve(kMixLength);
  SplitMix64 random(/*seed=*/0x76726d63616368);  // "vrmcach"
  for (std::size_t i = 0; i < kMixLength; ++i) {
    const std::vector<std::size_t>& sizes = per_trace[random.Below(per_trace.size())];
    mix->sizes.push_back(sizes[random.Below(sizes.size())]);
    mix->slots.push_back(static_cast<std::uint32_t>(random.Below(kMixWindow)));
  }
  return mix;
}

}  // namespace

absl::StatusOr<const SizeMix*> SharedSizeMix() {
  // Built on first use; a failure is reported to every caller.
  static const absl::StatusOr<std::unique_ptr<SizeMix>>* const built =
      new absl::StatusOr<std::unique_ptr<SizeMix>>(BuildSizeMix());
  if (!built->ok()) return built->status();
  return built->value().get();
}

}  // namespace vramcache::bench
