// RunGoldenRuns: replays the traces and runs the randomized seeds with a RecordingDevice between
// the allocator and the simulated device, and writes what each run did as stable text.
#include "tests/golden/golden_runs.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/trace/trace_reader.h"
#include "bench/replay/replay.h"
#include "gtest/gtest.h"
#include "tests/support/device_call_log.h"
#include "tests/support/hazard_oracle.h"
#include "tests/support/randomized_workload.h"
#include "tests/support/recording_device.h"

namespace vramcache {
namespace {

constexpr const char* kTraces[] = {"gpt2_generate", "gpt2_train", "resnet50_train"};
constexpr int kReplayPasses = 3;
// randomized_invariant_test's short runs (its first seeds; all of them would make this test
// slow) and its three long runs, with the same seeds and step counts.
constexpr int kShortSeeds = 40;
constexpr int kShortSteps = 150;
constexpr std::uint64_t kLongSeedStride = 1000003;
constexpr int kLongRuns = 3;
constexpr int kLongSteps = 1500;
// hazard_oracle_test's seeds that run one thread (the seed decides), the first few per mode.
constexpr int kOracleSeedsPerMode = 6;

// Statistics that are zero are left out, to keep the file short; a counter that starts moving
// then shows up as a new line.
void AppendStats(const DeviceStats& stats, std::string& out) {
  for (const auto& [key, value] : stats.ToKeyValues()) {
    if (value != 0) absl::StrAppend(&out, "  stat ", key, " ", value, "\n");
  }
}

// `lines` with every run of a repeated block of up to kMaxPeriod lines written once, followed by
// "^ N lines xM" (M copies in all): a trace's steps repeat, and so do their device calls.
void AppendCompressed(const std::vector<std::string>& lines, std::string& out) {
  constexpr std::size_t kMaxPeriod = 6;
  const std::size_t n = lines.size();
  const auto same_block = [&](std::size_t a, std::size_t b, std::size_t period) {
    for (std::size_t k = 0; k < period; ++k) {
      if (lines[a + k] != lines[b + k]) return false;
    }
    return true;
  };
  std::size_t i = 0;
  while (i < n) {
    std::size_t best_period = 0;
    std::size_t best_copies = 1;
    for (std::size_t period = 1; period <= kMaxPeriod && i + 2 * period <= n; ++period) {
      std::size_t copies = 1;
      while (i + (copies + 1) * period <= n && same_block(i, i + copies * period, period)) {
        ++copies;
      }
      if (copies >= 2 && copies * period > best_copies * best_period) {
        best_period = period;
        best_copies = copies;
      }
    }
    if (best_period == 0) {
      absl::StrAppend(&out, lines[i], "\n");
      ++i;
      continue;
    }
    for (std::size_t k = 0; k < best_period; ++k) absl::StrAppend(&out, lines[i + k], "\n");
    absl::StrAppend(&out, "^ ", best_period, best_period == 1 ? " line x" : " lines x", best_copies,
                    "\n");
    i += best_period * best_copies;
  }
}

// The full sequence is hashed, but the file keeps neither the capture-mode exchanges nor the
// capture-state queries: every allocation makes them, and they would make it 25 MB.
DeviceCallLog KeptLog() { return DeviceCallLog({"ExchangeCaptureMode", "IsCapturing"}); }

void AppendCalls(const std::string& run, DeviceCallLog& log, GoldenText& text) {
  log.Finish();
  absl::StrAppendFormat(&text.summary, "  device_calls %d fnv1a64 %016x\n", log.calls(),
                        log.hash());
  for (const auto& [name, count] : log.counts()) {
    absl::StrAppend(&text.summary, "  device_call ", name, " ", count, "\n");
  }
  absl::StrAppend(&text.device_calls, "run ", run, "\n");
  AppendCompressed(log.lines(), text.device_calls);
}

absl::Status AppendReplay(const std::string& source_dir, const char* trace_name, VmmMode vmm,
                          GoldenText& text) {
  const std::string path = absl::StrCat(source_dir, "/bench/traces/", trace_name, ".csv");
  absl::StatusOr<Trace> trace = ReadRmmCsvFile(path);
  if (!trace.ok()) return trace.status();
  DeviceCallLog log = KeptLog();
  ReplayOptions options;
  // The replay tool's configuration for --mode segments / vmm: the defaults, no invariant checks.
  options.config.check_invariants = false;
  options.config.vmm = vmm;
  options.repeat = kReplayPasses;
  options.open_device =
      [&log](const AllocatorConfig& config,
             std::optional<std::size_t> capacity) -> absl::StatusOr<std::unique_ptr<Device>> {
    absl::StatusOr<std::unique_ptr<Device>> sim = OpenSimReplayDevice(config, capacity);
    if (!sim.ok()) return sim.status();
    return std::make_unique<RecordingDevice>(std::move(*sim), &log);
  };
  absl::StatusOr<ReplayResult> result = ReplayTrace(*trace, options);
  if (!result.ok()) return result.status();
  const std::string run = absl::StrFormat("replay %s %s repeat %d", trace_name,
                                          vmm == VmmMode::kOn ? "vmm" : "segments", kReplayPasses);
  absl::StrAppend(&text.summary, "run ", run, "\n");
  absl::StrAppendFormat(
      &text.summary, "  events %d allocations %d frees %d failed %d peak_requested %d mode %s\n",
      result->events, result->allocations, result->frees, result->failed_allocations,
      result->peak_requested_bytes, ReplayModeName(result->mode));
  for (std::size_t pass = 0; pass < result->per_pass.size(); ++pass) {
    const PassDeviceCalls& calls = result->per_pass[pass];
    absl::StrAppendFormat(&text.summary,
                          "  pass %d device_alloc %d device_free %d map %d unmap %d stitches %d\n",
                          pass + 1, calls.device_alloc_calls, calls.device_free_calls,
                          calls.map_calls, calls.unmap_calls, calls.stitches);
  }
  AppendStats(result->stats, text.summary);
  AppendCalls(run, log, text);
  return absl::OkStatus();
}

void AppendRandomized(std::uint64_t seed, int steps, GoldenText& text) {
  DeviceCallLog log = KeptLog();
  DeviceStats stats;
  // Accounts only: addresses that are the same in every process (see randomized_workload.h);
  // randomized_invariant_test checks the bytes of the same seeds.
  RunRandomizedSeed(seed, steps, &log, &stats, /*check_bytes=*/false);
  const std::string run = absl::StrFormat("randomized seed %d steps %d", seed, steps);
  absl::StrAppend(&text.summary, "run ", run, "\n");
  AppendStats(stats, text.summary);
  AppendCalls(run, log, text);
}

void AppendOracle(std::uint64_t seed, bool vmm, GoldenText& text) {
  DeviceCallLog log = KeptLog();
  // Accounts only, as for the randomized workload: with memory-backed addresses, seed 40 in
  // VMM mode gave 46 or 37 device allocations depending on the process.
  HazardOracle oracle(seed, vmm, &log, /*check_bytes=*/false);
  oracle.Run();
  const std::string run = absl::StrFormat("oracle seed %d %s", seed, vmm ? "vmm" : "segments");
  absl::StrAppend(&text.summary, "run ", run, "\n");
  absl::StrAppend(&text.summary, "  ", oracle.description(), "\n");
  AppendStats(oracle.stats(), text.summary);
  AppendCalls(run, log, text);
}

}  // namespace

absl::StatusOr<GoldenText> RunGoldenRuns(const std::string& source_dir) {
  GoldenText text;
  for (const char* trace : kTraces) {
    for (const VmmMode vmm : {VmmMode::kOff, VmmMode::kOn}) {
      if (absl::Status s = AppendReplay(source_dir, trace, vmm, text); !s.ok()) return s;
    }
  }
  for (int seed = 1; seed <= kShortSeeds; ++seed) {
    AppendRandomized(static_cast<std::uint64_t>(seed), kShortSteps, text);
    if (::testing::Test::HasFatalFailure()) return text;
  }
  for (int run = 1; run <= kLongRuns; ++run) {
    AppendRandomized(kLongSeedStride * run, kLongSteps, text);
    if (::testing::Test::HasFatalFailure()) return text;
  }
  for (const bool vmm : {false, true}) {
    int recorded = 0;
    for (std::uint64_t seed = 1; recorded < kOracleSeedsPerMode; ++seed) {
      if (HazardOracle(seed, vmm).threads() != 1) continue;
      AppendOracle(seed, vmm, text);
      if (::testing::Test::HasFatalFailure()) return text;
      ++recorded;
    }
  }
  return text;
}

}  // namespace vramcache
