// Per-thread fronts (issue #18): once a second thread uses the allocator, each thread keeps the
// blocks it freed whole in a front of its own, under a lock of its own, and takes them back for
// its next requests of the same stream and rounded size without the allocator's lock. Threads
// that allocate and free on their own streams then share no lock and no cache line on that path.
//
// For the rest of the allocator a front's block stays allocated (in the pointer map, its pages
// held), whether its thread has it out or cached; the front's own ledger counts what the
// thread's frees and reuses change against the allocator's statistics, added in whenever they
// are read. Peaks stay true peaks without the fronts ever reading one: a front reuse gives back
// no more than the same block's front free took (requests up to what the statistics counted
// when the block entered), and what a front free raises (the split statistics) was reserved
// under the peaks when the block entered (FrontReserves, stats_ledger.h). Blocks enter a front
// only through the allocator's free path, with every front locked, and leave it only when the
// fronts are flushed: before growth and the out-of-memory rungs (through the reuse cache's
// flush), before anything that reads blocks (snapshots, checks, queries) or changes what a
// block may be (a destroyed stream, settings, a statistics reset), and at shutdown.
//
// Locks: the allocator's lock, then fronts' locks (all, in creation order); a front's thread
// never takes the allocator's lock while holding its front's.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "allocator/base/mutex.h"
#include "allocator/core/block.h"
#include "allocator/core/reuse_cache.h"
#include "allocator/core/stats.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/core/vmm_arena.h"

namespace vramcache {

struct alignas(64) ThreadFront {
  ThreadFront(std::size_t limit_bytes, std::size_t max_split_size, const ChunkPool* vmm)
      : cache(limit_bytes), ledger(&changes, max_split_size) {
    if (vmm != nullptr) ledger.UseVirtualMemory(vmm);
  }

  Mutex mu;
  // Folded into the allocator's statistics: every request goes to the allocator until the
  // fronts are flushed.
  bool frozen ABSL_GUARDED_BY(mu) = false;
  // Every block the front holds, out or cached, by address.
  absl::flat_hash_map<DevicePtr, Block*> blocks ABSL_GUARDED_BY(mu);
  ReuseCache cache ABSL_GUARDED_BY(mu);  // the cached ones, by stream and rounded size
  // What this front's frees and reuses changed, against the allocator's statistics.
  DeviceStats changes ABSL_GUARDED_BY(mu);
  StatsLedger ledger ABSL_GUARDED_BY(mu);  // writes `changes`
};

// One thread's front in one allocator (ThreadFronts::Mine).
struct ThreadFrontSlot {
  std::uint64_t owner = 0;  // the allocator's ThreadFronts id; 0: free
  ThreadFront* front = nullptr;
};

class ThreadFronts final : public FrontReserves {
 public:
  struct Parts {
    DeviceStats* stats = nullptr;   // the allocator's
    StatsLedger* ledger = nullptr;  // the allocator's
    ReuseCache* reuse_cache = nullptr;
    const ChunkPool* vmm = nullptr;  // null in segment mode
    std::size_t limit_bytes = 0;     // what one front may cache; 0: no fronts
  };
  explicit ThreadFronts(const Parts& parts);
  ThreadFronts(const ThreadFronts&) = delete;
  ThreadFronts& operator=(const ThreadFronts&) = delete;

  // ------------------------------------------------ without the allocator's lock

  // Whether fronts are in use (a second thread came); read by every allocation and free.
  bool active() const { return active_.load(std::memory_order_acquire); }
  // Whether a graph capture is under way (its streams' requests go to private pools).
  bool capturing() const { return capturing_.load(std::memory_order_acquire); }

  // The calling thread's front, or null.
  ThreadFront* Mine() const {
    for (const Slot& slot : tls_slots_) {
      if (slot.owner == id_) return slot.front;
    }
    return nullptr;
  }

  // A block `front` cached for `stream` and `rounded`, handed out again for `size` bytes; null
  // when none may serve.
  static Block* TryReuse(ThreadFront& front, StreamHandle stream, std::size_t size,
                         std::size_t rounded) {
    MutexLock lock(&front.mu);
    if (front.frozen) return nullptr;
    Block* block = front.cache.Pop(kDefaultPool, stream, rounded);
    if (block == nullptr) return nullptr;
    if (size > block->front_requested_cap) {
      front.cache.Push(block);
      return nullptr;
    }
    block->front_cached = false;
    block->requested = size;
    front.ledger.CountSplitBlock(*block, -1);
    front.ledger.CountUserAllocation(*block, size);
    front.ledger.CountActiveKeepingPages(*block, +1);
    ++front.changes.num_cache_hits;
    return block;
  }

  // The user freed `addr`: true when `front` holds it out and cached it; false when the
  // allocator must take the free (not the front's, or not cacheable, or a double free).
  bool TryCache(ThreadFront& front, DevicePtr addr) const {
    MutexLock lock(&front.mu);
    if (front.frozen) return false;
    auto it = front.blocks.find(addr);
    if (it == front.blocks.end()) return false;
    Block* block = it->second;
    if (block->front_cached || !Cacheable(*block) || !front.cache.HasRoomFor(block->size)) {
      return false;
    }
    CacheInFront(front, block);
    return true;
  }

  // ------------------------------------------------ with the allocator's lock held

  // Whether a front holds `block` cached (its user's pointer is not live).
  static bool Cached(const Block& block) {
    if (block.front == nullptr) return false;
    MutexLock lock(&block.front->mu);
    return block.front_cached;
  }

  // Called by the allocator's paths: fronts start when a second thread comes. Inline: every
  // allocation and free of a single-threaded program makes it.
  void NoteThread() {
    if (watching_ && ThreadMarker() != first_thread_) NoteAnotherThread();
  }
  // A capture begins or every capture ended.
  void SetCapturing(bool capturing) { capturing_.store(capturing, std::memory_order_release); }

  // The allocator's free of `block` by the calling thread: true when the block entered the
  // thread's front instead (cached there), with the peaks its entry may raise raised now.
  bool Adopt(Block* block);
  // The allocator frees or marks `block`, which a front holds: false when the front has it
  // cached (the user's pointer is not live); else it leaves the front.
  bool Release(Block* block);

  // The allocator's free of `block` by the calling thread, for the fronts: refused when a front
  // has it cached (a second free); else it leaves the front holding it, if any, and enters the
  // calling thread's when `fronts_active` and it may (Adopt), or stays the allocator's.
  enum class FreeOutcome { kRefused, kCached, kNotTheirs };
  ABSL_ATTRIBUTE_NOINLINE FreeOutcome TakeFree(Block* block, bool fronts_active);

  // Every front's changes added into the allocator's statistics, its cached blocks moved into
  // the allocator's reuse cache, and the blocks it had out left to the allocator.
  void FlushAll();
  void FlushIfFrozen() {
    if (frozen_) FlushAll();
  }
  bool holds_blocks() const { return holding_; }
  // FrontReserves: called by the allocator's ledger mid-step.
  void FoldAndFreeze() override;

  // The allocator's statistics with every front's changes added.
  void AddChangesTo(DeviceStats& stats) const ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // max_split_size changed: the fronts count oversize by the new threshold (flushed first).
  void SetMaxSplitSize(std::size_t bytes);
  // Shutdown: flushed, and never active again.
  void Stop();

 private:
  using Slot = ThreadFrontSlot;
  static constexpr int kSlots = 4;
  // The calling thread's fronts, one per allocator it uses (most threads use one); an
  // allocator's id is never reused, so a slot of one that is gone never matches.
  static inline thread_local Slot tls_slots_[kSlots];
  // Fronts made at most: threads past it use the allocator's lock.
  static constexpr std::size_t kMaxFronts = 64;

  // What a front may cache: a block freed whole on the stream it belongs to, that no other
  // stream used, of the shared pool.
  static bool Cacheable(const Block& block) {
    return block.stream_uses.empty() && block.foreign_uses.empty() &&
           block.alloc_stream == block.stream && !block.used_by_destroyed_stream &&
           block.pool_id == kDefaultPool && !block.segment->single_use;
  }
  // The reuse cache's moves for a free, on the front's ledger.
  static void CacheInFront(ThreadFront& front, Block* block)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(front.mu) {
    front.ledger.CountUserFree(*block);
    front.ledger.CountActiveKeepingPages(*block, -1);
    front.ledger.CountSplitBlock(*block, +1);
    block->front_cached = true;
    front.cache.Push(block);
  }

  // An address unique to the calling thread while it runs: its thread pointer (one register
  // read; a thread_local's address costs a __tls_get_addr call in position-independent code,
  // and every allocation and free of a single-threaded program asks).
  static const void* ThreadMarker() {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__aarch64__))
    return __builtin_thread_pointer();
#else
    static thread_local char marker;
    return &marker;
#endif
  }
  void NoteAnotherThread();
  ThreadFront* MineOrNew();
  void LockAll() const ABSL_NO_THREAD_SAFETY_ANALYSIS;
  void UnlockAll() const ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // With every front locked: their changes added into the allocator's statistics and zeroed.
  void FoldLocked() ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // With every front locked: the blocks fronts have out leave them (their reserves with them).
  void DropBlocksOutLocked() ABSL_NO_THREAD_SAFETY_ANALYSIS;
  void Reserve(const Block& block, int direction);
  void SetHolding(bool holding);

  const Parts p_;
  const std::uint64_t id_;
  std::atomic<bool> active_{false};
  std::atomic<bool> capturing_{false};
  // Whether NoteThread still looks for a second thread (fronts allowed, not started, not
  // stopped); first_thread_ is the first caller's ThreadMarker.
  bool watching_ = false;
  const void* first_thread_ = nullptr;
  bool holding_ = false;  // a block entered a front since the last flush
  bool frozen_ = false;
  std::vector<std::unique_ptr<ThreadFront>> fronts_;
};

}  // namespace vramcache
