// The history ring buffer: keeps the newest `capacity` entries in arrival order, overwrites the
// oldest first, and keeps nothing at capacity 0.
#include "allocator/core/ring_buffer.h"

#include <vector>

#include "gtest/gtest.h"

namespace vramcache {
namespace {

TEST(RingBufferTest, KeepsEverythingBelowCapacityOldestFirst) {
  RingBuffer<int> ring(4);
  EXPECT_TRUE(ring.empty());
  for (int i = 1; i <= 3; ++i) ring.Push(i);
  EXPECT_EQ(ring.size(), 3u);
  EXPECT_EQ(ring.capacity(), 4u);
  EXPECT_EQ(ring.OldestFirst(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(ring[0], 1);
  EXPECT_EQ(ring[2], 3);
}

TEST(RingBufferTest, OverwritesTheOldestOnceFull) {
  RingBuffer<int> ring(3);
  for (int i = 1; i <= 7; ++i) ring.Push(i);
  EXPECT_EQ(ring.size(), 3u);
  EXPECT_EQ(ring.OldestFirst(), (std::vector<int>{5, 6, 7}));
  EXPECT_EQ(ring[0], 5);
  EXPECT_EQ(ring[1], 6);
  EXPECT_EQ(ring[2], 7);
}

TEST(RingBufferTest, MatchesADequeThatDropsItsFrontAtEveryWrapAround) {
  // The allocator's history was a deque trimmed to capacity; the ring must agree at every step.
  for (std::size_t capacity : {1u, 2u, 5u}) {
    RingBuffer<int> ring(capacity);
    std::vector<int> expected;
    for (int i = 0; i < 23; ++i) {
      ring.Push(i);
      expected.push_back(i);
      if (expected.size() > capacity) expected.erase(expected.begin());
      ASSERT_EQ(ring.OldestFirst(), expected) << "capacity " << capacity << " after " << i;
    }
  }
}

TEST(RingBufferTest, CapacityZeroKeepsNothing) {
  RingBuffer<int> ring(0);
  ring.Push(1);
  ring.Push(2);
  EXPECT_TRUE(ring.empty());
  EXPECT_TRUE(ring.OldestFirst().empty());
}

}  // namespace
}  // namespace vramcache
