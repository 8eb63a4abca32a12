// vramcache-replay's argument parsing and driver.
#include "bench/replay/replay_tool.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "allocator/api/config_parser.h"
#include "allocator/trace/trace_reader.h"
#include "bench/replay/memory_plot.h"
#include "bench/replay/page_breakdown.h"
#include "bench/replay/plan_bound.h"
#include "bench/replay/replay_report.h"
#include "bench/replay/replay_suite.h"

namespace vramcache {
namespace {

constexpr int kMaxRepeat = 1'000'000;
// Points per line of a --plot timeline: enough for any screen, small enough for any viewer.
constexpr std::size_t kPlotPoints = 4000;

absl::Status UsageError(absl::string_view what) { return absl::InvalidArgumentError(what); }

// The configuration of --conf: the allocator's defaults with the user's keys applied, then
// --mode's vmm setting (`vmm`, when given). Only the flag counts, not the environment, so a
// replay means the same on every machine.
absl::StatusOr<AllocatorConfig> ReplayConfig(const ReplayToolOptions& options,
                                             std::optional<VmmMode> vmm) {
  AllocatorConfig base;
  // Checking every invariant after every call would measure the checks, not the allocator;
  // --conf check_invariants:true turns them back on.
  base.check_invariants = false;
  absl::StatusOr<AllocatorConfig> config = ParseConfigOnto(options.conf, base, "--conf");
  if (!config.ok()) return config.status();
  if (vmm.has_value()) config->vmm = *vmm;
  if (absl::Status s = CheckImplemented(*config); !s.ok()) return s;
  return config;
}

const char* VmmRequestName(VmmMode vmm) {
  switch (vmm) {
    case VmmMode::kOn:
      return "vmm";
    case VmmMode::kOff:
      return "segments";
    case VmmMode::kAuto:
      break;
  }
  return "auto";
}

// The runs --mode asks for, in order: nullopt keeps the configuration's setting.
std::vector<std::optional<VmmMode>> ModesToRun(const std::string& mode) {
  if (mode == "vmm") return {VmmMode::kOn};
  if (mode == "segments") return {VmmMode::kOff};
  if (mode == "both") return {VmmMode::kOff, VmmMode::kOn};
  return {std::nullopt};
}

// A trace's name for file names and titles: the file name without directory and .csv.
std::string TraceStem(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') + 1);
  if (name.size() > 4 && name.ends_with(".csv")) name.resize(name.size() - 4);
  return name;
}

// Failures name the file and the system's reason (no such directory, permission, disk full).
absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) {
    return absl::UnavailableError(absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
  }
  const bool written = std::fwrite(contents.data(), 1, contents.size(), file) == contents.size();
  const int write_errno = errno;
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    return absl::UnavailableError(
        absl::StrCat(path, ": write failed: ", std::strerror(written ? errno : write_errno)));
  }
  return absl::OkStatus();
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::string ReplayToolUsage() {
  return absl::StrCat(
      "usage: vramcache-replay TRACE.csv... [--json] [--device sim|cuda] [--conf STRING]\n"
      "       vramcache-replay --suite DIR... [TRACE.csv...] [options]\n"
      "                        [--capacity SIZE] [--repeat N] [--min-capacity]\n"
      "                        [--allow-failures]\n"
      "                        [--mode vmm|segments|both] [--plot FILE.svg]\n"
      "\n"
      "Replays RMM-format allocation traces (Thread,Time,Action,Pointer,Size,Stream) through\n"
      "vramcache's caching allocator and reports peaks, utilization and device calls.\n"
      "\n"
      "  --json            one JSON object per trace (a JSON array for several traces)\n"
      "  --device KIND     sim: a simulated card, accounting only (default); cuda: GPU 0\n"
      "  --conf STRING     allocator settings, VRAMCACHE_CONF syntax (environment ignored)\n"
      "  --capacity SIZE   card size, e.g. 3GiB: allocations beyond fail and are counted\n"
      "                    (on cuda it caps reserved memory through the budget)\n"
      "  --repeat N        replay N times, freeing what is left live between passes\n"
      "  --min-capacity    find the smallest capacity (a multiple of the granularity) that\n"
      "                    replays with no failed allocation (implies --allow-failures)\n"
      "  --allow-failures  failed allocations are expected: they do not make the exit status 1\n"
      "  --mode MODE       vmm: virtual-memory mode (vmm:on); segments: segment mode\n"
      "                    (vmm:off); both: each trace in both, side by side. Overrides\n"
      "                    --conf's vmm; default: the configuration's (vmm:auto, VMM where\n"
      "                    the device supports it). The output names the mode that ran\n"
      "  --plot FILE       write an SVG timeline of requested, allocated and reserved bytes\n"
      "                    (slows the replay: statistics are read after every event). One\n"
      "                    file per trace and mode: with several traces, -TRACE (the file\n"
      "                    name without .csv) and with --mode both, -MODE, are inserted\n"
      "                    before FILE's extension (mem.svg -> mem-gpt2_train-vmm.svg)\n"
      "  --suite DIR       every *.csv directly in DIR (sorted; may be given again), in both\n"
      "                    modes (unless --mode), 3 passes (unless --repeat), with the\n"
      "                    minimum capacity: one table of utilization, min capacity / peak\n"
      "                    requested and device calls per pass (--json: the objects)\n"
      "  --plan-bound      replay nothing: per trace, the repeating step found in its\n"
      "                    sequence of sizes and what an offline planned layout of a pass\n"
      "                    and of the steps reaches in 2 MiB pages (one table)\n"
      "  --page-breakdown  virtual-memory mode, a heap snapshot after every allocation\n"
      "                    (slow): at the most 2 MiB pages in use, those pages split into\n"
      "                    requested bytes, rounding, free bytes of holes in in-use pages\n"
      "                    per pool, and chunks held above them at peak reserved; then\n"
      "                    each trace's largest holes (one table; honours --repeat)\n"
      "  -h, --help        this text\n"
      "\n"
      "Exit status: 0 success; 1 a trace or the device failed, or allocations failed (unless\n"
      "--allow-failures); 2 bad arguments. With several traces, those that can be read are\n"
      "replayed and reported even when another cannot.\n");
}

absl::StatusOr<ReplayToolOptions> ParseReplayToolArgs(const std::vector<std::string>& args) {
  ReplayToolOptions options;
  bool options_ended = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (options_ended || arg.empty() || arg[0] != '-' || arg == "-") {
      options.traces.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      continue;
    }
    std::string name = arg;
    std::optional<std::string> inline_value;
    if (const std::size_t equals = arg.find('='); equals != std::string::npos) {
      name = arg.substr(0, equals);
      inline_value = arg.substr(equals + 1);
    }
    const auto flag_without_value = [&]() -> absl::Status {
      if (inline_value.has_value()) {
        return UsageError(absl::StrCat(name, " takes no value"));
      }
      return absl::OkStatus();
    };
    const auto value = [&]() -> absl::StatusOr<std::string> {
      if (inline_value.has_value()) return *inline_value;
      if (i + 1 >= args.size()) return UsageError(absl::StrCat(name, " needs a value"));
      return args[++i];
    };
    if (name == "-h" || name == "--help") {
      if (absl::Status s = flag_without_value(); !s.ok()) return s;
      options.help = true;
    } else if (name == "--json") {
      if (absl::Status s = flag_without_value(); !s.ok()) return s;
      options.json = true;
    } else if (name == "--min-capacity") {
      if (absl::Status s = flag_without_value(); !s.ok()) return s;
      options.min_capacity = true;
    } else if (name == "--plan-bound") {
      if (absl::Status s = flag_without_value(); !s.ok()) return s;
      options.plan_bound = true;
    } else if (name == "--page-breakdown") {
      if (absl::Status s = flag_without_value(); !s.ok()) return s;
      options.page_breakdown = true;
    } else if (name == "--allow-failures") {
      if (absl::Status s = flag_without_value(); !s.ok()) return s;
      options.allow_failures = true;
    } else if (name == "--device") {
      absl::StatusOr<std::string> device = value();
      if (!device.ok()) return device.status();
      if (*device != "sim" && *device != "cuda") {
        return UsageError(absl::StrCat("--device ", *device, ": expected sim or cuda"));
      }
      options.device = *device;
      options.device_given = true;
    } else if (name == "--mode") {
      absl::StatusOr<std::string> mode = value();
      if (!mode.ok()) return mode.status();
      if (*mode != "vmm" && *mode != "segments" && *mode != "both") {
        return UsageError(absl::StrCat("--mode ", *mode, ": expected vmm, segments or both"));
      }
      options.mode = *mode;
    } else if (name == "--plot") {
      absl::StatusOr<std::string> plot = value();
      if (!plot.ok()) return plot.status();
      if (plot->empty() || plot->back() == '/') {
        return UsageError(absl::StrCat("--plot \"", *plot, "\": expected a file name"));
      }
      options.plot = *plot;
    } else if (name == "--conf") {
      absl::StatusOr<std::string> conf = value();
      if (!conf.ok()) return conf.status();
      options.conf = *conf;
    } else if (name == "--capacity") {
      absl::StatusOr<std::string> text = value();
      if (!text.ok()) return text.status();
      absl::StatusOr<std::size_t> bytes = ParseByteSize(*text);
      if (!bytes.ok()) return UsageError(absl::StrCat("--capacity: ", bytes.status().message()));
      if (*bytes == 0) return UsageError("--capacity: must be more than 0 bytes");
      options.capacity = *bytes;
    } else if (name == "--repeat") {
      absl::StatusOr<std::string> text = value();
      if (!text.ok()) return text.status();
      int repeat = 0;
      if (!absl::SimpleAtoi(*text, &repeat) || repeat < 1 || repeat > kMaxRepeat) {
        return UsageError(
            absl::StrCat("--repeat ", *text, ": expected a whole number from 1 to ", kMaxRepeat));
      }
      options.repeat = repeat;
      options.repeat_given = true;
    } else if (name == "--suite") {
      absl::StatusOr<std::string> directory = value();
      if (!directory.ok()) return directory.status();
      if (directory->empty()) return UsageError("--suite \"\": expected a folder");
      options.suites.push_back(*directory);
    } else {
      return UsageError(absl::StrCat("unknown option ", name));
    }
  }
  if (!options.help && options.traces.empty() && options.suites.empty()) {
    return UsageError("no trace file given");
  }
  if (options.plan_bound && (options.json || !options.plot.empty())) {
    return UsageError("--plan-bound prints one table: --json and --plot do not apply");
  }
  if (options.page_breakdown &&
      (options.json || !options.plot.empty() || options.plan_bound || options.min_capacity ||
       (!options.mode.empty() && options.mode != "vmm"))) {
    return UsageError(
        "--page-breakdown prints one table in virtual-memory mode: --json, --plot, "
        "--plan-bound, --min-capacity and --mode other than vmm do not apply");
  }
  if (!options.suites.empty() && !options.page_breakdown) {
    // A suite's traces are known only when the folder is listed, after parsing; its table and
    // its minimum-capacity searches are the point, so one plot per replay is left to single runs.
    if (!options.plot.empty()) return UsageError("--plot cannot be combined with --suite");
    if (options.mode.empty()) options.mode = "both";
    if (!options.repeat_given) options.repeat = kSuiteDefaultRepeat;
    options.min_capacity = true;
  }
  if (!options.plot.empty()) {
    // Two traces with one file name would overwrite each other's plot.
    std::set<std::string> paths;
    for (const std::string& trace : options.traces) {
      if (!paths.insert(PlotPathFor(options, trace, "")).second) {
        return UsageError(absl::StrCat("--plot: two traces are named ", TraceStem(trace),
                                       "; their plots would have the same file name"));
      }
    }
  }
  return options;
}

std::string PlotPathFor(const ReplayToolOptions& options, const std::string& trace,
                        const std::string& mode) {
  std::string insert;
  if (options.traces.size() > 1) absl::StrAppend(&insert, "-", TraceStem(trace));
  if (options.mode == "both" && !mode.empty()) absl::StrAppend(&insert, "-", mode);
  const std::size_t slash = options.plot.find_last_of('/');
  const std::size_t dot = options.plot.find_last_of('.');
  const bool has_extension =
      dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
  if (!has_extension) return absl::StrCat(options.plot, insert);
  return absl::StrCat(options.plot.substr(0, dot), insert, options.plot.substr(dot));
}

int RunReplayTool(const std::vector<std::string>& args, const ReplayToolEnvironment& environment,
                  std::string* out, std::string* err) {
  absl::StatusOr<ReplayToolOptions> options = ParseReplayToolArgs(args);
  if (!options.ok()) {
    absl::StrAppend(err, "vramcache-replay: ", options.status().message(), "\n\n",
                    ReplayToolUsage());
    return kExitUsage;
  }
  if (options->help) {
    absl::StrAppend(out, ReplayToolUsage());
    return kExitOk;
  }
  // A suite folder that cannot be listed is reported like an unreadable trace: the other
  // folders and traces still run, and the exit status is 1.
  bool any_failed = false;
  for (const std::string& directory : options->suites) {
    absl::StatusOr<std::vector<std::string>> traces = ListSuiteTraces(directory);
    if (!traces.ok()) {
      absl::StrAppend(err, "vramcache-replay: ", traces.status().message(), "\n");
      any_failed = true;
      continue;
    }
    options->traces.insert(options->traces.end(), traces->begin(), traces->end());
  }
  if (options->plan_bound) {
    std::vector<PlanBoundReport> plans;
    for (const std::string& path : options->traces) {
      absl::StatusOr<Trace> trace = ReadRmmCsvFile(path);
      absl::StatusOr<PlanBoundReport> plan =
          trace.ok() ? PlanBound(*trace) : absl::StatusOr<PlanBoundReport>(trace.status());
      if (!plan.ok()) {
        absl::StrAppend(err, "vramcache-replay: ", plan.status().message(), "\n");
        any_failed = true;
        continue;
      }
      plan->trace = path;
      plans.push_back(*std::move(plan));
    }
    if (plans.empty()) return kExitFailure;
    absl::StrAppend(out, FormatPlanBoundTable(plans));
    return any_failed ? kExitFailure : kExitOk;
  }
  if (options->page_breakdown) {
    absl::StatusOr<AllocatorConfig> config = ReplayConfig(*options, VmmMode::kOn);
    if (!config.ok()) {
      absl::StrAppend(err, "vramcache-replay: ", config.status().message(), "\n");
      return kExitFailure;
    }
    ReplayOptions replay;
    replay.config = *config;
    replay.capacity = options->capacity;
    replay.repeat = options->repeat_given ? options->repeat : kSuiteDefaultRepeat;
    std::vector<PageBreakdown> breakdowns;
    for (const std::string& path : options->traces) {
      absl::StatusOr<Trace> trace = ReadRmmCsvFile(path);
      absl::StatusOr<PageBreakdown> breakdown = trace.ok()
                                                    ? MeasurePageBreakdown(*trace, replay)
                                                    : absl::StatusOr<PageBreakdown>(trace.status());
      if (!breakdown.ok()) {
        absl::StrAppend(err, "vramcache-replay: ", breakdown.status().message(), "\n");
        any_failed = true;
        continue;
      }
      breakdown->trace = TraceStem(path);
      breakdowns.push_back(*std::move(breakdown));
    }
    if (breakdowns.empty()) return kExitFailure;
    absl::StrAppend(out, FormatPageBreakdowns(breakdowns, /*holes_listed=*/8));
    return any_failed ? kExitFailure : kExitOk;
  }
  // One configuration per mode to run. A mode the build refuses ends the run, unless --mode
  // both still has the other one: then the refused one is skipped with a note.
  std::vector<AllocatorConfig> configs;
  std::vector<std::string> skipped;
  absl::Status first_error;
  for (const std::optional<VmmMode>& vmm : ModesToRun(options->mode)) {
    absl::StatusOr<AllocatorConfig> config = ReplayConfig(*options, vmm);
    if (config.ok()) {
      configs.push_back(*std::move(config));
      continue;
    }
    // The parser names "--conf" itself; a --conf it cannot read fails every mode alike.
    std::string message(config.status().message());
    if (!vmm.has_value() || absl::IsInvalidArgument(config.status())) {
      absl::StrAppend(err, "vramcache-replay: ", message, "\n");
      return kExitUsage;
    }
    message = absl::StrCat("--mode ", VmmRequestName(*vmm), ": ", message);
    if (first_error.ok()) first_error = absl::Status(config.status().code(), message);
    skipped.push_back(std::move(message));
  }
  if (configs.empty()) {
    absl::StrAppend(err, "vramcache-replay: ", first_error.message(), "\n");
    return kExitUsage;
  }
  for (const std::string& message : skipped) {
    absl::StrAppend(err, "vramcache-replay: skipped: ", message, "\n");
  }
  // --device wins; otherwise a conf that names device:cuda gets the GPU, anything else the sim.
  const std::string device = options->device_given
                                 ? options->device
                                 : (configs[0].device == DeviceKind::kCuda ? "cuda" : "sim");
  ReplayOptions replay;
  replay.capacity = options->capacity;
  replay.repeat = options->repeat;
  if (!options->plot.empty()) replay.timeline_points = kPlotPoints;
  if (device == "cuda") {
    if (!environment.open_cuda_device) {
      absl::StrAppend(err,
                      "vramcache-replay: --device cuda: this build has no CUDA support (rebuild "
                      "with the CUDA toolkit), or use --device sim\n");
      return kExitFailure;
    }
    replay.open_device =
        [open_cuda = environment.open_cuda_device](
            const AllocatorConfig& cuda_config,
            std::optional<std::size_t> capacity) -> absl::StatusOr<std::unique_ptr<Device>> {
      absl::StatusOr<std::unique_ptr<Device>> device = open_cuda(cuda_config, capacity);
      if (!device.ok()) {
        return absl::Status(device.status().code(),
                            absl::StrCat("--device cuda: ", device.status().message()));
      }
      return device;
    };
  }

  std::vector<ReplayReport> reports;
  // A trace that cannot be read or replayed is reported and skipped: the others still are.
  for (const std::string& path : options->traces) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<Trace> trace = ReadRmmCsvFile(path);
    if (!trace.ok()) {
      absl::StrAppend(err, "vramcache-replay: ", trace.status().message(), "\n");
      any_failed = true;
      continue;
    }
    const double read_seconds = SecondsSince(start);
    for (const AllocatorConfig& config : configs) {
      replay.config = config;
      const std::string requested = VmmRequestName(config.vmm);
      const auto replay_start = std::chrono::steady_clock::now();
      absl::StatusOr<ReplayResult> result = ReplayTrace(*trace, replay);
      const double replay_call_seconds = SecondsSince(replay_start);
      if (!result.ok()) {
        absl::StrAppend(err, "vramcache-replay: ", path,
                        configs.size() > 1 ? absl::StrCat(" (", requested, ")") : "", ": ",
                        result.status().message(), "\n");
        any_failed = true;
        continue;
      }
      ReplayReport report;
      report.read_seconds = read_seconds;
      // Each mode's wall time: the one reading of the file plus its own replay (device and
      // allocator setup and teardown included), not the other mode's.
      report.wall_seconds = read_seconds + replay_call_seconds;
      report.trace = path;
      report.conf = options->conf;
      report.config = DescribeConfig(replay.config);
      report.device = device;
      report.mode_requested = requested;
      report.capacity = options->capacity;
      report.repeat = options->repeat;
      report.trace_allocate_failures_skipped = trace->skipped_failed_allocations;
      report.result = *std::move(result);
      if (!options->plot.empty()) {
        const char* mode = ReplayModeName(report.result.mode);
        report.plot_file = PlotPathFor(*options, path, requested);
        const std::string title =
            absl::StrFormat("%s, %s mode, utilization %.1f %%", TraceStem(path), mode,
                            100.0 * report.result.utilization());
        if (absl::Status s =
                WriteFile(report.plot_file, RenderMemoryPlotSvg(report.result.timeline, title));
            !s.ok()) {
          absl::StrAppend(err, "vramcache-replay: --plot: ", s.message(), "\n");
          any_failed = true;
          continue;
        }
        report.result.timeline = MemoryTimeline{};  // written; the report does not need it
      }
      if (options->min_capacity) {
        ReplayOptions search = replay;
        search.timeline_points = 0;
        absl::StatusOr<MinCapacityResult> min_capacity = FindMinCapacity(*trace, search);
        if (!min_capacity.ok()) {
          absl::StrAppend(
              err, "vramcache-replay: --min-capacity: ", min_capacity.status().message(), "\n");
          any_failed = true;
          continue;
        }
        report.min_capacity = *min_capacity;
      }
      reports.push_back(std::move(report));
    }
  }

  // Failed allocations are results, printed with the rest, but a run that was meant to fit must
  // not look like a success to a script.
  for (const ReplayReport& report : reports) {
    if (report.result.failed_allocations == 0 || options->allow_failures || options->min_capacity) {
      continue;
    }
    absl::StrAppend(err, "vramcache-replay: ", report.trace,
                    options->mode == "both" ? absl::StrCat(" (", report.mode_requested, ")") : "",
                    ": ", report.result.failed_allocations, " of ", report.result.allocations,
                    " allocations failed (out of memory); exit status 1 (--allow-failures when "
                    "that is expected)\n");
    any_failed = true;
  }
  if (reports.empty()) return kExitFailure;
  if (options->json) {
    std::vector<std::string> objects;
    for (const ReplayReport& report : reports) objects.push_back(FormatReportJson(report));
    // The shape follows the command line, not how many replays succeeded.
    if (options->traces.size() == 1 && configs.size() == 1 && options->suites.empty()) {
      absl::StrAppend(out, objects[0], "\n");
    } else {
      absl::StrAppend(out, "[", absl::StrJoin(objects, ",\n"), "]\n");
    }
  } else if (!options->suites.empty()) {
    absl::StrAppend(out, FormatSuiteTable(reports));
  } else if (options->mode == "both") {
    absl::StrAppend(out, FormatModeTable(reports));
  } else if (reports.size() == 1) {
    absl::StrAppend(out, FormatReportText(reports[0]));
  } else {
    absl::StrAppend(out, FormatReportTable(reports));
  }
  return any_failed ? kExitFailure : kExitOk;
}

}  // namespace vramcache
