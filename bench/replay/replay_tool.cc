// vramcache-replay's argument parsing and driver.
#include "bench/replay/replay_tool.h"

#include <chrono>
#include <memory>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "allocator/api/config_parser.h"
#include "allocator/trace/trace_reader.h"
#include "bench/replay/replay_report.h"

namespace vramcache {
namespace {

constexpr int kMaxRepeat = 1'000'000;

absl::Status UsageError(absl::string_view what) { return absl::InvalidArgumentError(what); }

// The configuration of --conf: the allocator's defaults with the user's keys applied. Only the
// flag counts, not the environment, so a replay means the same on every machine.
absl::StatusOr<AllocatorConfig> ReplayConfig(const ReplayToolOptions& options) {
  AllocatorConfig base;
  // Checking every invariant after every call would measure the checks, not the allocator;
  // --conf check_invariants:true turns them back on.
  base.check_invariants = false;
  absl::StatusOr<AllocatorConfig> config = ParseConfigOnto(options.conf, base, "--conf");
  if (!config.ok()) return config.status();
  if (absl::Status s = CheckImplemented(*config); !s.ok()) return s;
  return config;
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::string ReplayToolUsage() {
  return absl::StrCat(
      "usage: vramcache-replay TRACE.csv... [--json] [--device sim|cuda] [--conf STRING]\n"
      "                        [--capacity SIZE] [--repeat N] [--min-capacity]\n"
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
      "                    replays with no failed allocation\n"
      "  -h, --help        this text\n"
      "\n"
      "Exit status: 0 success, 1 a trace or the device failed, 2 bad arguments.\n");
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
    } else if (name == "--device") {
      absl::StatusOr<std::string> device = value();
      if (!device.ok()) return device.status();
      if (*device != "sim" && *device != "cuda") {
        return UsageError(absl::StrCat("--device ", *device, ": expected sim or cuda"));
      }
      options.device = *device;
      options.device_given = true;
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
    } else {
      return UsageError(absl::StrCat("unknown option ", name));
    }
  }
  if (!options.help && options.traces.empty()) return UsageError("no trace file given");
  return options;
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
  absl::StatusOr<AllocatorConfig> config = ReplayConfig(*options);
  if (!config.ok()) {
    // The parser names "--conf" itself.
    absl::StrAppend(err, "vramcache-replay: ", config.status().message(), "\n");
    return kExitUsage;
  }
  // --device wins; otherwise a conf that names device:cuda gets the GPU, anything else the sim.
  const std::string device = options->device_given
                                 ? options->device
                                 : (config->device == DeviceKind::kCuda ? "cuda" : "sim");
  ReplayOptions replay;
  replay.config = *config;
  replay.capacity = options->capacity;
  replay.repeat = options->repeat;
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
  for (const std::string& path : options->traces) {
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<Trace> trace = ReadRmmCsvFile(path);
    if (!trace.ok()) {
      absl::StrAppend(err, "vramcache-replay: ", trace.status().message(), "\n");
      return kExitFailure;
    }
    const double read_seconds = SecondsSince(start);
    absl::StatusOr<ReplayResult> result = ReplayTrace(*trace, replay);
    if (!result.ok()) {
      absl::StrAppend(err, "vramcache-replay: ", path, ": ", result.status().message(), "\n");
      return kExitFailure;
    }
    ReplayReport report;
    report.wall_seconds = SecondsSince(start);
    report.read_seconds = read_seconds;
    report.trace = path;
    report.conf = options->conf;
    report.config = DescribeConfig(replay.config);
    report.device = device;
    report.capacity = options->capacity;
    report.repeat = options->repeat;
    report.trace_allocate_failures_skipped = trace->skipped_failed_allocations;
    report.result = *std::move(result);
    if (options->min_capacity) {
      absl::StatusOr<MinCapacityResult> min_capacity = FindMinCapacity(*trace, replay);
      if (!min_capacity.ok()) {
        absl::StrAppend(err, "vramcache-replay: --min-capacity: ", min_capacity.status().message(),
                        "\n");
        return kExitFailure;
      }
      report.min_capacity = *min_capacity;
    }
    reports.push_back(std::move(report));
  }

  if (options->json) {
    std::vector<std::string> objects;
    for (const ReplayReport& report : reports) objects.push_back(FormatReportJson(report));
    if (objects.size() == 1) {
      absl::StrAppend(out, objects[0], "\n");
    } else {
      absl::StrAppend(out, "[", absl::StrJoin(objects, ",\n"), "]\n");
    }
  } else if (reports.size() == 1) {
    absl::StrAppend(out, FormatReportText(reports[0]));
  } else {
    absl::StrAppend(out, FormatReportTable(reports));
  }
  return kExitOk;
}

}  // namespace vramcache
