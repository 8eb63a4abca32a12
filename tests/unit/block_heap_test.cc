// The block heap: an adopted segment is one block, a split leaves the rest free after it, a
// freed block coalesces with free neighbours on both sides, the split statistics follow the
// free sets, in first-fit mode the large segments index their free blocks by address, and a
// release takes the wholly free segments it may, least recently freed first, and unlinks them.
#include "allocator/core/block_heap.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <random>
#include <vector>

#include "allocator/core/config.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr DevicePtr kBase = 0x40000000;

class BlockHeapTest : public ::testing::Test {
 protected:
  explicit BlockHeapTest(bool first_fit_large = false)
      : ledger_(&stats_, /*max_split_size=*/SIZE_MAX), heap_(&ledger_, first_fit_large) {}
  ~BlockHeapTest() override {
    for (auto& [base, segment] : heap_.segments()) {
      heap_.ForgetSegmentBlocks(segment);
      delete segment;
    }
    heap_.Clear();
  }

  Segment* AdoptLarge(std::size_t size) {
    Segment* segment = heap_.Adopt(kBase, size, /*small=*/false, /*stream=*/0, kDefaultPool);
    heap_.AddFreeBlock(segment->head);
    return segment;
  }

  DeviceStats stats_;
  StatsLedger ledger_;
  BlockHeap heap_;
};

TEST_F(BlockHeapTest, AdoptedSegmentIsOneFreeBlock) {
  Segment* segment = AdoptLarge(20 * kMiB);
  EXPECT_EQ(heap_.segments().at(kBase), segment);
  EXPECT_EQ(segment->head->size, 20 * kMiB);
  EXPECT_TRUE(segment->IsWhollyFree());
  EXPECT_EQ(heap_.large_free().size(), 1u);
  EXPECT_TRUE(heap_.small_free().empty());
  EXPECT_EQ(stats_.inactive_split.all().current, 0);  // a whole segment is not split
  EXPECT_TRUE(heap_.first_fit_segments().empty());
}

TEST_F(BlockHeapTest, SplitLeavesTheRestFreeAfterTheBlock) {
  Segment* segment = AdoptLarge(20 * kMiB);
  Block* block = segment->head;
  heap_.RemoveFreeBlock(block);
  heap_.Split(block, 3 * kMiB);
  block->state = BlockState::kAllocated;
  ASSERT_NE(block->next, nullptr);
  EXPECT_EQ(block->size, 3 * kMiB);
  EXPECT_EQ(block->next->addr, kBase + 3 * kMiB);
  EXPECT_EQ(block->next->size, 17 * kMiB);
  EXPECT_EQ(block->next->prev, block);
  EXPECT_EQ(block->next->state, BlockState::kFree);
  EXPECT_EQ(heap_.large_free().size(), 1u);
  EXPECT_EQ(stats_.inactive_split.by_pool[2].current, 1);
  EXPECT_EQ(stats_.inactive_split_bytes.by_pool[2].current, static_cast<std::int64_t>(17 * kMiB));
}

TEST_F(BlockHeapTest, FreedBlockCoalescesWithBothNeighbours) {
  Segment* segment = AdoptLarge(12 * kMiB);
  Block* first = segment->head;
  heap_.RemoveFreeBlock(first);
  heap_.Split(first, 4 * kMiB);
  Block* second = first->next;
  heap_.RemoveFreeBlock(second);
  heap_.Split(second, 4 * kMiB);
  first->state = BlockState::kAllocated;
  second->state = BlockState::kAllocated;
  heap_.CoalesceAndInsert(first);  // merges with nothing: its neighbour is allocated
  EXPECT_EQ(heap_.large_free().size(), 2u);
  heap_.CoalesceAndInsert(second);  // merges with both
  EXPECT_TRUE(segment->IsWhollyFree());
  EXPECT_EQ(segment->head->size, 12 * kMiB);
  EXPECT_EQ(heap_.large_free().size(), 1u);
  EXPECT_EQ(stats_.inactive_split.all().current, 0);
  EXPECT_EQ(stats_.inactive_split_bytes.all().current, 0);
}

TEST_F(BlockHeapTest, RecycledBlocksComeBackReset) {
  Block* block = heap_.NewBlock();
  block->addr = 0x1234;
  block->state = BlockState::kAllocated;
  heap_.DeleteBlock(block);
  Block* again = heap_.NewBlock();
  EXPECT_EQ(again, block);
  EXPECT_EQ(again->addr, 0u);
  EXPECT_EQ(again->state, BlockState::kFree);
  heap_.DeleteBlock(again);
}

TEST_F(BlockHeapTest, AReleaseTakesWhollyFreeSegmentsLeastRecentlyFreedFirst) {
  // Adopted in address order; freed (added to the free sets) in the order c, a, b.
  Segment* a = heap_.Adopt(kBase, 2 * kMiB, /*small=*/false, /*stream=*/0, kDefaultPool);
  Segment* b = heap_.Adopt(kBase + 2 * kMiB, 4 * kMiB, false, 0, kDefaultPool);
  Segment* c = heap_.Adopt(kBase + 6 * kMiB, 8 * kMiB, false, 0, /*pool=*/7);
  Segment* used = heap_.Adopt(kBase + 14 * kMiB, 2 * kMiB, false, 0, kDefaultPool);
  heap_.AddFreeBlock(c->head);
  heap_.AddFreeBlock(a->head);
  heap_.AddFreeBlock(b->head);
  used->head->state = BlockState::kAllocated;
  const auto any = [](const Segment&) { return true; };
  EXPECT_EQ(heap_.OldestWhollyFreeSegments(SIZE_MAX, any), (std::vector<Segment*>{c, a, b}));
  // As many as it takes to collect the bytes wanted: the last one may pass them.
  EXPECT_EQ(heap_.OldestWhollyFreeSegments(9 * kMiB, any), (std::vector<Segment*>{c, a}));
  EXPECT_TRUE(heap_.OldestWhollyFreeSegments(0, any).empty());
  const auto default_pool = [](const Segment& s) { return s.pool_id == kDefaultPool; };
  EXPECT_EQ(heap_.OldestWhollyFreeSegments(SIZE_MAX, default_pool), (std::vector<Segment*>{a, b}));
  // Unlinked: out of the free set and the address index; its blocks stay until forgotten.
  heap_.Unlink(a);
  EXPECT_FALSE(heap_.segments().contains(kBase));
  EXPECT_EQ(heap_.large_free().size(), 2u);
  EXPECT_NE(a->head, nullptr);
  heap_.ForgetSegmentBlocks(a);
  delete a;
  EXPECT_EQ(heap_.OldestWhollyFreeSegments(SIZE_MAX, any), (std::vector<Segment*>{c, b}));
}

class FirstFitBlockHeapTest : public BlockHeapTest {
 protected:
  FirstFitBlockHeapTest() : BlockHeapTest(/*first_fit_large=*/true) {}
};

TEST_F(FirstFitBlockHeapTest, LargeSegmentsIndexTheirFreeBlocksByAddress) {
  Segment* segment = AdoptLarge(8 * kMiB);
  EXPECT_EQ(heap_.first_fit_segments().at(segment->rank), segment);
  EXPECT_EQ(segment->free_by_addr.size(), 1u);
  EXPECT_EQ(segment->free_max, 8 * kMiB);
  Block* block = segment->head;
  heap_.RemoveFreeBlock(block);
  EXPECT_TRUE(segment->free_by_addr.empty());
  EXPECT_TRUE(segment->free_max_stale);  // the largest left; recomputed by the next search
  heap_.Split(block, 2 * kMiB);
  EXPECT_EQ(segment->free_by_addr.size(), 1u);
  EXPECT_EQ((*segment->free_by_addr.begin())->addr, kBase + 2 * kMiB);
  block->state = BlockState::kAllocated;
  heap_.CoalesceAndInsert(block);
  EXPECT_EQ(segment->free_by_addr.size(), 1u);
  EXPECT_EQ(segment->free_max, 8 * kMiB);
}

// A split's rest and a merged block take their predecessor's place in the free set when they
// sort there, and always in the address index (BlockHeap::TakeFreeBlock, CoalesceAndInsert):
// after every step of a random sequence of splits and frees, both hold exactly the free blocks,
// in their orders, whether or not the search that found the block was noted.
TEST_F(FirstFitBlockHeapTest, InPlaceSplitsAndMergesKeepTheSetsExact) {
  Segment* segment = AdoptLarge(64 * kMiB);
  std::mt19937 random(18);
  std::vector<Block*> allocated;
  auto expect_exact = [&](int step) {
    std::vector<Block*> by_addr;
    for (Block* b = segment->head; b != nullptr; b = b->next) {
      if (b->state == BlockState::kFree) by_addr.push_back(b);
    }
    std::vector<Block*> by_key = by_addr;
    std::sort(by_key.begin(), by_key.end(), FreeBlockOrder());
    EXPECT_EQ(std::vector<Block*>(segment->free_by_addr.begin(), segment->free_by_addr.end()),
              by_addr)
        << "step " << step;
    EXPECT_EQ(std::vector<Block*>(heap_.large_free().begin(), heap_.large_free().end()), by_key)
        << "step " << step;
    std::size_t largest = 0;
    for (const Block* b : by_addr) largest = std::max(largest, b->size);
    EXPECT_GE(segment->free_max, largest) << "step " << step;
    if (!segment->free_max_stale) {
      EXPECT_EQ(segment->free_max, largest) << "step " << step;
    }
  };
  for (int step = 0; step < 400; ++step) {
    const bool allocate = allocated.empty() || (random() % 3 != 0 && !heap_.large_free().empty());
    if (allocate && !heap_.large_free().empty()) {
      // A random free block, taken whole or split at a random size.
      auto at = heap_.large_free().begin();
      std::advance(at, random() % heap_.large_free().size());
      Block* block = *at;
      const std::size_t size = kMiB * (1 + random() % 4);
      if (random() % 2 == 0) heap_.NoteFound(block, at);
      if (random() % 3 == 0) heap_.NoteFoundByAddress(block, segment->free_by_addr.find(block));
      const bool split = block->size > size;
      heap_.TakeFreeBlock(block, split, size);
      block->state = BlockState::kAllocated;
      allocated.push_back(block);
    } else {
      const std::size_t i = random() % allocated.size();
      Block* block = allocated[i];
      allocated.erase(allocated.begin() + static_cast<std::ptrdiff_t>(i));
      heap_.CoalesceAndInsert(block);
    }
    expect_exact(step);
  }
}

}  // namespace
}  // namespace vramcache
