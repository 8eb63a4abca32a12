// The RMM CSV reader and writer: every accepted spelling, every rejected line (with its line
// number in the message), "allocate failure" skipping, round trips through the writer, and the
// real traces against the counts and peaks their README states.
#include "allocator/trace/trace_reader.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "allocator/trace/rmm_csv_line.h"
#include "allocator/trace/trace.h"
#include "allocator/trace/trace_builder.h"
#include "allocator/trace/trace_writer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;

constexpr char kHeader[] = "Thread,Time,Action,Pointer,Size,Stream\n";

absl::StatusOr<Trace> Parse(const std::string& body) {
  return ParseRmmCsv(absl::StrCat(kHeader, body), "t.csv");
}

// The message of a parse that must fail, for matching against.
std::string ErrorOf(const std::string& text) {
  absl::StatusOr<Trace> trace = ParseRmmCsv(text, "t.csv");
  EXPECT_FALSE(trace.ok()) << "parsed:\n" << text;
  if (trace.ok()) return "";
  EXPECT_EQ(trace.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(trace.status().message());
}

TEST(TraceReaderTest, ParsesEventsAndTables) {
  absl::StatusOr<Trace> trace = Parse(
      "1,00:00:00.000105,allocate,0x29c0c480,288,0\n"
      "2,00:00:01.5,allocate,0x1000,4096,0x7f\n"
      "1,01:02:03.000133,free,0x29c0c480,288,0\n"
      "1,01:02:03.000200,allocate,0x29c0c480,64,12\n");
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->events.size(), 4u);
  EXPECT_EQ(trace->source, "t.csv");
  EXPECT_EQ(trace->pointer_values, (std::vector<std::uint64_t>{0x29c0c480, 0x1000}));
  EXPECT_EQ(trace->thread_values, (std::vector<std::uint64_t>{1, 2}));

  const TraceEvent& first = trace->events[0];
  EXPECT_EQ(first.kind, TraceEventKind::kAllocate);
  EXPECT_EQ(first.size, 288u);
  EXPECT_EQ(first.pointer_id, 0u);
  EXPECT_EQ(first.thread_id, 0u);
  EXPECT_EQ(first.time_us, 105);
  EXPECT_EQ(first.stream, 0u);

  EXPECT_EQ(trace->events[1].time_us, 1'500'000);  // one fraction digit means tenths
  EXPECT_EQ(trace->events[1].stream, 0x7fu);
  EXPECT_EQ(trace->events[1].thread_id, 1u);
  EXPECT_EQ(trace->events[2].kind, TraceEventKind::kFree);
  EXPECT_EQ(trace->events[2].time_us, ((1 * 60 + 2) * 60 + 3) * 1'000'000LL + 133);
  // A pointer value reused after its free keeps its id; decimal stream stays decimal.
  EXPECT_EQ(trace->events[3].pointer_id, 0u);
  EXPECT_EQ(trace->events[3].stream, 12u);
  EXPECT_EQ(trace->NumAllocations(), 3u);
  EXPECT_EQ(trace->NumFrees(), 1u);
  EXPECT_EQ(PeakLiveBytes(*trace), 288u + 4096u);
}

TEST(TraceReaderTest, AcceptsRmmPrintfSpellings) {
  // Newer RMM writes pointer and stream with %llx: hex without a prefix.
  absl::StatusOr<Trace> trace = Parse(
      "140213,00:00:00.000001,allocate,7f3a00000000,256,7f3aabcd\n"
      "140213,00:00:00.000002,free,0x7F3A00000000,256,7f3aabcd\n");
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->pointer_values[0], 0x7f3a00000000u);
  EXPECT_EQ(trace->events[1].pointer_id, 0u);
  EXPECT_EQ(trace->events[0].stream, 0x7f3aabcdu);
  EXPECT_EQ(trace->thread_values[0], 140213u);
}

TEST(TraceReaderTest, ToleratesCrLfBomBlankLinesAndSpaces) {
  absl::StatusOr<Trace> trace = ParseRmmCsv(
      "\xEF\xBB\xBFThread,Time,Action,Pointer,Size,Stream\r\n"
      "1,00:00:00.000001,allocate,0x10, 8 ,0\r\n"
      "\r\n"
      "1,00:00:00.000002,free,0x10,8,0\r\n\n\n",
      "t.csv");
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->events.size(), 2u);
  EXPECT_EQ(trace->events[0].size, 8u);
}

TEST(TraceReaderTest, ZeroByteAllocationsAreEvents) {
  // PyTorch asks for empty storages; the real traces hold thousands of them.
  absl::StatusOr<Trace> trace = Parse(
      "1,00:00:00.000001,allocate,0x10,0,0\n"
      "1,00:00:00.000002,free,0x10,0,0\n");
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->events.size(), 2u);
  EXPECT_EQ(PeakLiveBytes(*trace), 0u);
}

TEST(TraceReaderTest, HeaderOnlyIsAnEmptyTrace) {
  absl::StatusOr<Trace> trace = Parse("");
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_TRUE(trace->events.empty());
}

TEST(TraceReaderTest, MissingHeaderIsAnError) {
  EXPECT_THAT(ErrorOf("1,00:00:00.000001,allocate,0x10,8,0\n"),
              HasSubstr("t.csv:1: expected the header \"Thread,Time,Action,Pointer,Size,Stream\""));
  EXPECT_THAT(ErrorOf(""), HasSubstr("t.csv: empty: no header"));
  EXPECT_THAT(ErrorOf("\n\n"), HasSubstr("no header"));
  EXPECT_THAT(ErrorOf("\nThread,Time,Action\n"), HasSubstr("t.csv:2: expected the header"));
}

struct BadLineCase {
  std::string body;  // after the header, so line numbers start at 2
  std::string expected;
};

class TraceReaderBadLineTest : public ::testing::TestWithParam<BadLineCase> {};

TEST_P(TraceReaderBadLineTest, NamesFileLineAndProblem) {
  EXPECT_THAT(ErrorOf(absl::StrCat(kHeader, GetParam().body)), HasSubstr(GetParam().expected));
}

constexpr char kGoodLine[] = "1,00:00:00.000001,allocate,0x10,8,0\n";

INSTANTIATE_TEST_SUITE_P(
    EveryError, TraceReaderBadLineTest,
    ::testing::Values(
        BadLineCase{"1,00:00:00.000001,allocate,0x10,8\n",
                    "t.csv:2: expected 6 comma-separated fields but found 5"},
        BadLineCase{absl::StrCat(kGoodLine, "1,00:00:00.000001,allocate,0x20,8,0,9\n"),
                    "t.csv:3: expected 6 comma-separated fields but found 7"},
        BadLineCase{"x,00:00:00.000001,allocate,0x10,8,0\n", "t.csv:2: bad thread \"x\""},
        BadLineCase{"1,00:00:00,allocate,0x10,8,0\n", "t.csv:2: bad time \"00:00:00\""},
        BadLineCase{"1,00:61:00.000001,allocate,0x10,8,0\n", "t.csv:2: bad time"},
        BadLineCase{"1,00:00:00.0000001,allocate,0x10,8,0\n", "t.csv:2: bad time"},
        BadLineCase{"1,00:00:00.00a,allocate,0x10,8,0\n", "t.csv:2: bad time"},
        BadLineCase{"1,00:00:00.000001,malloc,0x10,8,0\n",
                    "t.csv:2: unknown action \"malloc\" (expected allocate, free or allocate "
                    "failure)"},
        BadLineCase{"1,00:00:00.000001,allocate,0xZZ,8,0\n", "t.csv:2: bad pointer \"0xZZ\""},
        BadLineCase{"1,00:00:00.000001,allocate,,8,0\n", "t.csv:2: bad pointer \"\""},
        BadLineCase{"1,00:00:00.000001,allocate,0x10,-8,0\n",
                    "t.csv:2: bad size \"-8\" (expected a decimal byte count)"},
        BadLineCase{"1,00:00:00.000001,allocate,0x10,8k,0\n", "t.csv:2: bad size \"8k\""},
        BadLineCase{"1,00:00:00.000001,allocate,0x10,99999999999999999999,0\n",
                    "t.csv:2: bad size"},
        BadLineCase{"1,00:00:00.000001,allocate,0x10,8,s1\n", "t.csv:2: bad stream \"s1\""},
        BadLineCase{absl::StrCat(kGoodLine, kGoodLine),
                    "t.csv:3: allocate of pointer 0x10, which is already live"},
        BadLineCase{"1,00:00:00.000001,free,0x10,8,0\n",
                    "t.csv:2: free of pointer 0x10, which is not live (never allocated)"},
        BadLineCase{absl::StrCat(kGoodLine, "1,00:00:00.000002,free,0x10,8,0\n",
                                 "1,00:00:00.000003,free,0x10,8,0\n"),
                    "t.csv:4: free of pointer 0x10, which is not live (already freed)"},
        BadLineCase{absl::StrCat(kGoodLine, "1,00:00:00.000002,free,0x10,16,0\n"),
                    "t.csv:3: free of pointer 0x10 with size 16, but it was allocated with "
                    "size 8"},
        // Larger than any device (2^48 bytes): named with its line, not left to the replay.
        BadLineCase{absl::StrCat(kGoodLine, "1,00:00:00.000002,allocate,0x20,281474976710657,0\n"),
                    "t.csv:3: size 281474976710657 of pointer 0x20 is larger than any device"}));

// Control bytes in a bad line are escaped in the message, never echoed raw to a terminal.
TEST(TraceReaderTest, NulAndControlBytesInErrorsAreEscaped) {
  const std::string nul_action =
      absl::StrCat(kHeader, std::string("1,00:00:00.000001,allo\0cate,0x10,8,0\n", 37));
  const std::string message = ErrorOf(nul_action);
  EXPECT_EQ(message.find('\0'), std::string::npos) << "raw NUL in the message";
  EXPECT_THAT(message, HasSubstr("unknown action \"allo\\000cate\""));
  const std::string escape_header = std::string("Thread\x1b[31m,Time\n");
  const std::string header_message = ErrorOf(escape_header);
  EXPECT_EQ(header_message.find('\x1b'), std::string::npos) << header_message;
  EXPECT_THAT(header_message, HasSubstr("Thread\\033[31m,Time"));
}

TEST(TraceReaderTest, AllocateFailureIsSkippedWithItsFree) {
  absl::StatusOr<Trace> trace = Parse(
      "1,00:00:00.000001,allocate,0x10,8,0\n"
      "1,00:00:00.000002,allocate failure,0x20,1099511627776,0\n"
      "1,00:00:00.000003,free,0x20,1099511627776,0\n"
      "1,00:00:00.000004,allocate failure,0x0,1099511627776,0\n"
      "1,00:00:00.000005,free,0x10,8,0\n");
  ASSERT_TRUE(trace.ok()) << trace.status();
  ASSERT_EQ(trace->events.size(), 2u);
  EXPECT_EQ(trace->skipped_failed_allocations, 2u);
  EXPECT_EQ(trace->skipped_frees_of_failed, 1u);
  EXPECT_EQ(trace->pointer_values, (std::vector<std::uint64_t>{0x10}));
}

TEST(TraceReaderTest, OnlyOneFreeOfAFailedPointerIsSkipped) {
  EXPECT_THAT(ErrorOf(absl::StrCat(kHeader,
                                   "1,00:00:00.000002,allocate failure,0x20,64,0\n"
                                   "1,00:00:00.000003,free,0x20,64,0\n"
                                   "1,00:00:00.000004,free,0x20,64,0\n")),
              HasSubstr("t.csv:4: free of pointer 0x20, which is not live"));
  // A pointer allocated successfully after its failure is live again and freed normally.
  absl::StatusOr<Trace> trace = Parse(
      "1,00:00:00.000002,allocate failure,0x20,64,0\n"
      "1,00:00:00.000003,allocate,0x20,32,0\n"
      "1,00:00:00.000004,free,0x20,32,0\n");
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->events.size(), 2u);
  EXPECT_EQ(trace->skipped_frees_of_failed, 0u);
}

TEST(TraceReaderTest, BuilderRefusesWithoutChangingTheTrace) {
  TraceBuilder builder("synthetic");
  ASSERT_TRUE(builder.Allocate(0x10, 8, {}).ok());
  EXPECT_FALSE(builder.Allocate(0x10, 8, {}).ok());
  EXPECT_FALSE(builder.Free(0x10, 4, {}).ok());
  EXPECT_FALSE(builder.Free(0x99, 4, {}).ok());
  EXPECT_EQ(builder.num_events(), 1u);
  EXPECT_EQ(builder.num_live(), 1u);
  ASSERT_TRUE(builder.Free(0x10, 8, {}).ok());
  EXPECT_EQ(builder.num_live(), 0u);
  Trace trace = std::move(builder).Finish();
  EXPECT_EQ(trace.events.size(), 2u);
  EXPECT_EQ(trace.source, "synthetic");
}

// The fast parser on `line` followed by the newline it requires: where it says the next line
// starts (relative to the line's start), or -1 when it declines.
std::ptrdiff_t FastParse(absl::string_view line, RmmCsvLine* parsed) {
  const std::string terminated = absl::StrCat(line, "\n");
  const char* next = TryParseCanonicalRmmCsvLine(terminated.data(), parsed);
  return next == nullptr ? -1 : next - terminated.data();
}

// The reader tries the fast parser first; it must accept only what the general one accepts, and
// read it the same way.
TEST(RmmCsvLineTest, FastAndGeneralParsersAgree) {
  const char* const canonical[] = {
      "1,00:00:00.000105,allocate,0x29c0c480,288,0",
      "1,00:00:00.000105,allocate,0x29c0c480,288,0\r",
      "140213,123456:59:59.9,free,7f3a00000000,0,0x7F3A",
      "9223372036854775807,00:00:00.123456,allocate,0xffffffffffffffff,1844674407370955161,99",
  };
  for (const char* text : canonical) {
    const absl::string_view line(text);
    RmmCsvLine fast;
    EXPECT_EQ(FastParse(line, &fast), static_cast<std::ptrdiff_t>(line.size() + 1)) << text;
    absl::string_view without_cr = line;
    if (absl::EndsWith(without_cr, "\r")) without_cr.remove_suffix(1);
    absl::StatusOr<RmmCsvLine> general = ParseRmmCsvLine(without_cr);
    ASSERT_TRUE(general.ok()) << text << ": " << general.status();
    EXPECT_EQ(*general, fast) << text;
  }
  // Valid but not canonical: the fast parser declines, the general one accepts.
  for (const char* text : {"1,00:00:00.1,allocate failure,0x0,64,0", "1, 00:00:00.1,free,0x10,8,0",
                           "1,00:00:00.1,free,0x10,8,7f3a", "1,00:00:00.1,free,0x10,8,0 ",
                           "1,00:00:00.1,free,000000000000000000010,8,0"}) {
    RmmCsvLine fast;
    EXPECT_EQ(FastParse(text, &fast), -1) << text;
    EXPECT_TRUE(ParseRmmCsvLine(text).ok()) << text;
  }
  // Invalid: both refuse, the fast one without reading past the newline (asan checks that).
  for (const char* text : {"1,00:00:00.1234567,free,0x10,8,0",
                           "1,00:60:00.1,free,0x10,8,0",
                           "1,00:0:00.1,free,0x10,8,0",
                           "1,00:00:00.1,free,0x,8,0",
                           "1,00:00:00.1,free,0x10,8,0,",
                           "1,00:00:00.1,free,0x10,8,0x",
                           "1,00:00:00.1,free,0x10,18446744073709551616,0",
                           "1,1234567:00:00.1,free,0x10,8,0",
                           "1,00:00:00.1,free,0x10000000000000000,8,0",
                           "1",
                           "1,",
                           "1,00:00:00.1,",
                           "1,00:00:00.1,alloc",
                           "1,00:00:00.1,free,0",
                           "1,00:00:00.1,fre",
                           "1,00:00:00.1,free,0x10,8,",
                           "",
                           "1,0",
                           "1,00:0",
                           "1,00:00:0"}) {
    RmmCsvLine fast;
    EXPECT_EQ(FastParse(text, &fast), -1) << text;
    EXPECT_FALSE(ParseRmmCsvLine(text).ok()) << text;
  }
}

TEST(TraceReaderTest, LastLineNeedsNoNewline) {
  for (const char* ending : {"", "\r"}) {
    absl::StatusOr<Trace> trace = Parse(absl::StrCat(
        "1,00:00:00.000001,allocate,0x10,8,0\n1,00:00:00.000002,free,0x10,8,0", ending));
    ASSERT_TRUE(trace.ok()) << trace.status();
    EXPECT_EQ(trace->events.size(), 2u);
    EXPECT_EQ(trace->events[1].time_us, 2);
  }
}

TEST(TraceReaderTest, ReadsFromAPipe) {
  // Files that cannot be mapped (pipes, /dev/stdin) are read instead.
  const std::string path = absl::StrCat(::testing::TempDir(), "/trace_reader_test.fifo");
  std::remove(path.c_str());
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  std::thread writer([&path] {
    std::FILE* fifo = std::fopen(path.c_str(), "w");
    if (fifo == nullptr) return;
    std::fputs(kHeader, fifo);
    for (int i = 0; i < 3000; ++i) {  // more than one pipe buffer
      std::fprintf(fifo, "1,00:00:00.%06d,allocate,0x%x,8,0\n1,00:00:00.%06d,free,0x%x,8,0\n", i, i,
                   i, i);
    }
    std::fclose(fifo);
  });
  absl::StatusOr<Trace> trace = ReadRmmCsvFile(path);
  writer.join();
  std::remove(path.c_str());
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->events.size(), 6000u);
}

TEST(TraceReaderTest, EmptyFileHasNoHeader) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/trace_reader_empty.csv");
  std::fclose(std::fopen(path.c_str(), "w"));
  absl::StatusOr<Trace> trace = ReadRmmCsvFile(path);
  std::remove(path.c_str());
  EXPECT_THAT(trace.status().message(), HasSubstr("empty: no header"));
}

TEST(TraceWriterTest, WritesTheCanonicalForm) {
  const std::string text = absl::StrCat(kHeader,
                                        "1,00:00:00.000105,allocate,0x29c0c480,288,0\n"
                                        "7,100:59:59.999999,allocate,0x0,0,127\n"
                                        "1,101:00:00.000000,free,0x29c0c480,288,0\n");
  absl::StatusOr<Trace> trace = ParseRmmCsv(text, "t.csv");
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(FormatRmmCsv(*trace), text);
}

TEST(TraceWriterTest, RoundTripsOtherSpellings) {
  absl::StatusOr<Trace> trace = Parse(
      "140213,00:00:00.5,allocate,7f3a00000000,256,0x7f3aabcd\r\n"
      "140213,00:00:01.000002,allocate failure,0x0,256,0\n"
      "9,00:00:02.000002,free,0x7F3A00000000,256,7f3aabcd\n");
  ASSERT_TRUE(trace.ok()) << trace.status();
  absl::StatusOr<Trace> again = ParseRmmCsv(FormatRmmCsv(*trace), "again.csv");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->events, trace->events);
  EXPECT_EQ(again->pointer_values, trace->pointer_values);
  EXPECT_EQ(again->thread_values, trace->thread_values);
}

TEST(TraceWriterTest, FileRoundTripAndFileErrors) {
  absl::StatusOr<Trace> trace = Parse(
      "1,00:00:00.000001,allocate,0x10,8,0\n"
      "1,00:00:00.000002,free,0x10,8,0\n");
  ASSERT_TRUE(trace.ok());
  const std::string path = absl::StrCat(::testing::TempDir(), "/trace_writer_test.csv");
  ASSERT_TRUE(WriteRmmCsvFile(*trace, path).ok());
  absl::StatusOr<Trace> back = ReadRmmCsvFile(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->events, trace->events);
  EXPECT_EQ(back->source, path);
  std::remove(path.c_str());

  absl::StatusOr<Trace> missing = ReadRmmCsvFile("/nonexistent/dir/trace.csv");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("/nonexistent/dir/trace.csv: cannot open"));
  EXPECT_FALSE(ReadRmmCsvFile(::testing::TempDir()).ok());
  EXPECT_FALSE(WriteRmmCsvFile(*trace, "/nonexistent/dir/out.csv").ok());
}

struct RealTrace {
  const char* file;
  std::size_t events;
  double peak_live_mib;  // as the README states it, to 0.1 MiB
};

class RealTraceTest : public ::testing::TestWithParam<RealTrace> {};

TEST_P(RealTraceTest, MatchesTheReadme) {
  const std::string path = absl::StrCat(VRAMCACHE_SOURCE_DIR, "/bench/traces/", GetParam().file);
  absl::StatusOr<Trace> trace = ReadRmmCsvFile(path);
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(trace->events.size(), GetParam().events);
  const double peak_mib = static_cast<double>(PeakLiveBytes(*trace)) / (1024.0 * 1024.0);
  EXPECT_NEAR(peak_mib, GetParam().peak_live_mib, 0.05);

  absl::StatusOr<Trace> again = ParseRmmCsv(FormatRmmCsv(*trace), "again.csv");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->events, trace->events);
  EXPECT_EQ(again->pointer_values, trace->pointer_values);
}

INSTANTIATE_TEST_SUITE_P(Readme, RealTraceTest,
                         ::testing::Values(RealTrace{"resnet50_train.csv", 14502, 904.9},
                                           RealTrace{"gpt2_train.csv", 17943, 2782.2},
                                           RealTrace{"gpt2_generate.csv", 83962, 834.1}),
                         [](const ::testing::TestParamInfo<RealTrace>& info) {
                           std::string name = info.param.file;
                           return name.substr(0, name.find('.'));
                         });

}  // namespace
}  // namespace vramcache
