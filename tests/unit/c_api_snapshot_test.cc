// The snapshot as C structs (vramcache_snapshot_take): segments, their blocks with state and
// pool, and the history, on the simulated device in segment mode (PyTorch's segment sizes);
// a bad or repeated release is an error, not a double free.
#include <cstdint>
#include <string>
#include <vector>

#include "allocator/api/vramcache.h"
#include "allocator/core/config.h"
#include "gtest/gtest.h"

namespace {

using vramcache::kMiB;

void* const kSideStream = reinterpret_cast<void*>(7);

class CApiSnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override { Configure(""); }
  void TearDown() override { EXPECT_EQ(vramcache_shutdown(), 0); }

  static void Configure(const std::string& extra) {
    ASSERT_EQ(vramcache_shutdown(), 0);
    const std::string conf = "device:sim,sim_capacity:1GiB,vmm:off" + extra;
    ASSERT_EQ(vramcache_configure(conf.c_str()), 0) << vramcache_last_error();
  }

  // The block at `address` and the segment holding it (fails the test when there is none).
  static const vramcache_block_info* BlockAt(const vramcache_snapshot* s, void* address,
                                             const vramcache_segment_info** segment) {
    for (std::size_t i = 0; i < s->segment_count; ++i) {
      const vramcache_segment_info& seg = s->segments[i];
      for (std::size_t b = seg.first_block; b < seg.first_block + seg.block_count; ++b) {
        if (s->blocks[b].address == reinterpret_cast<std::uintptr_t>(address)) {
          *segment = &seg;
          return &s->blocks[b];
        }
      }
    }
    ADD_FAILURE() << "no block at " << address;
    return nullptr;
  }
};

TEST_F(CApiSnapshotTest, SegmentsAndBlocksFieldByField) {
  void* small = vramcache_try_malloc(1000, 0, nullptr);
  void* large = vramcache_try_malloc(3 * kMiB, 0, nullptr);
  void* side = vramcache_try_malloc(3 * kMiB, 0, nullptr);
  ASSERT_TRUE(small && large && side) << vramcache_last_error();
  ASSERT_EQ(vramcache_record_stream(side, kSideStream), 0) << vramcache_last_error();
  vramcache_free(side, 3 * kMiB, 0, nullptr);

  const vramcache_snapshot* s = vramcache_snapshot_take(/*include_traces=*/0);
  ASSERT_NE(s, nullptr) << vramcache_last_error();
  EXPECT_EQ(s->version, VRAMCACHE_SNAPSHOT_VERSION);
  ASSERT_EQ(s->segment_count, 2u);  // one small (2 MiB), one large (20 MiB)
  EXPECT_EQ(s->trace_count, 0u);
  std::size_t blocks_seen = 0;
  for (std::size_t i = 0; i < s->segment_count; ++i) {
    const vramcache_segment_info& seg = s->segments[i];
    EXPECT_EQ(seg.device, 0);
    EXPECT_EQ(seg.stream, nullptr);
    EXPECT_EQ(seg.first_block, blocks_seen);  // segments' blocks are consecutive
    // The blocks tile the segment, in address order.
    std::uint64_t next = seg.address, bytes = 0;
    for (std::size_t b = seg.first_block; b < seg.first_block + seg.block_count; ++b) {
      EXPECT_EQ(s->blocks[b].address, next);
      EXPECT_EQ(s->blocks[b].pool, 0u);
      next += s->blocks[b].size;
      bytes += s->blocks[b].size;
    }
    EXPECT_EQ(bytes, seg.size);
    blocks_seen += seg.block_count;
  }
  EXPECT_EQ(blocks_seen, s->block_count);

  const vramcache_segment_info* seg = nullptr;
  const vramcache_block_info* b = BlockAt(s, small, &seg);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->state, VRAMCACHE_BLOCK_ALLOCATED);
  EXPECT_EQ(b->size, 1024u);
  EXPECT_EQ(b->requested_size, 1000u);
  EXPECT_TRUE(seg->is_small);
  EXPECT_EQ(seg->size, 2 * kMiB);
  b = BlockAt(s, large, &seg);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->state, VRAMCACHE_BLOCK_ALLOCATED);
  EXPECT_EQ(b->requested_size, 3 * kMiB);
  EXPECT_FALSE(seg->is_small);
  EXPECT_EQ(seg->size, 20 * kMiB);
  // Freed while the side stream may still use it: pending, and its requested size is gone.
  b = BlockAt(s, side, &seg);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->state, VRAMCACHE_BLOCK_PENDING_FREE);
  EXPECT_EQ(b->requested_size, 0u);

  // A copy: it stays as taken while the allocator changes, and after shutdown.
  vramcache_free(small, 1000, 0, nullptr);
  vramcache_free(large, 3 * kMiB, 0, nullptr);
  ASSERT_EQ(vramcache_shutdown(), 0);
  EXPECT_EQ(BlockAt(s, small, &seg)->state, VRAMCACHE_BLOCK_ALLOCATED);
  EXPECT_EQ(vramcache_snapshot_release(s), 0) << vramcache_last_error();
}

TEST_F(CApiSnapshotTest, BlocksNameTheirPrivatePool) {
  ASSERT_EQ(vramcache_begin_allocate_to_pool(0, 42, nullptr, nullptr), 0);
  void* in_pool = vramcache_try_malloc(1000, 0, nullptr);
  ASSERT_EQ(vramcache_end_allocate_to_pool(0, 42), 0);
  void* common = vramcache_try_malloc(1000, 0, nullptr);
  ASSERT_TRUE(in_pool && common) << vramcache_last_error();

  const vramcache_snapshot* s = vramcache_snapshot_take(0);
  ASSERT_NE(s, nullptr) << vramcache_last_error();
  const vramcache_segment_info* pool_segment = nullptr;
  const vramcache_segment_info* common_segment = nullptr;
  EXPECT_EQ(BlockAt(s, in_pool, &pool_segment)->pool, 42u);
  EXPECT_EQ(BlockAt(s, common, &common_segment)->pool, 0u);
  EXPECT_NE(pool_segment, common_segment);  // a private pool's segments are its own
  for (std::size_t b = pool_segment->first_block;
       b < pool_segment->first_block + pool_segment->block_count; ++b) {
    EXPECT_EQ(s->blocks[b].pool, 42u);  // its free remainder too
  }
  EXPECT_EQ(vramcache_snapshot_release(s), 0);
  vramcache_free(in_pool, 1000, 0, nullptr);
  vramcache_free(common, 1000, 0, nullptr);
  ASSERT_EQ(vramcache_release_pool(0, 42), 0);
}

TEST_F(CApiSnapshotTest, BlocksNameTheirPrivatePoolInVirtualMemoryMode) {
  // Its segments are mapped runs, its blocks clipped to them: each still names its pool.
  ASSERT_EQ(vramcache_shutdown(), 0);
  ASSERT_EQ(vramcache_configure("device:sim,sim_capacity:1GiB,vmm:on"), 0)
      << vramcache_last_error();
  ASSERT_EQ(vramcache_begin_allocate_to_pool(0, 42, nullptr, nullptr), 0);
  void* in_pool = vramcache_try_malloc(3 * kMiB, 0, nullptr);
  ASSERT_EQ(vramcache_end_allocate_to_pool(0, 42), 0);
  void* common = vramcache_try_malloc(3 * kMiB, 0, nullptr);
  ASSERT_TRUE(in_pool && common) << vramcache_last_error();

  const vramcache_snapshot* s = vramcache_snapshot_take(0);
  ASSERT_NE(s, nullptr) << vramcache_last_error();
  const vramcache_segment_info* segment = nullptr;
  const vramcache_block_info* block = BlockAt(s, in_pool, &segment);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(block->state, VRAMCACHE_BLOCK_ALLOCATED);
  EXPECT_EQ(block->pool, 42u);
  block = BlockAt(s, common, &segment);
  ASSERT_NE(block, nullptr);
  EXPECT_EQ(block->pool, 0u);
  EXPECT_EQ(vramcache_snapshot_release(s), 0);
  vramcache_free(in_pool, 3 * kMiB, 0, nullptr);
  vramcache_free(common, 3 * kMiB, 0, nullptr);
  ASSERT_EQ(vramcache_release_pool(0, 42), 0);
}

TEST_F(CApiSnapshotTest, TracesWhenAskedAndRecorded) {
  Configure(",record_history:true");
  void* p = vramcache_try_malloc(3 * kMiB, 0, kSideStream);
  ASSERT_NE(p, nullptr) << vramcache_last_error();
  vramcache_free(p, 3 * kMiB, 0, kSideStream);

  const vramcache_snapshot* without = vramcache_snapshot_take(0);
  ASSERT_NE(without, nullptr);
  EXPECT_EQ(without->trace_count, 0u);
  EXPECT_EQ(vramcache_snapshot_release(without), 0);

  const vramcache_snapshot* s = vramcache_snapshot_take(1);
  ASSERT_NE(s, nullptr) << vramcache_last_error();
  std::vector<int> actions;
  for (std::size_t i = 0; i < s->trace_count; ++i) {
    const vramcache_trace_entry& e = s->traces[i];
    EXPECT_EQ(e.device, 0);
    EXPECT_EQ(e.stream, kSideStream);
    if (i > 0) {
      EXPECT_GE(e.time_ns, s->traces[i - 1].time_ns);
    }
    actions.push_back(e.action);
    if (e.action == VRAMCACHE_TRACE_ALLOC) {
      EXPECT_EQ(e.address, reinterpret_cast<std::uintptr_t>(p));
      EXPECT_EQ(e.size, 3 * kMiB);
    }
  }
  EXPECT_EQ(actions,
            (std::vector<int>{VRAMCACHE_TRACE_SEGMENT_ALLOC, VRAMCACHE_TRACE_ALLOC,
                              VRAMCACHE_TRACE_FREE_REQUESTED, VRAMCACHE_TRACE_FREE_COMPLETED}));
  EXPECT_EQ(vramcache_snapshot_release(s), 0);
}

TEST_F(CApiSnapshotTest, BadOrRepeatedReleaseIsAnError) {
  const vramcache_snapshot* s = vramcache_snapshot_take(0);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->segment_count, 0u);
  EXPECT_EQ(vramcache_snapshot_release(s), 0);
  EXPECT_EQ(vramcache_snapshot_release(s), -1);
  EXPECT_NE(std::string(vramcache_last_error()).find("released already"), std::string::npos);
  EXPECT_EQ(vramcache_snapshot_release(nullptr), -1);
  vramcache_snapshot not_taken{};
  EXPECT_EQ(vramcache_snapshot_release(&not_taken), -1);
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_INVALID);
}

}  // namespace
