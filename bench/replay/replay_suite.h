// vramcache-replay's --suite: which traces a folder holds, and the one table that compares them
// in both modes (utilization, minimum card, device calls per pass of a repeated run).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/replay/replay_report.h"

namespace vramcache {

// Passes a --suite run makes unless --repeat says otherwise: enough to see whether the passes
// after the first still call the device.
inline constexpr int kSuiteDefaultRepeat = 3;

// Every regular file directly in `directory` whose name ends in .csv, as paths, sorted by file
// name. Sub-folders are not entered, so a folder of held-out traces inside a suite stays out of
// it. NotFound or FailedPrecondition, naming the folder and why, when it cannot be listed or
// holds no .csv file.
absl::StatusOr<std::vector<std::string>> ListSuiteTraces(const std::string& directory);

// A trace's name in the table: the file name without its folder and .csv.
std::string SuiteTraceName(const std::string& path);

// The suite table: one row per trace and mode, the rows of one trace next to each other.
// Columns: trace, mode, events of one pass, peak requested, utilization over all passes, minimum
// card / peak requested (reports need min_capacity), device calls in each pass, and the most
// calls any later pass made as a percentage of one pass's allocations.
std::string FormatSuiteTable(const std::vector<ReplayReport>& reports);

}  // namespace vramcache
