// vramcache-replay --plot: the memory timeline a replay records (bucket maxima that keep every
// peak) and the SVG drawn from it (well formed, three lines, the reserved line's top at the
// peak reserved), and the files the tool writes for several traces and modes.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "allocator/trace/trace_builder.h"
#include "allocator/trace/trace_reader.h"
#include "allocator/trace/trace_writer.h"
#include "bench/replay/memory_plot.h"
#include "bench/replay/replay.h"
#include "bench/replay/replay_tool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/replay_tool_run.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;

constexpr double kBytesPerGiB = 1024.0 * 1024.0 * 1024.0;

ReplayOptions PlotOptions(std::size_t points) {
  ReplayOptions options;
  options.config.check_invariants = false;
  options.timeline_points = points;
  return options;
}

// Peak live 9 MiB + 1000 B (at the fifth event), then frees down to 1000 B.
Trace SmallTrace() {
  TraceBuilder builder("small");
  EXPECT_TRUE(builder.Allocate(0xa, 5 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xb, 1000, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xc, 3 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Free(0xa, 5 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Allocate(0xa, 6 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Free(0xc, 3 * kMiB, {}).ok());
  EXPECT_TRUE(builder.Free(0xa, 6 * kMiB, {}).ok());
  return std::move(builder).Finish();
}

std::uint64_t MaxOf(const std::vector<std::uint64_t>& values) {
  return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}

TEST(ReplayTimelineTest, NoTimelineUnlessAsked) {
  absl::StatusOr<ReplayResult> result = ReplayTrace(SmallTrace(), PlotOptions(0));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->timeline.events, 0u);
  EXPECT_TRUE(result->timeline.requested.empty());
  EXPECT_TRUE(result->timeline.reserved.empty());
}

TEST(ReplayTimelineTest, OneSamplePerEventWhenThereIsRoom) {
  absl::StatusOr<ReplayResult> result = ReplayTrace(SmallTrace(), PlotOptions(4000));
  ASSERT_TRUE(result.ok()) << result.status();
  const MemoryTimeline& timeline = result->timeline;
  EXPECT_EQ(timeline.events, 7u);
  EXPECT_EQ(timeline.events_per_bucket, 1u);
  EXPECT_EQ(timeline.requested,
            (std::vector<std::uint64_t>{5 * kMiB, 5 * kMiB + 1000, 8 * kMiB + 1000, 3 * kMiB + 1000,
                                        9 * kMiB + 1000, 6 * kMiB + 1000, 1000}));
  ASSERT_EQ(timeline.allocated.size(), 7u);
  ASSERT_EQ(timeline.reserved.size(), 7u);
  for (std::size_t i = 0; i < 7; ++i) {
    EXPECT_GE(timeline.allocated[i], timeline.requested[i]) << i;
    EXPECT_GE(timeline.reserved[i], timeline.allocated[i]) << i;
  }
  EXPECT_EQ(MaxOf(timeline.allocated), result->peak_allocated_bytes());
  EXPECT_EQ(MaxOf(timeline.reserved), result->peak_reserved_bytes());
}

TEST(ReplayTimelineTest, DownsamplingKeepsEveryPeak) {
  absl::StatusOr<Trace> trace =
      ReadRmmCsvFile(absl::StrCat(VRAMCACHE_SOURCE_DIR, "/bench/traces/gpt2_train.csv"));
  ASSERT_TRUE(trace.ok()) << trace.status();
  ReplayOptions options = PlotOptions(100);
  options.repeat = 2;
  absl::StatusOr<ReplayResult> result = ReplayTrace(*trace, options);
  ASSERT_TRUE(result.ok()) << result.status();
  const MemoryTimeline& timeline = result->timeline;
  EXPECT_EQ(timeline.events, 2 * trace->events.size());
  EXPECT_LE(timeline.requested.size(), 100u);
  EXPECT_GE(timeline.requested.size(), 99u);
  EXPECT_EQ(timeline.allocated.size(), timeline.requested.size());
  EXPECT_EQ(timeline.reserved.size(), timeline.requested.size());
  EXPECT_EQ(MaxOf(timeline.requested), result->peak_requested_bytes);
  EXPECT_EQ(MaxOf(timeline.allocated), result->peak_allocated_bytes());
  EXPECT_EQ(MaxOf(timeline.reserved), result->peak_reserved_bytes());
}

// --- the SVG ---

// The value of attribute `name` in the first element that starts with `element_start`.
std::string Attribute(const std::string& svg, const std::string& element_start,
                      const std::string& name) {
  const std::size_t element = svg.find(element_start);
  if (element == std::string::npos) return "";
  const std::size_t end = svg.find('>', element);
  const std::string key = absl::StrCat(" ", name, "=\"");
  const std::size_t at = svg.find(key, element);
  if (at == std::string::npos || at > end) return "";
  const std::size_t value = at + key.size();
  return svg.substr(value, svg.find('"', value) - value);
}

double Number(const std::string& text) {
  double value = 0;
  EXPECT_TRUE(absl::SimpleAtod(text, &value)) << "\"" << text << "\"";
  return value;
}

// Every element closed, in order: "<a><b/></a>" yes, "<a><b></a>" no. Text and attributes
// are not checked beyond having no stray '<'.
bool TagsBalance(const std::string& svg) {
  std::vector<std::string> open;
  std::size_t at = 0;
  while ((at = svg.find('<', at)) != std::string::npos) {
    const std::size_t end = svg.find('>', at);
    if (end == std::string::npos) return false;
    const std::string tag = svg.substr(at + 1, end - at - 1);
    if (tag.find('<') != std::string::npos) return false;
    if (tag.starts_with("/")) {
      if (open.empty() || open.back() != tag.substr(1)) return false;
      open.pop_back();
    } else if (!tag.ends_with("/")) {
      open.push_back(tag.substr(0, tag.find_first_of(" \n")));
    }
    at = end + 1;
  }
  return open.empty();
}

TEST(MemoryPlotTest, SvgIsWellFormedWithThreeLinesAndThePeakOnTop) {
  absl::StatusOr<ReplayResult> result = ReplayTrace(SmallTrace(), PlotOptions(4000));
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string svg = RenderMemoryPlotSvg(result->timeline, "small <&> \"trace\"");
  ASSERT_TRUE(svg.starts_with("<svg ")) << svg.substr(0, 80);
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  EXPECT_TRUE(TagsBalance(svg));
  EXPECT_THAT(svg, HasSubstr("small &lt;&amp;&gt; &quot;trace&quot;"));
  EXPECT_THAT(svg, HasSubstr(">requested</text>"));
  EXPECT_THAT(svg, HasSubstr(">allocated</text>"));
  EXPECT_THAT(svg, HasSubstr(">reserved</text>"));

  std::size_t polylines = 0;
  for (std::size_t at = 0; (at = svg.find("<polyline ", at)) != std::string::npos; ++at) {
    ++polylines;
  }
  EXPECT_EQ(polylines, 3u);

  // Back from pixels to GiB through the frame: its top is data-y-max-gib, its bottom 0.
  const double frame_y = Number(Attribute(svg, "<rect class=\"frame\"", "y"));
  const double frame_height = Number(Attribute(svg, "<rect class=\"frame\"", "height"));
  const double y_max = Number(Attribute(svg, "<rect class=\"frame\"", "data-y-max-gib"));
  ASSERT_GT(frame_height, 0);
  ASSERT_GT(y_max, 0);
  const auto max_gib = [&](const std::string& series) {
    const std::string points =
        Attribute(svg, absl::StrCat("<polyline data-series=\"", series, "\""), "points");
    EXPECT_FALSE(points.empty()) << series;
    double top = frame_y + frame_height;
    std::size_t count = 0;
    for (absl::string_view point : absl::StrSplit(points, ' ')) {
      const std::vector<std::string> xy = absl::StrSplit(point, ',');
      EXPECT_EQ(xy.size(), 2u) << point;
      if (xy.size() != 2) continue;
      top = std::min(top, Number(xy[1]));
      ++count;
    }
    EXPECT_EQ(count, result->timeline.events) << series;
    return (frame_y + frame_height - top) / frame_height * y_max;
  };
  const double pixel_gib = y_max / frame_height;  // one pixel, in GiB
  EXPECT_NEAR(max_gib("reserved"),
              static_cast<double>(result->peak_reserved_bytes()) / kBytesPerGiB, 0.01 * pixel_gib);
  EXPECT_NEAR(max_gib("requested"),
              static_cast<double>(result->peak_requested_bytes) / kBytesPerGiB, 0.01 * pixel_gib);
  // The peak sits below the top of the axis, not on the frame.
  EXPECT_LT(static_cast<double>(result->peak_reserved_bytes()) / kBytesPerGiB, y_max);
}

TEST(MemoryPlotTest, EmptyTimelineStillDraws) {
  const std::string svg = RenderMemoryPlotSvg(MemoryTimeline{}, "empty");
  EXPECT_TRUE(svg.starts_with("<svg "));
  EXPECT_TRUE(TagsBalance(svg));
}

// --- the tool ---

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

TEST(ReplayPlotToolTest, PlotPathsNameTheTraceAndTheMode) {
  ReplayToolOptions options;
  options.plot = "out/mem.svg";
  options.traces = {"a/gpt2_train.csv"};
  EXPECT_EQ(PlotPathFor(options, "a/gpt2_train.csv", "segments"), "out/mem.svg");
  options.traces = {"a/gpt2_train.csv", "b/resnet.csv"};
  EXPECT_EQ(PlotPathFor(options, "b/resnet.csv", "segments"), "out/mem-resnet.svg");
  options.mode = "both";
  EXPECT_EQ(PlotPathFor(options, "b/resnet.csv", "vmm"), "out/mem-resnet-vmm.svg");
  options.plot = "out.d/mem";
  EXPECT_EQ(PlotPathFor(options, "b/resnet.csv", "vmm"), "out.d/mem-resnet-vmm");
}

TEST(ReplayPlotToolTest, WritesOneSvgPerTraceAndMode) {
  const std::string dir = ::testing::TempDir();
  const std::string a = absl::StrCat(dir, "/plot_a.csv");
  const std::string b = absl::StrCat(dir, "/plot_b.csv");
  ASSERT_TRUE(WriteRmmCsvFile(SmallTrace(), a).ok());
  ASSERT_TRUE(WriteRmmCsvFile(SmallTrace(), b).ok());

  const std::string single = absl::StrCat(dir, "/plot_single.svg");
  const ToolRun one = RunTool({a, "--mode", "segments", "--plot", single, "--json"});
  ASSERT_EQ(one.status, kExitOk) << one.err;
  EXPECT_THAT(one.out, HasSubstr(absl::StrCat("\"plot_file\":\"", single, "\"")));
  const std::string svg = ReadFile(single);
  EXPECT_TRUE(svg.starts_with("<svg "));
  EXPECT_THAT(svg, HasSubstr("<title>plot_a, segments mode, utilization "));

  const std::string several = absl::StrCat(dir, "/plot_several.svg");
  const ToolRun two = RunTool({a, b, "--mode=both", "--plot", several});
  ASSERT_EQ(two.status, kExitOk) << two.err;
  for (const char* trace : {"plot_a", "plot_b"}) {
    EXPECT_TRUE(
        ReadFile(absl::StrCat(dir, "/plot_several-", trace, "-segments.svg")).starts_with("<svg "))
        << trace;
    // The virtual-memory mode is skipped, with a note, where this build refuses it.
    if (!absl::StrContains(two.err, "skipped: --mode vmm")) {
      EXPECT_TRUE(
          ReadFile(absl::StrCat(dir, "/plot_several-", trace, "-vmm.svg")).starts_with("<svg "))
          << trace;
    }
  }

  const ToolRun same_name = RunTool({a, absl::StrCat(dir, "/./plot_a.csv"), "--plot", single});
  EXPECT_EQ(same_name.status, kExitUsage);
  EXPECT_THAT(same_name.err, HasSubstr("--plot: two traces are named plot_a"));
  const ToolRun no_dir = RunTool({a, "--plot", "/nonexistent/dir/plot.svg"});
  EXPECT_EQ(no_dir.status, kExitFailure);
  EXPECT_THAT(no_dir.err, HasSubstr("--plot: /nonexistent/dir/plot.svg: cannot create"));
  std::remove(a.c_str());
  std::remove(b.c_str());
}

}  // namespace
}  // namespace vramcache
