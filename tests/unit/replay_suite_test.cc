// vramcache-replay --suite: a folder's traces replayed in both modes into one table (or JSON),
// sorted, with the minimum card and the device calls of each pass; bad folders and bad traces
// reported without hiding the good ones.
#include "bench/replay/replay_suite.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "allocator/core/config.h"
#include "allocator/trace/trace_builder.h"
#include "allocator/trace/trace_writer.h"
#include "bench/replay/replay_tool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/replay_tool_run.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A fresh, empty folder under the test's temporary directory.
std::string MakeFolder(const std::string& name) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  return path;
}

// A small training-like step: two overlapping buffers and a small one, all freed.
Trace StepTrace(std::size_t big_bytes) {
  TraceBuilder builder("step");
  EXPECT_TRUE(builder.Allocate(0xa, big_bytes, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xb, 1000, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xc, 3 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Free(0xa, big_bytes, {}).ok());
  EXPECT_TRUE(builder.Free(0xb, 1000, {}).ok());
  EXPECT_TRUE(builder.Free(0xc, 3 * kMiB, {}).ok());
  return std::move(builder).Finish();
}

// The folder every test reads: b_step.csv and a_step.csv (listed out of order on purpose), a
// file that is not a trace, and a sub-folder with a trace that must stay out of the suite.
std::string SuiteFolder() {
  const std::string folder = MakeFolder("replay_suite");
  EXPECT_TRUE(WriteRmmCsvFile(StepTrace(5 * kMiB), folder + "/b_step.csv").ok());
  EXPECT_TRUE(WriteRmmCsvFile(StepTrace(7 * kMiB), folder + "/a_step.csv").ok());
  std::FILE* notes = std::fopen((folder + "/README.md").c_str(), "w");
  EXPECT_NE(notes, nullptr);
  if (notes != nullptr) std::fclose(notes);
  std::filesystem::create_directories(folder + "/heldout");
  EXPECT_TRUE(WriteRmmCsvFile(StepTrace(kMiB), folder + "/heldout/c_step.csv").ok());
  return folder;
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

TEST(ReplaySuiteTest, ListsTheFoldersCsvFilesSortedAndNothingElse) {
  const std::string folder = SuiteFolder();
  absl::StatusOr<std::vector<std::string>> traces = ListSuiteTraces(folder);
  ASSERT_TRUE(traces.ok()) << traces.status();
  ASSERT_EQ(traces->size(), 2u);
  EXPECT_EQ(SuiteTraceName((*traces)[0]), "a_step");
  EXPECT_EQ(SuiteTraceName((*traces)[1]), "b_step");
}

TEST(ReplaySuiteTest, OneTableOfBothModesWithMinimumCardAndCallsPerPass) {
  const ToolRun run = RunTool({"--suite", SuiteFolder()});
  ASSERT_EQ(run.status, kExitOk) << run.err;
  const std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 5u) << run.out;  // header, 2 traces x 2 modes
  EXPECT_THAT(lines[0], HasSubstr("min/req"));
  EXPECT_THAT(lines[0], HasSubstr("calls in pass 1 / 2 / 3"));
  EXPECT_THAT(lines[0], HasSubstr("later %"));
  EXPECT_THAT(lines[1], HasSubstr("a_step"));
  EXPECT_THAT(lines[1], HasSubstr("segments"));
  EXPECT_THAT(lines[2], HasSubstr("a_step"));
  EXPECT_THAT(lines[2], HasSubstr("vmm"));
  EXPECT_THAT(lines[3], HasSubstr("b_step"));
  EXPECT_THAT(lines[4], HasSubstr("b_step"));
  EXPECT_THAT(run.out, Not(HasSubstr("c_step")));
  // Six events a pass; a step repeated on a warm cache makes no device call after the first.
  for (std::size_t row = 1; row < lines.size(); ++row) {
    EXPECT_THAT(lines[row], HasSubstr(" 6 ")) << lines[row];
    EXPECT_THAT(lines[row], HasSubstr(" / 0 / 0")) << lines[row];
  }
}

TEST(ReplaySuiteTest, JsonGivesEveryReplayWithMinimumCapacityAndThreePasses) {
  const ToolRun run = RunTool({"--suite", SuiteFolder(), "--json", "--mode", "vmm"});
  ASSERT_EQ(run.status, kExitOk) << run.err;
  EXPECT_EQ(run.out.front(), '[');
  EXPECT_EQ(std::count(run.out.begin(), run.out.end(), '\n'), 2) << run.out;  // 2 objects
  EXPECT_THAT(run.out, HasSubstr("a_step.csv\""));
  EXPECT_THAT(run.out, HasSubstr("\"mode\":\"vmm\""));
  EXPECT_THAT(run.out, Not(HasSubstr("\"mode\":\"segments\"")));
  EXPECT_THAT(run.out, HasSubstr("\"repeat\":3,\"events\":18,"));
  EXPECT_THAT(run.out, HasSubstr("\"min_capacity_to_peak_requested\":"));
}

TEST(ReplaySuiteTest, RepeatAndTracesCanBeAdded) {
  const std::string folder = SuiteFolder();
  const ToolRun run = RunTool({"--suite", folder, folder + "/heldout/c_step.csv", "--repeat", "2"});
  ASSERT_EQ(run.status, kExitOk) << run.err;
  EXPECT_THAT(run.out, HasSubstr("calls in pass 1 / 2 "));
  EXPECT_THAT(run.out, Not(HasSubstr("1 / 2 / 3")));
  EXPECT_THAT(run.out, HasSubstr("c_step"));
}

// A folder that is not there, or has no trace, is an error naming it; the good folders and
// traces are still replayed and printed, and the exit status says something failed.
TEST(ReplaySuiteTest, BadFoldersAndTracesAreClearErrorsAndTheGoodOnesStillRun) {
  const std::string good = SuiteFolder();
  const std::string empty = MakeFolder("replay_suite_empty");
  const std::string bad_traces = MakeFolder("replay_suite_bad");
  std::FILE* bad = std::fopen((bad_traces + "/broken.csv").c_str(), "w");
  ASSERT_NE(bad, nullptr);
  std::fputs("Thread,Time,Action,Pointer,Size,Stream\n1,00:00:00.000001,free,0x1,8,0\n", bad);
  std::fclose(bad);
  ASSERT_TRUE(WriteRmmCsvFile(StepTrace(kMiB), bad_traces + "/fine.csv").ok());

  const ToolRun run = RunTool(
      {"--suite", "/nonexistent/suite", "--suite", empty, "--suite", good, "--suite", bad_traces});
  EXPECT_EQ(run.status, kExitFailure);
  EXPECT_THAT(run.err, HasSubstr("--suite /nonexistent/suite: cannot list the folder"));
  EXPECT_THAT(run.err, HasSubstr(absl::StrCat("--suite ", empty, ": no *.csv trace")));
  EXPECT_THAT(run.err, HasSubstr("broken.csv:2:"));
  EXPECT_THAT(run.out, HasSubstr("a_step"));
  EXPECT_THAT(run.out, HasSubstr("b_step"));
  EXPECT_THAT(run.out, HasSubstr("fine"));

  const ToolRun nothing = RunTool({"--suite", "/nonexistent/suite"});
  EXPECT_EQ(nothing.status, kExitFailure);
  EXPECT_TRUE(nothing.out.empty()) << nothing.out;
}

TEST(ReplaySuiteTest, ArgumentErrorsExitTwo) {
  EXPECT_EQ(RunTool({"--suite"}).status, kExitUsage);
  EXPECT_EQ(RunTool({"--suite", ""}).status, kExitUsage);
  const ToolRun plot = RunTool({"--suite", SuiteFolder(), "--plot", "x.svg"});
  EXPECT_EQ(plot.status, kExitUsage);
  EXPECT_THAT(plot.err, HasSubstr("--plot cannot be combined with --suite"));
}

}  // namespace
}  // namespace vramcache
