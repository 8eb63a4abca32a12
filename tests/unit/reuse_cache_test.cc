// The reuse cache's lists: a block comes back only for its own pool, stream and rounded size,
// newest first; the byte count and the limit follow every push and pop; taking everything
// empties the lists and returns the blocks in address order.
#include "allocator/core/reuse_cache.h"

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace vramcache {
namespace {

Block MakeBlock(DevicePtr addr, std::size_t size, std::size_t rounded, StreamHandle stream,
                PoolId pool = kDefaultPool) {
  Block block;
  block.addr = addr;
  block.size = size;
  block.rounded = rounded;
  block.stream = stream;
  block.alloc_stream = stream;  // the list's stream: the last allocation's (a plain free)
  block.pool_id = pool;
  block.state = BlockState::kCached;
  return block;
}

TEST(ReuseCacheTest, PopsOnlyForTheSameKeyNewestFirst) {
  ReuseCache cache(/*limit_bytes=*/1 << 20);
  Block a = MakeBlock(0x1000, 1024, 1024, /*stream=*/1);
  Block b = MakeBlock(0x2000, 1024, 1024, /*stream=*/1);
  Block other_stream = MakeBlock(0x3000, 1024, 1024, /*stream=*/2);
  Block other_pool = MakeBlock(0x4000, 1024, 1024, /*stream=*/1, /*pool=*/7);
  for (Block* block : {&a, &b, &other_stream, &other_pool}) cache.Push(block);
  EXPECT_EQ(cache.bytes(), 4096u);

  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 2048), nullptr);  // another rounded size
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 1024), &b);
  EXPECT_EQ(b.cache_next, nullptr);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 1024), &a);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 1024), nullptr);
  EXPECT_EQ(cache.Pop(kDefaultPool, 2, 1024), &other_stream);
  EXPECT_EQ(cache.Pop(7, 1, 1024), &other_pool);
  EXPECT_TRUE(cache.empty());
  EXPECT_EQ(cache.bytes(), 0u);
}

TEST(ReuseCacheTest, LimitCountsTheBlocksListed) {
  ReuseCache cache(/*limit_bytes=*/3000);
  Block a = MakeBlock(0x1000, 2048, 2048, 1);
  EXPECT_TRUE(cache.HasRoomFor(3000));
  EXPECT_FALSE(cache.HasRoomFor(3001));
  cache.Push(&a);
  EXPECT_TRUE(cache.HasRoomFor(952));
  EXPECT_FALSE(cache.HasRoomFor(953));
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 2048), &a);
  EXPECT_TRUE(cache.HasRoomFor(3000));
}

TEST(ReuseCacheTest, TakeAllByAddressEmptiesEveryListInAddressOrder) {
  ReuseCache cache(/*limit_bytes=*/1 << 20);
  Block high = MakeBlock(0x9000, 512, 512, 1);
  Block low = MakeBlock(0x1000, 1024, 1024, 2);
  Block middle = MakeBlock(0x5000, 512, 512, 1);
  for (Block* block : {&high, &low, &middle}) cache.Push(block);
  EXPECT_EQ(cache.LargestBlock(), 1024u);

  const std::vector<Block*> taken = cache.TakeAllByAddress();
  EXPECT_EQ(taken, (std::vector<Block*>{&low, &middle, &high}));
  for (const Block* block : taken) EXPECT_EQ(block->cache_next, nullptr);
  EXPECT_TRUE(cache.empty());
  for (const auto& [key, list] : cache.lists()) EXPECT_EQ(list.head, nullptr);  // kept, empty
  EXPECT_EQ(cache.LargestBlock(), 0u);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 512), nullptr);
  EXPECT_TRUE(cache.TakeAllByAddress().empty());
}

TEST(ReuseCacheTest, TakeStreamByAddressTakesOnlyThatStreamsBlocks) {
  ReuseCache cache(/*limit_bytes=*/1 << 20);
  Block high = MakeBlock(0x9000, 512, 512, 1);
  Block low = MakeBlock(0x1000, 1024, 1024, 1);
  for (Block* block : {&high, &low}) cache.Push(block);
  // Only stream 1 is listed: stream 2 takes nothing and leaves the lists as they were.
  EXPECT_TRUE(cache.TakeStreamByAddress(2).empty());
  EXPECT_EQ(cache.bytes(), 1536u);
  EXPECT_EQ(cache.TakeStreamByAddress(1), (std::vector<Block*>{&low, &high}));
  EXPECT_TRUE(cache.empty());

  // Two streams listed: each takes only its own, in address order.
  Block other = MakeBlock(0x5000, 512, 512, 2);
  for (Block* block : {&high, &other, &low}) cache.Push(block);
  EXPECT_EQ(cache.TakeStreamByAddress(1), (std::vector<Block*>{&low, &high}));
  EXPECT_EQ(cache.bytes(), 512u);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 512), nullptr);
  EXPECT_EQ(cache.Pop(kDefaultPool, 2, 512), &other);
  EXPECT_TRUE(cache.empty());

  // Emptied by a pop (stream 2's list stays, empty), then only stream 1 again.
  cache.Push(&high);
  EXPECT_TRUE(cache.TakeStreamByAddress(2).empty());
  EXPECT_EQ(cache.TakeStreamByAddress(1), (std::vector<Block*>{&high}));
  EXPECT_TRUE(cache.empty());
}

// A pop remembers its list for the push that usually follows; the map may rehash or erase in
// between, and the push must still land in the right list (under ASan a stale slot would be a
// use after free).
TEST(ReuseCacheTest, PushFindsItsListAfterTheMapChanged) {
  ReuseCache cache(/*limit_bytes=*/std::size_t{1} << 40);
  Block first = MakeBlock(0x1000, 512, 512, 1);
  cache.Push(&first);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 512), &first);  // remembers (1, 512)
  std::vector<Block> others;
  others.reserve(200);
  for (int i = 0; i < 200; ++i) {
    const auto size = static_cast<std::size_t>(1024 * (i + 1));
    others.push_back(MakeBlock(0x100000 * static_cast<DevicePtr>(i + 1), size, size, 1));
  }
  for (Block& block : others) cache.Push(&block);  // new keys: the map grows and rehashes
  cache.Push(&first);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 512), &first);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 1024), &others[0]);

  // Erased by a stream's flush, then pushed again.
  EXPECT_EQ(cache.TakeStreamByAddress(1).size(), 199u);
  cache.Push(&first);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 512), &first);
  EXPECT_TRUE(cache.empty());
}

// A take empties its lists but keeps them (the next push finds its key), up to kMaxKeptLists:
// past that, the empty lists are erased. Lists pushed, popped empty and pushed again are taken
// once.
TEST(ReuseCacheTest, TakesKeepEmptiedListsUpToABound) {
  ReuseCache cache(/*limit_bytes=*/std::size_t{1} << 40);
  Block a = MakeBlock(0x1000, 512, 512, 1);
  Block b = MakeBlock(0x2000, 512, 512, 1);
  cache.Push(&a);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 512), &a);
  cache.Push(&a);
  cache.Push(&b);
  EXPECT_EQ(cache.TakeAllByAddress(), (std::vector<Block*>{&a, &b}));
  EXPECT_EQ(cache.lists().size(), 1u);  // kept, empty
  EXPECT_TRUE(cache.TakeAllByAddress().empty());
  cache.Push(&b);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 512), &b);
  EXPECT_TRUE(cache.empty());

  std::vector<Block> many;
  many.reserve(ReuseCache::kMaxKeptLists + 1);
  for (std::size_t i = 0; i <= ReuseCache::kMaxKeptLists; ++i) {
    const std::size_t size = 512 * (i + 1);
    many.push_back(MakeBlock(0x100000 * static_cast<DevicePtr>(i + 1), size, size, 1));
  }
  for (Block& block : many) cache.Push(&block);
  EXPECT_EQ(cache.TakeAllByAddress().size(), many.size());
  EXPECT_TRUE(cache.lists().empty());  // more than kMaxKeptLists: the empty ones went
  cache.Push(&a);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 512), &a);
}

// Push, pop and both takes at random against a plain model: every pop returns the model's newest
// block of its key (the remembered list or a lookup; under ASan a stale remembered slot would be
// a use after free), every take the model's blocks of those keys in address order. Enough keys
// that the map rehashes and the kept empty lists are trimmed.
TEST(ReuseCacheTest, RandomOperationsMatchAModel) {
  using Key = std::tuple<StreamHandle, std::size_t>;
  ReuseCache cache(/*limit_bytes=*/std::size_t{1} << 40);
  std::vector<Block> blocks;
  blocks.reserve(4000);
  for (int i = 0; i < 4000; ++i) {
    const std::size_t rounded = 512 * static_cast<std::size_t>(1 + i % 1500);
    const StreamHandle stream = 1 + static_cast<StreamHandle>(i % 3);
    blocks.push_back(MakeBlock(0x10000 * static_cast<DevicePtr>(i + 1), rounded, rounded, stream));
  }
  std::map<Key, std::vector<Block*>> model;
  std::vector<bool> listed(blocks.size(), false);
  std::mt19937 rng(7);
  const auto take_from_model = [&](std::optional<StreamHandle> stream) {
    std::vector<Block*> taken;
    for (auto& [key, stack] : model) {
      if (stream.has_value() && std::get<0>(key) != *stream) continue;
      taken.insert(taken.end(), stack.begin(), stack.end());
      stack.clear();
    }
    std::sort(taken.begin(), taken.end(),
              [](const Block* a, const Block* b) { return a->addr < b->addr; });
    for (Block* b : taken) listed[static_cast<std::size_t>(b - blocks.data())] = false;
    return taken;
  };
  for (int step = 0; step < 60000; ++step) {
    const int op = static_cast<int>(rng() % 100);
    const std::size_t i = rng() % blocks.size();
    Block& block = blocks[i];
    const Key key{block.alloc_stream, block.rounded};
    if (op < 55) {
      if (listed[i]) continue;
      cache.Push(&block);
      model[key].push_back(&block);
      listed[i] = true;
    } else if (op < 98) {
      Block* expected = nullptr;
      if (auto it = model.find(key); it != model.end() && !it->second.empty()) {
        expected = it->second.back();
        it->second.pop_back();
        listed[static_cast<std::size_t>(expected - blocks.data())] = false;
      }
      ASSERT_EQ(cache.Pop(kDefaultPool, block.alloc_stream, block.rounded), expected)
          << "step " << step;
    } else if (op < 99) {
      const std::vector<Block*> expected = take_from_model(block.alloc_stream);
      ASSERT_EQ(cache.TakeStreamByAddress(block.alloc_stream), expected) << "step " << step;
    } else {
      const std::vector<Block*> expected = take_from_model(std::nullopt);
      ASSERT_EQ(cache.TakeAllByAddress(), expected) << "step " << step;
    }
  }
}

}  // namespace
}  // namespace vramcache
