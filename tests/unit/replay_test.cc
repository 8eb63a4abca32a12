// vramcache-replay: the replay loop on synthetic and real traces (peaks that agree with the
// allocator and the traces' README, failures under a small capacity, repeated passes, the
// minimum-capacity search) and the tool as a user runs it (output, JSON determinism, every
// argument error with exit status 2).
#include "bench/replay/replay.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "allocator/api/config_parser.h"
#include "allocator/device/sim_device.h"
#include "allocator/trace/trace_builder.h"
#include "allocator/trace/trace_reader.h"
#include "allocator/trace/trace_writer.h"
#include "bench/replay/replay_report.h"
#include "bench/replay/replay_tool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/replay_tool_run.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr std::size_t kGranularity = 2 * kMiB;

std::string TracePath(absl::string_view name) {
  return absl::StrCat(VRAMCACHE_SOURCE_DIR, "/bench/traces/", name);
}

Trace ReadTrace(absl::string_view name) {
  absl::StatusOr<Trace> trace = ReadRmmCsvFile(TracePath(name));
  EXPECT_TRUE(trace.ok()) << trace.status();
  return trace.ok() ? *std::move(trace) : Trace{};
}

ReplayOptions FastOptions() {
  ReplayOptions options;
  options.config.check_invariants = false;  // the replay measures; the core tests check
  return options;
}

// A small trace: two large buffers that overlap, a small one, a zero-byte one, and one left
// live at the end. Peak live: 5 MiB + 3 MiB + 1000 B.
Trace SyntheticTrace() {
  TraceBuilder builder("synthetic");
  EXPECT_TRUE(builder.Allocate(0xa, 5 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xb, 1000, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xc, 0, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xd, 3 * kMiB, {.stream = 7}).ok());
  EXPECT_TRUE(builder.Free(0xa, 5 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Free(0xc, 0, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xa, 4 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Free(0xd, 3 * kMiB, {.stream = 7}).ok());
  EXPECT_TRUE(builder.Free(0xa, 4 * kMiB, {}).ok());
  return std::move(builder).Finish();
}

TEST(ReplayTest, SyntheticTraceCountsAndPeaks) {
  const Trace trace = SyntheticTrace();
  absl::StatusOr<ReplayResult> result = ReplayTrace(trace, FastOptions());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->events, 9u);
  EXPECT_EQ(result->allocations, 5u);
  EXPECT_EQ(result->frees, 4u);
  EXPECT_EQ(result->failed_allocations, 0u);
  EXPECT_EQ(result->peak_requested_bytes, 8 * kMiB + 1000);
  EXPECT_EQ(result->peak_requested_bytes, PeakLiveBytes(trace));
  EXPECT_EQ(static_cast<std::int64_t>(result->peak_requested_bytes),
            result->stats.requested_bytes.all().peak);
  EXPECT_GE(result->peak_allocated_bytes(), result->peak_requested_bytes);
  EXPECT_GE(result->peak_reserved_bytes(), result->peak_allocated_bytes());
  EXPECT_GT(result->utilization(), 0.0);
  EXPECT_LE(result->utilization(), 1.0);
  EXPECT_GT(result->stats.num_device_alloc, 0);
  // The 1000-byte block is still live when the last pass ends.
  EXPECT_EQ(result->stats.requested_bytes.all().current, 1000);
  ASSERT_EQ(result->per_pass.size(), 1u);
  EXPECT_EQ(result->per_pass[0].device_alloc_calls, result->stats.num_device_alloc);
  EXPECT_EQ(result->granularity, kGranularity);
}

TEST(ReplayTest, RepeatFreesLeftoversAndReusesTheCache) {
  const Trace trace = SyntheticTrace();
  ReplayOptions options = FastOptions();
  options.repeat = 3;
  absl::StatusOr<ReplayResult> result = ReplayTrace(trace, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->events, 27u);
  EXPECT_EQ(result->allocations, 15u);
  // The live 1000 bytes were freed between passes, so the peak does not grow with passes.
  EXPECT_EQ(result->peak_requested_bytes, 8 * kMiB + 1000);
  EXPECT_EQ(static_cast<std::int64_t>(result->peak_requested_bytes),
            result->stats.requested_bytes.all().peak);
  ASSERT_EQ(result->per_pass.size(), 3u);
  EXPECT_GT(result->per_pass[0].device_alloc_calls, 0);
  EXPECT_EQ(result->per_pass[1].device_alloc_calls, 0);
  EXPECT_EQ(result->per_pass[2].device_alloc_calls, 0);
  // The simulated device counts its own calls; the allocator's count agrees.
  std::int64_t sim_allocs = 0;
  for (const auto& [name, count] : result->per_pass[0].sim_calls) {
    if (name == "malloc" || name == "create_chunk") sim_allocs += count;
  }
  EXPECT_GT(sim_allocs, 0);
}

TEST(ReplayTest, SmallCapacityCountsFailuresAndGoesOn) {
  const Trace trace = SyntheticTrace();
  ReplayOptions options = FastOptions();
  options.capacity = 6 * kMiB;  // the 5 MiB and 3 MiB buffers cannot both live
  absl::StatusOr<ReplayResult> result = ReplayTrace(trace, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->device_total_bytes, 6 * kMiB);
  EXPECT_GT(result->failed_allocations, 0u);
  EXPECT_EQ(result->events, 9u);  // every event was replayed, failed pointers' frees included
  EXPECT_LT(result->peak_requested_bytes, 8 * kMiB + 1000);
  EXPECT_EQ(static_cast<std::int64_t>(result->peak_requested_bytes),
            result->stats.requested_bytes.all().peak);
  EXPECT_GT(result->stats.num_ooms, 0);
}

TEST(ReplayTest, CapacityBelowTheCardBecomesABudget) {
  // A device that cannot shrink (a real GPU) gets the capacity as the allocator's budget.
  const Trace trace = SyntheticTrace();
  ReplayOptions options = FastOptions();
  options.capacity = 6 * kMiB;
  options.open_device = [](const AllocatorConfig&, std::optional<std::size_t>) {
    return absl::StatusOr<std::unique_ptr<Device>>(std::make_unique<SimDevice>());
  };
  absl::StatusOr<ReplayResult> result = ReplayTrace(trace, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->device_total_bytes, 6 * kMiB);
  EXPECT_GT(result->failed_allocations, 0u);
  EXPECT_LE(result->peak_reserved_bytes(), 6 * kMiB);
}

TEST(ReplayTest, BadOptionsAndDeviceErrorsAreReported) {
  const Trace trace = SyntheticTrace();
  ReplayOptions options = FastOptions();
  options.repeat = 0;
  EXPECT_EQ(ReplayTrace(trace, options).status().code(), absl::StatusCode::kInvalidArgument);
  options = FastOptions();
  options.capacity = 0;
  EXPECT_EQ(ReplayTrace(trace, options).status().code(), absl::StatusCode::kInvalidArgument);
  options = FastOptions();
  options.config.sim_granularity = 3000;  // not a power of two
  EXPECT_EQ(ReplayTrace(trace, options).status().code(), absl::StatusCode::kInvalidArgument);
  options = FastOptions();
  options.open_device = [](const AllocatorConfig&, std::optional<std::size_t>) {
    return absl::StatusOr<std::unique_ptr<Device>>(absl::FailedPreconditionError("no GPU here"));
  };
  EXPECT_THAT(ReplayTrace(trace, options).status().message(), HasSubstr("no GPU here"));
}

TEST(ReplayTest, MinCapacityOfSyntheticTrace) {
  const Trace trace = SyntheticTrace();
  absl::StatusOr<MinCapacityResult> found = FindMinCapacity(trace, FastOptions());
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->min_capacity_bytes % kGranularity, 0u);
  EXPECT_GE(found->min_capacity_bytes, 8 * kMiB + 1000);
  ReplayOptions options = FastOptions();
  options.capacity = found->min_capacity_bytes;
  EXPECT_EQ(ReplayTrace(trace, options)->failed_allocations, 0u);
  options.capacity = found->min_capacity_bytes - kGranularity;
  EXPECT_GT(ReplayTrace(trace, options)->failed_allocations, 0u);
}

TEST(ReplayTest, MinCapacityNeedsATraceThatFitsTheDevice) {
  const Trace trace = SyntheticTrace();
  ReplayOptions options = FastOptions();
  options.config.sim_capacity = 4 * kMiB;
  EXPECT_EQ(FindMinCapacity(trace, options).status().code(), absl::StatusCode::kFailedPrecondition);
}

struct RealTrace {
  const char* file;
  double peak_live_mib;  // the README's figure, to 0.1 MiB
};

class RealTraceReplayTest : public ::testing::TestWithParam<RealTrace> {};

TEST_P(RealTraceReplayTest, ReplaysCleanlyWithTheReadmePeak) {
  const Trace trace = ReadTrace(GetParam().file);
  absl::StatusOr<ReplayResult> result = ReplayTrace(trace, FastOptions());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->events, trace.events.size());
  EXPECT_EQ(result->failed_allocations, 0u);
  EXPECT_NEAR(static_cast<double>(result->peak_requested_bytes) / kMiB, GetParam().peak_live_mib,
              0.05);
  EXPECT_EQ(static_cast<std::int64_t>(result->peak_requested_bytes),
            result->stats.requested_bytes.all().peak);
  EXPECT_GT(result->utilization(), 0.0);
  EXPECT_LE(result->utilization(), 1.0);
}

// Issue 4's targets, in the default (virtual-memory) mode: utilization of at least 0.97, and
// a training loop's later steps (passes 2 and 3 of the trace) make no device call at all.
TEST_P(RealTraceReplayTest, VirtualMemoryMeetsItsTargetsAndRepeatsWithoutDeviceCalls) {
  const Trace trace = ReadTrace(GetParam().file);
  ReplayOptions options = FastOptions();
  options.config.vmm = VmmMode::kOn;
  absl::StatusOr<ReplayResult> once = ReplayTrace(trace, options);
  ASSERT_TRUE(once.ok()) << once.status();
  EXPECT_EQ(once->mode, ReplayMode::kVmm);
  EXPECT_GE(once->utilization(), 0.97);
  EXPECT_GT(once->per_pass.at(0).total(), 0);

  options.repeat = 3;
  absl::StatusOr<ReplayResult> repeated = ReplayTrace(trace, options);
  ASSERT_TRUE(repeated.ok()) << repeated.status();
  ASSERT_EQ(repeated->per_pass.size(), 3u);
  for (std::size_t pass = 1; pass < 3; ++pass) {
    const PassDeviceCalls& calls = repeated->per_pass[pass];
    EXPECT_EQ(calls.total(), 0) << "pass " << pass + 1 << ": " << calls.device_alloc_calls
                                << " creates, " << calls.device_free_calls << " releases, "
                                << calls.map_calls << " maps, " << calls.unmap_calls << " unmaps";
  }
  // Memory stays where the first pass left it.
  EXPECT_EQ(repeated->stats.reserved_bytes.all().peak, once->stats.reserved_bytes.all().peak);
}

INSTANTIATE_TEST_SUITE_P(Readme, RealTraceReplayTest,
                         ::testing::Values(RealTrace{"resnet50_train.csv", 904.9},
                                           RealTrace{"gpt2_train.csv", 2782.2},
                                           RealTrace{"gpt2_generate.csv", 834.1}),
                         [](const ::testing::TestParamInfo<RealTrace>& info) {
                           std::string name = info.param.file;
                           return name.substr(0, name.find('.'));
                         });

TEST(ReplayTest, MinCapacityOfARealTraceIsTight) {
  const Trace trace = ReadTrace("resnet50_train.csv");
  absl::StatusOr<MinCapacityResult> found = FindMinCapacity(trace, FastOptions());
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->min_capacity_bytes % kGranularity, 0u);
  EXPECT_GE(found->min_capacity_bytes, PeakLiveBytes(trace));
  ReplayOptions options = FastOptions();
  options.capacity = found->min_capacity_bytes;
  absl::StatusOr<ReplayResult> at_min = ReplayTrace(trace, options);
  ASSERT_TRUE(at_min.ok()) << at_min.status();
  EXPECT_EQ(at_min->failed_allocations, 0u);
  options.capacity = found->min_capacity_bytes - kGranularity;
  absl::StatusOr<ReplayResult> below = ReplayTrace(trace, options);
  ASSERT_TRUE(below.ok()) << below.status();
  EXPECT_GT(below->failed_allocations, 0u);
}

// --- the tool, as a user runs it ---

// The JSON without the two fields that vary from run to run (they come last, in this order).
std::string WithoutTimings(const std::string& json) {
  const std::size_t cut = json.find(",\"wall_seconds\":");
  EXPECT_NE(cut, std::string::npos) << json;
  const std::size_t rate = json.find(",\"events_per_second\":", cut);
  EXPECT_NE(rate, std::string::npos) << json;
  EXPECT_EQ(json.find(',', rate + 1), std::string::npos) << "fields after events_per_second";
  return json.substr(0, cut);
}

TEST(ReplayToolTest, JsonHasTheNamedFieldsAndIsDeterministic) {
  const std::vector<std::string> args = {TracePath("resnet50_train.csv"), "--json"};
  const ToolRun first = RunTool(args);
  ASSERT_EQ(first.status, kExitOk) << first.err;
  EXPECT_EQ(first.err, "");
  for (const char* field : {"\"trace\":",
                            "\"config\":",
                            "\"events\":14502,",
                            "\"allocations\":",
                            "\"failed_allocations\":0,",
                            "\"peak_requested_bytes\":948817616,",
                            "\"peak_allocated_bytes\":",
                            "\"peak_reserved_bytes\":",
                            "\"utilization\":0.",
                            "\"device_alloc_calls\":",
                            "\"device_free_calls\":",
                            "\"num_cache_hits\":",
                            "\"map_calls\":",
                            "\"unmap_calls\":",
                            "\"stitches\":",
                            "\"device_calls\":",
                            "\"mode\":",
                            "\"mode_requested\":\"auto\"",
                            "\"per_pass\":[{",
                            "\"stats\":{",
                            "\"wall_seconds\":",
                            "\"read_seconds\":",
                            "\"replay_seconds\":",
                            "\"replay_events_per_second\":",
                            "\"events_per_second\":"}) {
    EXPECT_THAT(first.out, HasSubstr(field));
  }
  EXPECT_EQ(first.out.front(), '{');
  EXPECT_EQ(first.out.substr(first.out.size() - 2), "}\n");
  const ToolRun second = RunTool(args);
  ASSERT_EQ(second.status, kExitOk) << second.err;
  // Compared field by field, so a failure names what varies.
  const std::vector<std::string> first_fields = absl::StrSplit(WithoutTimings(first.out), ',');
  const std::vector<std::string> second_fields = absl::StrSplit(WithoutTimings(second.out), ',');
  ASSERT_EQ(first_fields.size(), second_fields.size());
  std::vector<std::string> differing;
  for (std::size_t i = 0; i < first_fields.size(); ++i) {
    if (first_fields[i] != second_fields[i]) {
      differing.push_back(absl::StrCat(first_fields[i], " then ", second_fields[i]));
    }
  }
  EXPECT_TRUE(differing.empty()) << "fields that differ between two runs:\n"
                                 << absl::StrJoin(differing, "\n");
}

TEST(ReplayToolTest, HumanOutputSaysWhatUsersAskFor) {
  const ToolRun run = RunTool({TracePath("resnet50_train.csv")});
  ASSERT_EQ(run.status, kExitOk) << run.err;
  for (const char* text :
       {"events                 14,502", "failed allocations     0", "904.9 MiB", "peak allocated",
        "peak reserved", "utilization", "device calls", "wall time", "million events/s"}) {
    EXPECT_THAT(run.out, HasSubstr(text));
  }
  EXPECT_THAT(run.out, Not(HasSubstr("WARNING")));
}

TEST(ReplayToolTest, SmallCapacityRepeatAndMinCapacityFlags) {
  const std::string trace_path = absl::StrCat(::testing::TempDir(), "/replay_tool_test.csv");
  ASSERT_TRUE(WriteRmmCsvFile(SyntheticTrace(), trace_path).ok());

  const ToolRun small = RunTool({trace_path, "--json", "--capacity", "6MiB", "--allow-failures"});
  ASSERT_EQ(small.status, kExitOk) << small.err;
  EXPECT_THAT(small.out, HasSubstr("\"capacity_bytes\":6291456,"));
  EXPECT_THAT(small.out, Not(HasSubstr("\"failed_allocations\":0,")));

  const ToolRun repeated = RunTool({trace_path, "--json", "--repeat=2"});
  ASSERT_EQ(repeated.status, kExitOk) << repeated.err;
  EXPECT_THAT(repeated.out, HasSubstr("\"repeat\":2,\"events\":18,"));
  EXPECT_THAT(repeated.out, HasSubstr("\"per_pass\":[{\"device_alloc_calls\":"));
  EXPECT_THAT(repeated.out, HasSubstr("},{\"device_alloc_calls\":0,"));

  const ToolRun min_capacity = RunTool({trace_path, "--json", "--min-capacity"});
  ASSERT_EQ(min_capacity.status, kExitOk) << min_capacity.err;
  EXPECT_THAT(min_capacity.out, HasSubstr("\"min_capacity_bytes\":"));
  EXPECT_THAT(min_capacity.out, HasSubstr("\"min_capacity_to_peak_requested\":"));
  const ToolRun min_text = RunTool({trace_path, "--min-capacity"});
  EXPECT_THAT(min_text.out, HasSubstr("min capacity"));
  std::remove(trace_path.c_str());
}

TEST(ReplayToolTest, SeveralTracesGiveATableOrAJsonArray) {
  // Small traces keep this fast under the sanitizers; the real ones are covered above.
  const std::string a = absl::StrCat(::testing::TempDir(), "/replay_tool_a.csv");
  const std::string b = absl::StrCat(::testing::TempDir(), "/replay_tool_b.csv");
  ASSERT_TRUE(WriteRmmCsvFile(SyntheticTrace(), a).ok());
  TraceBuilder builder("b");
  ASSERT_TRUE(builder.Allocate(0x10, 1000, {}).ok());
  ASSERT_TRUE(WriteRmmCsvFile(std::move(builder).Finish(), b).ok());

  const ToolRun table = RunTool({a, b});
  ASSERT_EQ(table.status, kExitOk) << table.err;
  EXPECT_THAT(table.out, HasSubstr("util"));
  EXPECT_THAT(table.out, HasSubstr(absl::StrCat(a, " ")));
  EXPECT_THAT(table.out, HasSubstr(absl::StrCat(b, " ")));
  EXPECT_EQ(std::count(table.out.begin(), table.out.end(), '\n'), 3);

  const ToolRun json = RunTool({a, b, "--json"});
  ASSERT_EQ(json.status, kExitOk) << json.err;
  EXPECT_EQ(json.out.front(), '[');
  EXPECT_EQ(json.out.substr(json.out.size() - 2), "]\n");
  EXPECT_THAT(json.out, HasSubstr("\"events\":9,"));
  EXPECT_THAT(json.out, HasSubstr("\"events\":1,"));
  std::remove(a.c_str());
  std::remove(b.c_str());
}

// A replay whose allocations fail is not a success, unless failures were asked for.
TEST(ReplayToolTest, FailedAllocationsExitOneUnlessAllowed) {
  const std::string trace_path = absl::StrCat(::testing::TempDir(), "/replay_tool_fail.csv");
  ASSERT_TRUE(WriteRmmCsvFile(SyntheticTrace(), trace_path).ok());
  const ToolRun tiny = RunTool({trace_path, "--capacity", "1KB"});
  EXPECT_EQ(tiny.status, kExitFailure) << tiny.out;
  EXPECT_THAT(tiny.err, HasSubstr(absl::StrCat(trace_path, ": 4 of 5 allocations failed")));
  // The report still comes, and its peak says what it counts.
  EXPECT_THAT(tiny.out, HasSubstr("of the allocations that succeeded (4 failed"));
  EXPECT_THAT(tiny.out, Not(HasSubstr("the least any allocator needs")));
  const ToolRun allowed = RunTool({trace_path, "--capacity", "1KB", "--allow-failures"});
  EXPECT_EQ(allowed.status, kExitOk) << allowed.err;
  const ToolRun fits = RunTool({trace_path});
  EXPECT_EQ(fits.status, kExitOk) << fits.err;
  EXPECT_THAT(fits.out, HasSubstr("the least any allocator needs"));
  std::remove(trace_path.c_str());
}

// One unreadable trace among several: the others are still replayed and printed.
TEST(ReplayToolTest, ABadTraceDoesNotHideTheGoodOnes) {
  const std::string good = absl::StrCat(::testing::TempDir(), "/replay_tool_good.csv");
  ASSERT_TRUE(WriteRmmCsvFile(SyntheticTrace(), good).ok());
  const ToolRun json = RunTool({good, "/nonexistent/bad.csv", "--json"});
  EXPECT_EQ(json.status, kExitFailure);
  EXPECT_THAT(json.err, HasSubstr("/nonexistent/bad.csv: cannot open"));
  ASSERT_FALSE(json.out.empty());
  EXPECT_EQ(json.out.front(), '[');
  EXPECT_THAT(json.out, HasSubstr("\"events\":9,"));
  const ToolRun text = RunTool({"/nonexistent/bad.csv", good});
  EXPECT_EQ(text.status, kExitFailure);
  EXPECT_THAT(text.out, HasSubstr(good));
  std::remove(good.c_str());
}

TEST(ReplayToolTest, PlotFailureSaysWhy) {
  const std::string trace_path = absl::StrCat(::testing::TempDir(), "/replay_tool_plot.csv");
  ASSERT_TRUE(WriteRmmCsvFile(SyntheticTrace(), trace_path).ok());
  const ToolRun run = RunTool({trace_path, "--plot", "/nonexistent/dir/mem.svg"});
  EXPECT_EQ(run.status, kExitFailure);
  EXPECT_THAT(run.err, HasSubstr("/nonexistent/dir/mem.svg: cannot create: No such file or "
                                 "directory"));
  std::remove(trace_path.c_str());
}

TEST(ReplayToolTest, ArgumentErrorsExitTwoWithUsage) {
  const std::string trace = TracePath("resnet50_train.csv");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{}, "no trace file given"},
      {{"--json"}, "no trace file given"},
      {{trace, "--frobnicate"}, "unknown option --frobnicate"},
      {{trace, "--repeat"}, "--repeat needs a value"},
      {{trace, "--repeat", "0"}, "--repeat 0: expected a whole number from 1 to"},
      {{trace, "--repeat=two"}, "--repeat two"},
      {{trace, "--capacity", "3XB"}, "--capacity: \"3XB\" is not a size (unknown unit"},
      {{trace, "--capacity", "0"}, "--capacity: must be more than 0 bytes"},
      {{trace, "--device", "tpu"}, "--device tpu: expected sim or cuda"},
      {{trace, "--json=yes"}, "--json takes no value"},
      {{trace, "--conf", "no_such_key:1"}, "--conf"},
      {{trace, "--mode"}, "--mode needs a value"},
      {{trace, "--mode", "fast"}, "--mode fast: expected vmm, segments or both"},
      {{trace, "--mode=auto"}, "--mode auto: expected vmm, segments or both"},
      {{trace, "--mode", "both", "--conf", "no_such_key:1"}, "--conf"},
      {{trace, "--plot"}, "--plot needs a value"},
      {{trace, "--plot="}, "--plot \"\": expected a file name"},
  };
  for (const auto& [args, message] : cases) {
    const ToolRun run = RunTool(args);
    EXPECT_EQ(run.status, kExitUsage) << message;
    EXPECT_THAT(run.err, HasSubstr(message));
    EXPECT_EQ(run.out, "");
  }
  const ToolRun usage = RunTool({trace, "--bogus"});
  EXPECT_THAT(usage.err, HasSubstr("usage: vramcache-replay"));
  const ToolRun help = RunTool({"--help"});
  EXPECT_EQ(help.status, kExitOk);
  EXPECT_THAT(help.out, HasSubstr("usage: vramcache-replay"));
}

// The mode that ran, from the JSON: "vmm" or "segments".
std::string JsonMode(const std::string& json) {
  const std::string key = "\"mode\":\"";
  const std::size_t at = json.find(key);
  if (at == std::string::npos) return "";
  const std::size_t value = at + key.size();
  return json.substr(value, json.find('"', value) - value);
}

TEST(ReplayToolTest, ModeFlagChoosesSegmentsOrVmm) {
  const std::string trace_path = absl::StrCat(::testing::TempDir(), "/replay_tool_mode.csv");
  ASSERT_TRUE(WriteRmmCsvFile(SyntheticTrace(), trace_path).ok());

  const ToolRun segments = RunTool({trace_path, "--json", "--mode", "segments"});
  ASSERT_EQ(segments.status, kExitOk) << segments.err;
  EXPECT_EQ(JsonMode(segments.out), "segments");
  EXPECT_THAT(segments.out, HasSubstr("\"mode_requested\":\"segments\""));
  EXPECT_THAT(segments.out, HasSubstr("vmm:off"));  // the configuration in effect
  EXPECT_THAT(segments.out, HasSubstr("\"map_calls\":0,\"unmap_calls\":0,\"stitches\":0,"));
  // --mode overrides --conf's vmm.
  const ToolRun overridden = RunTool({trace_path, "--json", "--mode=segments", "--conf", "vmm:on"});
  ASSERT_EQ(overridden.status, kExitOk) << overridden.err;
  EXPECT_EQ(JsonMode(overridden.out), "segments");
  const ToolRun text = RunTool({trace_path, "--mode", "segments"});
  ASSERT_EQ(text.status, kExitOk) << text.err;
  EXPECT_THAT(text.out, HasSubstr("mode                   segments\n"));

  // Virtual-memory mode runs, or (in a build that has not got it) is refused clearly.
  const ToolRun vmm = RunTool({trace_path, "--json", "--mode", "vmm"});
  if (vmm.status == kExitOk) {
    EXPECT_EQ(JsonMode(vmm.out), "vmm");
    EXPECT_THAT(vmm.out, HasSubstr("\"mode_requested\":\"vmm\""));
    EXPECT_THAT(vmm.out, Not(HasSubstr("\"map_calls\":0,")));
  } else {
    EXPECT_EQ(vmm.status, kExitUsage);
    EXPECT_THAT(vmm.err, HasSubstr("--mode vmm: "));
  }

  // both: a row per mode (segments first), or segments alone and a note.
  const ToolRun both = RunTool({trace_path, "--mode", "both", "--min-capacity"});
  ASSERT_EQ(both.status, kExitOk) << both.err;
  EXPECT_THAT(both.out, HasSubstr("min/req"));
  EXPECT_THAT(both.out, HasSubstr("stitches"));
  const std::vector<std::string> lines = absl::StrSplit(both.out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 2u) << both.out;
  EXPECT_THAT(lines[1], HasSubstr(" segments "));
  if (vmm.status == kExitOk) {
    ASSERT_EQ(lines.size(), 3u) << both.out;
    EXPECT_THAT(lines[2], HasSubstr(" vmm "));
    EXPECT_EQ(both.err, "");
  } else {
    EXPECT_EQ(lines.size(), 2u) << both.out;
    EXPECT_THAT(both.err, HasSubstr("skipped: --mode vmm: "));
  }
  const ToolRun both_json = RunTool({trace_path, "--json", "--mode", "both"});
  ASSERT_EQ(both_json.status, kExitOk) << both_json.err;
  EXPECT_EQ(both_json.out.front(), vmm.status == kExitOk ? '[' : '{');
  std::remove(trace_path.c_str());
}

TEST(ReplayToolTest, PerPassCallsSumEveryKind) {
  const Trace trace = SyntheticTrace();
  for (const VmmMode vmm : {VmmMode::kOff, VmmMode::kOn}) {
    ReplayOptions options = FastOptions();
    options.config.vmm = vmm;
    options.repeat = 2;
    absl::StatusOr<ReplayResult> result = ReplayTrace(trace, options);
    ASSERT_TRUE(result.ok()) << result.status();
    std::int64_t alloc = 0, free = 0, map = 0, unmap = 0;
    for (const PassDeviceCalls& pass : result->per_pass) {
      EXPECT_EQ(pass.total(), pass.device_alloc_calls + pass.device_free_calls + pass.map_calls +
                                  pass.unmap_calls);
      alloc += pass.device_alloc_calls;
      free += pass.device_free_calls;
      map += pass.map_calls;
      unmap += pass.unmap_calls;
    }
    EXPECT_EQ(alloc, result->stats.num_device_alloc);
    EXPECT_EQ(free, result->stats.num_device_free);
    EXPECT_EQ(map, result->stats.num_map_calls);
    EXPECT_EQ(unmap, result->stats.num_unmap_calls);
    if (vmm == VmmMode::kOff) {
      EXPECT_EQ(result->mode, ReplayMode::kSegments);
    }
  }
}

TEST(ReplayToolTest, UnreadableOrMalformedTracesExitOne) {
  const ToolRun missing = RunTool({"/nonexistent/trace.csv"});
  EXPECT_EQ(missing.status, kExitFailure);
  EXPECT_THAT(missing.err, HasSubstr("/nonexistent/trace.csv: cannot open"));

  const std::string path = absl::StrCat(::testing::TempDir(), "/replay_tool_bad.csv");
  {
    std::FILE* file = std::fopen(path.c_str(), "w");
    ASSERT_NE(file, nullptr);
    std::fputs("Thread,Time,Action,Pointer,Size,Stream\n1,00:00:00.000001,free,0x10,8,0\n", file);
    std::fclose(file);
  }
  const ToolRun bad = RunTool({path});
  EXPECT_EQ(bad.status, kExitFailure);
  EXPECT_THAT(bad.err, HasSubstr(absl::StrCat(path, ":2: free of pointer 0x10")));
  std::remove(path.c_str());
}

TEST(ReplayToolTest, CudaDeviceErrorsAreClear) {
  const std::string trace = TracePath("resnet50_train.csv");
  const ToolRun no_support = RunTool({trace, "--device", "cuda"});
  EXPECT_EQ(no_support.status, kExitFailure);
  EXPECT_THAT(no_support.err, HasSubstr("no CUDA support"));

  ReplayToolEnvironment environment;
  environment.open_cuda_device = [](const AllocatorConfig&, std::optional<std::size_t>) {
    return absl::StatusOr<std::unique_ptr<Device>>(
        absl::FailedPreconditionError("no CUDA device is usable"));
  };
  const ToolRun no_gpu = RunTool({trace, "--device=cuda"}, environment);
  EXPECT_EQ(no_gpu.status, kExitFailure);
  EXPECT_THAT(no_gpu.err, HasSubstr("--device cuda: no CUDA device is usable"));
}

TEST(ByteSizeTest, ParsesBytesAndBinaryUnits) {
  EXPECT_EQ(*ParseByteSize("3221225472"), 3221225472u);
  EXPECT_EQ(*ParseByteSize("3GiB"), 3 * kGiB);
  EXPECT_EQ(*ParseByteSize("3G"), 3 * kGiB);
  EXPECT_EQ(*ParseByteSize("3gb"), 3 * kGiB);
  EXPECT_EQ(*ParseByteSize("1.5GiB"), 3 * kGiB / 2);
  EXPECT_EQ(*ParseByteSize("512 MiB"), 512 * kMiB);
  EXPECT_EQ(*ParseByteSize("64k"), 64 * kKiB);
  EXPECT_EQ(*ParseByteSize("10B"), 10u);
  for (const char* bad : {"", "GiB", "-1", "3XB", "1.5", "0.1B", "1.2.3G", "99999999999TiB"}) {
    EXPECT_EQ(ParseByteSize(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace vramcache
