// Per-thread fronts (thread_fronts.h): what runs with the allocator's lock held (a block's
// entry, its release, the flush, the fold), which locks every front.
#include "allocator/core/thread_fronts.h"

#include <algorithm>

namespace vramcache {
namespace {

std::atomic<std::uint64_t> next_fronts_id{1};

}  // namespace

ThreadFronts::ThreadFronts(const Parts& parts)
    : p_(parts),
      id_(next_fronts_id.fetch_add(1, std::memory_order_relaxed)),
      watching_(parts.limit_bytes != 0) {}

void ThreadFronts::NoteAnotherThread() {
  if (first_thread_ == nullptr) {
    first_thread_ = ThreadMarker();
    return;
  }
  watching_ = false;
  active_.store(true, std::memory_order_release);
}

ThreadFront* ThreadFronts::MineOrNew() {
  if (ThreadFront* mine = Mine()) return mine;
  if (fronts_.size() >= kMaxFronts) return nullptr;
  fronts_.push_back(
      std::make_unique<ThreadFront>(p_.limit_bytes, p_.ledger->max_split_size(), p_.vmm));
  ThreadFront* made = fronts_.back().get();
  // A free slot, else the last one: a thread using more allocators than slots gets a new front
  // from the allocator whose slot it lost (the old one's blocks return at the next flush).
  Slot* slot = &tls_slots_[kSlots - 1];
  for (Slot& s : tls_slots_) {
    if (s.owner == 0) {
      slot = &s;
      break;
    }
  }
  *slot = Slot{id_, made};
  return made;
}

void ThreadFronts::LockAll() const {
  for (auto& front : fronts_) front->mu.Lock();
}

void ThreadFronts::UnlockAll() const {
  for (auto& front : fronts_) front->mu.Unlock();
}

void ThreadFronts::SetHolding(bool holding) {
  holding_ = holding;
  p_.ledger->GuardPeaks(holding && !frozen_ ? this : nullptr);
}

void ThreadFronts::Reserve(const Block& block, int direction) {
  const auto [bytes, count] = p_.ledger->SplitRiseWhenCached(block);
  const int pool = block.segment->small ? 1 : 0;
  split_bytes[pool] += direction * bytes;
  split_count[pool] += direction * count;
}

bool ThreadFronts::Adopt(Block* block) {
  if (frozen_ || !Cacheable(*block)) return false;  // TakeFree asks only while active
  ThreadFront* front = MineOrNew();
  if (front == nullptr) return false;
  LockAll();
  if (!front->cache.HasRoomFor(block->size)) {
    UnlockAll();
    return false;
  }
  // The split statistics rise by the block's pages (or its split bytes) once it is cached: the
  // true value now is the allocator's plus every front's changes, so the peaks take the rise
  // exactly. The block then keeps that rise reserved for as long as the front holds it: its
  // reuse lowers them, its next front free raises them again, unseen.
  const auto [bytes, count] = p_.ledger->SplitRiseWhenCached(*block);
  const bool small = block->segment->small;
  const int p = small ? 1 : 2;
  struct Split {
    PoolStat DeviceStats::*stat;
    std::int64_t rise;
    std::int64_t* reserved;
  };
  const Split splits[] = {{&DeviceStats::inactive_split_bytes, bytes, split_bytes},
                          {&DeviceStats::inactive_split, count, split_count}};
  bool over = false;
  for (const Split& split : splits) {
    PoolStat& stat = p_.stats->*split.stat;
    std::int64_t now_pool = stat.by_pool[p].current + split.rise;
    std::int64_t now_all = stat.by_pool[0].current + split.rise;
    for (const auto& f : fronts_) {
      now_pool += (f->changes.*split.stat).by_pool[p].current;
      now_all += (f->changes.*split.stat).by_pool[0].current;
    }
    stat.by_pool[p].peak = std::max(stat.by_pool[p].peak, now_pool);
    stat.by_pool[0].peak = std::max(stat.by_pool[0].peak, now_all);
    const std::int64_t reserved_pool = split.reserved[small ? 1 : 0] + split.rise;
    const std::int64_t reserved_all = split.reserved[0] + split.reserved[1] + split.rise;
    over |= stat.by_pool[p].current + reserved_pool > stat.by_pool[p].peak ||
            stat.by_pool[0].current + reserved_all > stat.by_pool[0].peak;
  }
  // The blocks fronts have out hold reserves that the peaks no longer cover: they leave their
  // fronts (their frees come to the allocator). What is left reserved is then exactly what
  // the cached blocks raised, which the peaks hold.
  if (over) DropBlocksOutLocked();
  Reserve(*block, +1);
  block->front = front;
  block->front_requested_cap = block->requested;
  front->blocks.emplace(block->addr, block);
  CacheInFront(*front, block);
  SetHolding(true);
  UnlockAll();
  return true;
}

ThreadFronts::FreeOutcome ThreadFronts::TakeFree(Block* block, bool fronts_active) {
  if (block->front != nullptr && !Release(block)) return FreeOutcome::kRefused;
  if (fronts_active && Adopt(block)) return FreeOutcome::kCached;
  return FreeOutcome::kNotTheirs;
}

void ThreadFronts::DropBlocksOutLocked() {
  for (auto& front : fronts_) {
    absl::erase_if(front->blocks, [&](const auto& entry) {
      Block* block = entry.second;
      if (block->front_cached) return false;
      Reserve(*block, -1);
      block->front = nullptr;
      return true;
    });
  }
}

bool ThreadFronts::Release(Block* block) {
  ThreadFront* front = block->front;
  MutexLock lock(&front->mu);
  if (block->front_cached) return false;
  front->blocks.erase(block->addr);
  Reserve(*block, -1);
  block->front = nullptr;
  return true;
}

void ThreadFronts::FoldLocked() {
  for (auto& front : fronts_) {
    p_.stats->AddChanges(front->changes);
    front->changes = DeviceStats{};
    p_.ledger->TakePagesOf(front->ledger);
  }
}

void ThreadFronts::FoldAndFreeze() {
  LockAll();
  FoldLocked();
  for (auto& front : fronts_) front->frozen = true;
  frozen_ = true;
  SetHolding(holding_);
  UnlockAll();
}

void ThreadFronts::FlushAll() {
  if (!holding_ && !frozen_) return;
  LockAll();
  FoldLocked();
  for (auto& front : fronts_) {
    // Counted cached by the fold; into the allocator's reuse cache as they are.
    for (Block* block : front->cache.TakeAllByAddress()) {
      block->front = nullptr;
      block->front_cached = false;
      block->state = BlockState::kCached;
      p_.reuse_cache->Push(block);
    }
    for (auto& [addr, block] : front->blocks) block->front = nullptr;
    front->blocks.clear();
    front->frozen = false;
  }
  for (int i = 0; i < 2; ++i) split_bytes[i] = split_count[i] = 0;
  frozen_ = false;
  SetHolding(false);
  UnlockAll();
}

void ThreadFronts::AddChangesTo(DeviceStats& stats) const {
  if (!holding_) return;  // a flush or fold zeroed every front's changes
  // All at once: the sum is then the statistics of one instant.
  LockAll();
  for (const auto& front : fronts_) stats.AddChanges(front->changes);
  UnlockAll();
}

void ThreadFronts::SetMaxSplitSize(std::size_t bytes) {
  FlushAll();
  for (auto& front : fronts_) {
    MutexLock lock(&front->mu);
    front->ledger.SetMaxSplitSize(bytes);
  }
}

void ThreadFronts::Stop() {
  FlushAll();
  watching_ = false;
  active_.store(false, std::memory_order_release);
}

}  // namespace vramcache
