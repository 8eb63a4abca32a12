// The reuse cache's lists: freed blocks kept whole, by the pool, stream and rounded size of the
// request they last served, so that the next such request takes one without a free-set search,
// split or coalesce. It only keeps the lists and their byte count; the allocator decides what
// enters (Free), and the block lifecycle (block_lifecycle.h) updates the statistics and
// coalesces what it flushes (FlushReuseCache).
// Not thread-safe: the allocator calls it with its lock held.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "allocator/core/block.h"

namespace vramcache {

// Key of a reuse-cache list: freed blocks that last served requests of `rounded` bytes on
// `stream`.
struct ReuseKey {
  PoolId pool;
  StreamHandle stream;
  std::size_t rounded;
  bool operator==(const ReuseKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const ReuseKey& k) {
    return H::combine(std::move(h), k.pool, k.stream, k.rounded);
  }
};

// One reuse-cache list: its newest block, and whether its key is in ReuseCache::listed_.
struct ReuseList {
  Block* head = nullptr;
  bool listed = false;
};

class ReuseCache {
 public:
  // The lists hold at most `limit_bytes` (EffectiveReuseCacheBytes).
  explicit ReuseCache(std::size_t limit_bytes) : limit_bytes_(limit_bytes) {}

  // Whether a block of `bytes` fits under the limit.
  bool HasRoomFor(std::size_t bytes) const { return bytes_ + bytes <= limit_bytes_; }
  // Whether it holds more than its limit (after the per-thread fronts were flushed into it).
  bool over_limit() const { return bytes_ > limit_bytes_; }

  // Lists `block` under its pool, the stream that allocated it last (`alloc_stream`: its own
  // stream, except for a borrowed block whose free has completed) and its rounded size, newest
  // first (a list is a stack).
  // Its `cache_next` links the list. Inline, as Pop: every fast-path free and allocation makes
  // one, and a call into another file cost the fast path measurably (docs/benchmarks.md); always
  // inline since a completed cross-stream free became a second caller and GCC 12 stopped
  // inlining it into Free (19 instructions a pair).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Push(Block* block) {
    const ReuseKey key{block->pool_id, block->alloc_stream, block->rounded};
    ReuseList& list = ListOf(key);
    block->cache_next = list.head;
    list.head = block;
    if (!list.listed) {
      list.listed = true;
      listed_.push_back(key);
    }
    if (bytes_ == 0) {
      only_stream_ = block->alloc_stream;
      one_stream_ = true;
    } else if (block->alloc_stream != only_stream_) {
      one_stream_ = false;
    }
    bytes_ += block->size;
  }

  // The newest block listed under the key, unlinked; null when none.
  Block* Pop(PoolId pool, StreamHandle stream, std::size_t rounded) {
    if (bytes_ == 0) return nullptr;
    const ReuseKey key{pool, stream, rounded};
    ReuseList* list = last_list_;
    // A program that frees and allocates the same size pops the list it pushed to last: no hash
    // lookup (it was a sixth of the fast path's instructions, docs/benchmarks.md).
    if (list == nullptr || !(key == last_key_)) {
      auto it = lists_.find(key);
      if (it == lists_.end()) return nullptr;
      list = &it->second;
    }
    if (list->head == nullptr) return nullptr;
    // The free that usually follows pushes to the same list. Not remembered when empty: the
    // list pushed to last stays remembered, the one a slow-path allocation's flush takes.
    last_key_ = key;
    last_list_ = list;
    Block* block = list->head;
    list->head = block->cache_next;
    block->cache_next = nullptr;
    bytes_ -= block->size;
    return block;
  }

  // Empties every list and returns the blocks it held in address order, so that coalescing them
  // gives the same statistics and layouts from run to run (the hash seed changes per process).
  // The vector is reused by the next call. The emptied lists stay in the map (up to
  // kMaxKeptLists of them): a program's next frees push to the same few keys, and finding a key
  // costs less than inserting it again into a map just cleared; only the listed keys are
  // visited, not the whole map.
  const std::vector<Block*>& TakeAllByAddress();
  // The same for the lists of one stream (the others stay).
  const std::vector<Block*>& TakeStreamByAddress(StreamHandle stream);

  // The largest block listed (0 when none); a walk of every list.
  std::size_t LargestBlock() const;

  bool empty() const { return bytes_ == 0; }
  std::size_t bytes() const { return bytes_; }
  // For the invariant recount.
  // Empty lists may be kept.
  const absl::flat_hash_map<ReuseKey, ReuseList>& lists() const { return lists_; }

  // How many lists, empty ones included, the map keeps after a take empties them; above it the
  // empty ones are erased (keys of streams and graph pools long gone would pile up).
  static constexpr std::size_t kMaxKeptLists = 1024;

 private:
  // The head of `key`'s list, created empty if missing. The list found last (by Pop or here) is
  // remembered: a fast-path pair pops and pushes the same list, and the hash map's insert path
  // stays out of line in GCC 12 however Push is inlined (74 instructions a pair,
  // docs/benchmarks.md "#14 host cost"). A slot of the map stays where it is until the map
  // inserts or erases (rehash, erase): both forget it.
  ABSL_ATTRIBUTE_ALWAYS_INLINE ReuseList& ListOf(const ReuseKey& key) {
    if (last_list_ != nullptr && key == last_key_) return *last_list_;
    return ListOfSlow(key);
  }
  ReuseList& ListOfSlow(const ReuseKey& key);
  void ForgetLastList() { last_list_ = nullptr; }
  // The blocks of `list` (whose key is listed) are appended to taken_ and the list emptied and
  // unlisted; the caller removes the key from listed_.
  void TakeList(ReuseList& list);
  // Sorts taken_ by address and unlinks its blocks.
  const std::vector<Block*>& FinishTake();
  // Above kMaxKeptLists, the lists that are empty and unlisted are erased.
  void TrimKeptLists();

  const std::size_t limit_bytes_;
  absl::flat_hash_map<ReuseKey, ReuseList> lists_;  // every kept list, empty ones included
  // The keys of the lists pushed to since they were last taken (popped empty since, some): what
  // a take visits.
  std::vector<ReuseKey> listed_;
  std::size_t bytes_ = 0;  // the sizes of every listed block
  // While one_stream_, every listed block's alloc_stream is only_stream_ (set by the Push that
  // found the lists empty): TakeStreamByAddress then takes all or nothing without walking and
  // erasing key by key (a single-stream program's every slow-path allocation flushes its own
  // stream's lists).
  StreamHandle only_stream_ = 0;
  bool one_stream_ = true;
  ReuseKey last_key_{};
  ReuseList* last_list_ = nullptr;  // last_key_'s list in lists_; null when forgotten
  std::vector<Block*> taken_;       // TakeAllByAddress's result
};

}  // namespace vramcache
