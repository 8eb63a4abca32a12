// Blocks and segments, the allocator's unit of bookkeeping.
//
// Glossary:
//   segment  one range obtained from the device in a single call (cudaMalloc), or in
//            virtual-memory mode one reserved address range (an arena) whose pages are backed
//            by physical chunks only while blocks in them are in use. Never split across pools
//            or streams: all its blocks belong to its stream and pool.
//   block    a contiguous piece of a segment; the blocks of a segment tile it in address order
//            (prev/next links). A block is allocated, free (in its pool's free set, coalesced
//            with its neighbours), cached (freed, kept whole in the reuse cache for the next
//            request of the same size, not yet coalesced), or pending (freed by the user but
//            still in use by another stream's work).
//   pool     small (requests <= 1 MiB, 2 MiB segments) or large (everything else).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/inlined_vector.h"
#include "allocator/device/device.h"

namespace vramcache {

struct Segment;
struct ThreadFront;
class VmmArena;

// 0 is the shared pool; others are private pools (CUDA graphs), whose blocks serve only
// allocations made to that pool.
using PoolId = std::uint64_t;
inline constexpr PoolId kDefaultPool = 0;
// unmap_on_free: freed ranges rest here, unmapped, and no request ever searches this pool, so
// their addresses are never handed out again.
inline constexpr PoolId kRetiredRangesPool = ~PoolId{0};

// kParked: free memory of a destroyed stream, cached for its handle, waiting for an event
// recorded on it before the stream went away (a new stream may get the same handle): out of
// every free list, inactive, and counted where free blocks are.
enum class BlockState : std::uint8_t { kFree, kAllocated, kPendingFree, kCached, kParked };

struct alignas(64) Block {
  DevicePtr addr = 0;
  std::size_t size = 0;
  std::size_t requested = 0;      // the user's size while allocated
  std::size_t rounded = 0;        // the rounded request it last served (its reuse-cache key)
  Block* cache_next = nullptr;    // next block in the same reuse-cache list
  StreamHandle stream = 0;        // its home stream (its segment's): the free list it returns to
  StreamHandle alloc_stream = 0;  // the current allocation's stream (cached: the last one's)
  PoolId pool_id = kDefaultPool;
  Segment* segment = nullptr;
  Block* prev = nullptr;
  Block* next = nullptr;
  BlockState state = BlockState::kFree;
  // Streams other than `stream` that used the block (record_stream).
  absl::InlinedVector<StreamHandle, 2> stream_uses;
  // Streams of other devices that used it (record_stream), with their device.
  std::vector<std::pair<Device*, StreamHandle>> foreign_uses;
  // When it last entered its segment's free set while covering the whole segment, as the heap's
  // count of such frees (only wholly free segments are ordered by it, oldest first).
  std::int64_t last_free_time = 0;
  // A stream that used it was destroyed while it was live: it waits for a device
  // synchronization after its free, since no event can be recorded on that stream any more.
  bool used_by_destroyed_stream = false;
  // Virtual-memory mode: its range is acquired in its segment's arena (its pages are backed
  // until it is released). Set from allocation until the free completes.
  bool holds_pages = false;
  // poison_on_free: freed by the user, to be filled with the poison pattern when its free
  // completes (once no other stream can still use it legitimately).
  bool poison_pending = false;
  // Canaries: a Free is checking its bands with the allocator's lock dropped; a second Free
  // or a record_stream meanwhile is refused.
  bool freeing = false;
  // Counted in oversize_allocations while allocated: the threshold (max_split_size) may change
  // at run time, so the free undoes what the allocation counted, not what it would count now.
  bool counted_oversize = false;
  // Per-thread fronts (thread_fronts.h): the front that holds it, null when none. A front's
  // block is allocated for the rest of the allocator, whether its thread has it out or cached
  // (`front_cached`); it may serve requests of at most `front_requested_cap` bytes (what the
  // statistics counted when it entered the front, so that no reuse can pass a peak unseen).
  ThreadFront* front = nullptr;
  bool front_cached = false;
  std::size_t front_requested_cap = 0;

  bool is_split() const { return prev != nullptr || next != nullptr; }

  // Back to a default-constructed state, keeping stream_uses' storage (blocks are recycled).
  void Reset() {
    addr = 0;
    size = 0;
    requested = 0;
    rounded = 0;
    cache_next = nullptr;
    stream = 0;
    alloc_stream = 0;
    pool_id = kDefaultPool;
    segment = nullptr;
    prev = nullptr;
    next = nullptr;
    state = BlockState::kFree;
    stream_uses.clear();
    foreign_uses.clear();
    last_free_time = 0;
    used_by_destroyed_stream = false;
    holds_pages = false;
    poison_pending = false;
    freeing = false;
    counted_oversize = false;
    front = nullptr;
    front_cached = false;
    front_requested_cap = 0;
  }
};

// Blocks by address (Segment::free_by_addr).
struct BlockAddressOrder {
  bool operator()(const Block* a, const Block* b) const { return a->addr < b->addr; }
};

using BlocksByAddress = absl::btree_set<Block*, BlockAddressOrder>;

struct Segment {
  DevicePtr base = 0;
  std::size_t size = 0;
  StreamHandle stream = 0;
  bool small = false;
  PoolId pool_id = kDefaultPool;
  Block* head = nullptr;  // lowest-addressed block
  // Virtual-memory mode: the reserved address range it is (physical pages come and go).
  VmmArena* arena = nullptr;
  // Virtual-memory mode, private pools (CUDA graphs): the whole range stays backed while the
  // pool lives, since a graph's replays use its blocks' addresses even after they are freed.
  bool pinned = false;
  // unmap_on_free: this range serves one allocation; once freed it is unmapped and retired
  // (kRetiredRangesPool).
  bool single_use = false;
  // Counted in oversize_segments (max_split_size may change at run time; see Block).
  bool counted_oversize = false;
  // Virtual-memory mode, large pool, for the first-fit search: its creation rank, its free
  // blocks by address, and a bound on their largest size (exact unless `free_max_stale`, set
  // when the largest left; recomputed when a search needs it).
  std::uint64_t rank = 0;
  BlocksByAddress free_by_addr;
  std::size_t free_max = 0;
  bool free_max_stale = false;

  // True when one free block covers the whole segment: it can go back to the device.
  bool IsWhollyFree() const { return head->next == nullptr && head->state == BlockState::kFree; }
};

// What a best-fit search looks for: the lowest block of at least `size` bytes cached for
// `stream` in `pool` (addr 0 sorts before every real block of that size).
struct FreeBlockKey {
  PoolId pool_id;
  StreamHandle stream;
  std::size_t size;
  DevicePtr addr;
};

// Free-set order: by pool, stream, then size (best fit = lower_bound), then address (lowest
// first, which keeps the heap compact). Transparent, so searches need no Block.
// The fields are compared one by one, not as std::tie tuples: C++20 compares tuples through
// operator<=>, which GCC 12 does not reduce to these branches, and the free sets' searches made
// that comparison 7% of mixed_sizes' instructions (callgrind, issue #18). Same order.
struct FreeBlockOrder {
  using is_transparent = void;
  static PoolId Pool(const Block* b) { return b->pool_id; }
  static PoolId Pool(const FreeBlockKey& k) { return k.pool_id; }
  static StreamHandle Stream(const Block* b) { return b->stream; }
  static StreamHandle Stream(const FreeBlockKey& k) { return k.stream; }
  static std::size_t Size(const Block* b) { return b->size; }
  static std::size_t Size(const FreeBlockKey& k) { return k.size; }
  static DevicePtr Addr(const Block* b) { return b->addr; }
  static DevicePtr Addr(const FreeBlockKey& k) { return k.addr; }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    if (Pool(a) != Pool(b)) return Pool(a) < Pool(b);
    if (Stream(a) != Stream(b)) return Stream(a) < Stream(b);
    if (Size(a) != Size(b)) return Size(a) < Size(b);
    return Addr(a) < Addr(b);
  }
};

using FreeBlockSet = absl::btree_set<Block*, FreeBlockOrder>;

}  // namespace vramcache
