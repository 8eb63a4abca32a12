// What vramcache-replay prints for a replay: a labelled block for one trace, a table row per
// trace for several, or one JSON object per trace. Every JSON field except wall_seconds and
// events_per_second is a pure function of the trace and the options; bench/replay/README.md
// explains each one.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "bench/replay/replay.h"

namespace vramcache {

struct ReplayReport {
  std::string trace;                    // the path as the user gave it
  std::string conf;                     // the --conf string as given ("" for defaults)
  std::string config;                   // the configuration in effect, in VRAMCACHE_CONF syntax
  std::string device;                   // "sim" or "cuda"
  std::string mode_requested = "auto";  // "auto", "vmm" or "segments": --mode / --conf's vmm
  std::optional<std::size_t> capacity;  // --capacity
  int repeat = 1;
  std::size_t trace_allocate_failures_skipped = 0;  // "allocate failure" lines in the log
  ReplayResult result;
  std::optional<MinCapacityResult> min_capacity;
  std::string plot_file;    // --plot: the SVG written for this replay
  double wall_seconds = 0;  // reading and parsing the file plus this replay (setup included)
  double read_seconds = 0;  // reading and parsing alone

  double events_per_second() const;         // events / wall_seconds: end to end
  double replay_events_per_second() const;  // events / result.replay_seconds: the passes alone
};

// One JSON object on one line, without a trailing newline.
std::string FormatReportJson(const ReplayReport& report);
// A labelled block of lines for a person.
std::string FormatReportText(const ReplayReport& report);
// A header and one row per report, for comparing traces.
std::string FormatReportTable(const std::vector<ReplayReport>& reports);
// --mode both: a compact row per trace and mode (utilization, minimum capacity ratio, device
// calls by kind, replay time), the rows of one trace next to each other.
std::string FormatModeTable(const std::vector<ReplayReport>& reports);

// Helpers shared with the tool's messages.
std::string FormatMiB(std::uint64_t bytes);         // "2782.2 MiB"
std::string FormatWithCommas(std::uint64_t value);  // "17,943"
std::string JsonQuote(absl::string_view text);      // "\"a\\\"b\""

}  // namespace vramcache
