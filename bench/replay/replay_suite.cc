// The --suite folder listing and table (see replay_suite.h).
#include "bench/replay/replay_suite.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace vramcache {
namespace {

constexpr double kBytesPerMiB = 1024.0 * 1024.0;

// Device calls of passes 2 and later, worst pass, per allocation of one pass, in percent: the
// serving target is a bound on it (calls a step keeps making, against the step's allocations).
double WorstLaterPassPercent(const ReplayReport& report) {
  const ReplayResult& r = report.result;
  if (r.per_pass.size() < 2 || r.allocations == 0) return 0.0;
  std::int64_t worst = 0;
  for (std::size_t pass = 1; pass < r.per_pass.size(); ++pass) {
    worst = std::max(worst, r.per_pass[pass].total());
  }
  const double allocations_per_pass =
      static_cast<double>(r.allocations) / static_cast<double>(r.per_pass.size());
  return 100.0 * static_cast<double>(worst) / allocations_per_pass;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ListSuiteTraces(const std::string& directory) {
  std::error_code error;
  std::filesystem::directory_iterator entries(directory, error);
  if (error) {
    return absl::NotFoundError(
        absl::StrCat("--suite ", directory, ": cannot list the folder: ", error.message()));
  }
  std::vector<std::filesystem::path> found;
  for (const std::filesystem::directory_entry& entry : entries) {
    std::error_code type_error;
    if (entry.is_regular_file(type_error) && entry.path().extension() == ".csv") {
      found.push_back(entry.path());
    }
  }
  if (found.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--suite ", directory, ": no *.csv trace in the folder"));
  }
  std::sort(found.begin(), found.end(),
            [](const std::filesystem::path& a, const std::filesystem::path& b) {
              return a.filename() < b.filename();
            });
  std::vector<std::string> paths;
  for (const std::filesystem::path& path : found) paths.push_back(path.string());
  return paths;
}

std::string SuiteTraceName(const std::string& path) {
  return std::filesystem::path(path).stem().string();
}

std::string FormatSuiteTable(const std::vector<ReplayReport>& reports) {
  std::size_t trace_width = 5;
  std::size_t passes = 1;
  for (const ReplayReport& report : reports) {
    trace_width = std::max(trace_width, SuiteTraceName(report.trace).size());
    passes = std::max(passes, report.result.per_pass.size());
  }
  std::vector<std::string> pass_names;
  for (std::size_t pass = 1; pass <= passes; ++pass) pass_names.push_back(absl::StrCat(pass));
  const std::string calls_header = absl::StrCat("calls in pass ", absl::StrJoin(pass_names, " / "));
  std::vector<std::string> rows;
  for (const ReplayReport& report : reports) {
    const ReplayResult& r = report.result;
    std::vector<std::string> calls;
    for (const PassDeviceCalls& pass : r.per_pass) calls.push_back(absl::StrCat(pass.total()));
    const std::size_t events_per_pass =
        r.per_pass.empty() ? r.events : r.events / r.per_pass.size();
    std::string min_ratio = "-";
    if (report.min_capacity.has_value() && r.peak_requested_bytes > 0) {
      min_ratio =
          absl::StrFormat("%.3f", static_cast<double>(report.min_capacity->min_capacity_bytes) /
                                      static_cast<double>(r.peak_requested_bytes));
    }
    rows.push_back(absl::StrFormat(
        "%-*s %-8s %9s %10.1f %7.4f %8s  %-*s %8.2f\n", trace_width, SuiteTraceName(report.trace),
        ReplayModeName(r.mode), FormatWithCommas(events_per_pass),
        static_cast<double>(r.peak_requested_bytes) / kBytesPerMiB, r.utilization(), min_ratio,
        calls_header.size(), absl::StrJoin(calls, " / "), WorstLaterPassPercent(report)));
  }
  std::string text = absl::StrFormat("%-*s %-8s %9s %10s %7s %8s  %-*s %8s\n", trace_width, "trace",
                                     "mode", "events", "req MiB", "util", "min/req",
                                     calls_header.size(), calls_header, "later %");
  for (const std::string& row : rows) text += row;
  return text;
}

}  // namespace vramcache
