// Guards behaviour across refactors of the core: the golden runs (tests/golden/golden_runs.h)
// must give exactly the committed results, statistics and device calls alike. A difference is
// reported at its first line, with the run it belongs to.
//
// Regenerate after an intended behaviour change (never to make a refactor pass):
//   tests/golden/regenerate.sh
// which builds this test and runs it with VRAMCACHE_GOLDEN_UPDATE=1 (writes the files instead
// of comparing them).
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/golden/golden_runs.h"

namespace vramcache {
namespace {

const std::string kSourceDir = VRAMCACHE_SOURCE_DIR;
const std::string kSummaryPath = kSourceDir + "/tests/golden/golden_results.txt";
const std::string kDeviceCallsPath = kSourceDir + "/tests/golden/device_calls.txt";

bool UpdateRequested() {
  const char* value = std::getenv("VRAMCACHE_GOLDEN_UPDATE");
  return value != nullptr && std::string(value) == "1";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// Empty when equal; else where the first difference is, and in which run.
std::string FirstDifference(const std::string& expected, const std::string& actual) {
  const std::vector<std::string> want = absl::StrSplit(expected, '\n');
  const std::vector<std::string> got = absl::StrSplit(actual, '\n');
  std::string run = "(before the first run)";
  for (std::size_t i = 0; i < want.size() || i < got.size(); ++i) {
    const std::string* w = i < want.size() ? &want[i] : nullptr;
    const std::string* g = i < got.size() ? &got[i] : nullptr;
    if (w != nullptr && g != nullptr && *w == *g) {
      if (w->rfind("run ", 0) == 0) run = *w;
      continue;
    }
    std::ostringstream message;
    message << "line " << i + 1 << ", in \"" << run
            << "\":\n  golden: " << (w != nullptr ? *w : "(end of file)")
            << "\n  now:    " << (g != nullptr ? *g : "(end of file)");
    return message.str();
  }
  return "";
}

TEST(GoldenTest, RunsMatchTheGoldenFiles) {
  absl::StatusOr<GoldenText> text;
  ASSERT_NO_FATAL_FAILURE(text = RunGoldenRuns(kSourceDir));
  ASSERT_TRUE(text.ok()) << text.status();
  if (UpdateRequested()) {
    ASSERT_NO_FATAL_FAILURE(WriteFile(kSummaryPath, text->summary));
    ASSERT_NO_FATAL_FAILURE(WriteFile(kDeviceCallsPath, text->device_calls));
    GTEST_SKIP() << "wrote " << kSummaryPath << " and " << kDeviceCallsPath;
  }
  const std::string summary = ReadFile(kSummaryPath);
  ASSERT_FALSE(summary.empty()) << kSummaryPath << " is missing; see tests/golden/regenerate.sh";
  EXPECT_EQ(FirstDifference(summary, text->summary), "")
      << "statistics or device calls differ from " << kSummaryPath;
  EXPECT_EQ(FirstDifference(ReadFile(kDeviceCallsPath), text->device_calls), "")
      << "the sequence of device calls differs from " << kDeviceCallsPath;
}

}  // namespace
}  // namespace vramcache
