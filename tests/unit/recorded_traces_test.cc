// The recorded workload traces of bench/traces/workloads and bench/traces/heldout (issue 19):
// each reads, replays in virtual-memory mode with no failed allocation, and has the peak live
// bytes its README row gives, so a re-recording that changed a trace cannot go unnoticed.
#include <string>

#include "absl/strings/str_cat.h"
#include "allocator/trace/trace_reader.h"
#include "bench/replay/replay.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

struct RecordedTrace {
  const char* path;      // under bench/traces
  std::size_t events;    // the README's figure
  double peak_live_mib;  // the README's figure, to 0.1 MiB
};

class RecordedTraceTest : public ::testing::TestWithParam<RecordedTrace> {};

TEST_P(RecordedTraceTest, ReplaysCleanlyWithTheReadmeFigures) {
  absl::StatusOr<Trace> trace =
      ReadRmmCsvFile(absl::StrCat(VRAMCACHE_SOURCE_DIR, "/bench/traces/", GetParam().path));
  ASSERT_TRUE(trace.ok()) << trace.status();
  ReplayOptions options;
  options.config.check_invariants = false;  // the replay measures; the core tests check
  options.config.vmm = VmmMode::kOn;
  absl::StatusOr<ReplayResult> result = ReplayTrace(*trace, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->events, GetParam().events);
  EXPECT_EQ(result->failed_allocations, 0u);
  EXPECT_NEAR(static_cast<double>(result->peak_requested_bytes) / (1024.0 * 1024.0),
              GetParam().peak_live_mib, 0.05);
  EXPECT_EQ(static_cast<std::int64_t>(result->peak_requested_bytes),
            result->stats.requested_bytes.all().peak);
}

INSTANTIATE_TEST_SUITE_P(
    Readme, RecordedTraceTest,
    ::testing::Values(RecordedTrace{"workloads/encoder_serve.csv", 22492, 531.1},
                      RecordedTrace{"heldout/densenet121_train.csv", 37692, 603.4},
                      RecordedTrace{"workloads/gpt_bf16_autocast_train.csv", 11088, 667.2},
                      RecordedTrace{"workloads/gpt_checkpoint_accum_train.csv", 21294, 547.7},
                      RecordedTrace{"workloads/vit_b16_train.csv", 19086, 1601.2},
                      RecordedTrace{"heldout/lstm_seq2seq_train.csv", 25356, 748.2},
                      RecordedTrace{"heldout/mobilenet_serve.csv", 28004, 152.7},
                      RecordedTrace{"heldout/unet_train.csv", 11924, 530.3}),
    [](const ::testing::TestParamInfo<RecordedTrace>& info) {
      std::string name = info.param.path;
      name = name.substr(name.find('/') + 1);
      return name.substr(0, name.find('.'));
    });

}  // namespace
}  // namespace vramcache
