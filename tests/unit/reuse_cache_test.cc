// The reuse cache's lists: a block comes back only for its own pool, stream and rounded size,
// newest first; the byte count and the limit follow every push and pop; taking everything
// empties the lists and returns the blocks in address order.
#include "allocator/core/reuse_cache.h"

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
  EXPECT_TRUE(cache.lists().empty());
  EXPECT_EQ(cache.LargestBlock(), 0u);
  EXPECT_EQ(cache.Pop(kDefaultPool, 1, 512), nullptr);
  EXPECT_TRUE(cache.TakeAllByAddress().empty());
}

}  // namespace
}  // namespace vramcache
