// Live counts of an arena's pages: Acquire and Release, the page transitions they cause (unbacked
// -> live, free -> live, alias -> live or unmapped, live -> free with a mark and one more
// remembered use), and the undo of a failed Acquire. Where a chunk comes from is
// vmm_chunk_pool.cc's concern.
#include "allocator/core/vmm_arena.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_format.h"
#include "allocator/core/relaxed_capture.h"

namespace vramcache {

VmmArena::VmmArena(ChunkPool* pool, std::uint32_t id, DevicePtr base, std::size_t bytes,
                   std::size_t granularity, StreamHandle stream, bool small)
    : pool_(pool),
      id_(id),
      base_(base),
      granularity_(granularity),
      stream_(stream),
      small_(small),
      pages_(bytes / granularity) {}

absl::Status VmmArena::RangeError(const char* operation, DevicePtr addr, std::size_t bytes) const {
  if (bytes == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vramcache: %s of 0 bytes at %#x: an empty range", operation, addr));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("vramcache: %s of %d bytes at %#x: not inside the arena [%#x, %#x)",
                      operation, bytes, addr, base_, base_ + size()));
}

absl::StatusOr<std::size_t> VmmArena::UnbackedPages(DevicePtr addr, std::size_t bytes) const {
  std::size_t first = 0;
  std::size_t end = 0;
  if (absl::Status s = PagesOf("UnbackedPages", addr, bytes, &first, &end); !s.ok()) return s;
  const bool has_aliases = mapped_pages_ > live_pages_ + free_pages_;
  if (mapped_pages_ == pages_.size() && !has_aliases) return std::size_t{0};
  if (mapped_pages_ == 0) return end - first;
  std::size_t unbacked = 0;
  for (std::size_t p = first; p < end; ++p) {
    const Page& page = pages_[p];
    if (!page.mapped) {
      ++unbacked;
    } else if (page.live == 0 && page.group == kNone) {
      // An alias: free to take back unless its chunk serves a page in use.
      const ChunkPool::ChunkRecord& record = pool_->chunk_records_.at(page.chunk);
      unbacked += pool_->PageAt(record.holder).live > 0 ? 1 : 0;
    }
  }
  return unbacked;
}

VmmArena::PageView VmmArena::page(std::size_t index) const {
  const Page& p = pages_.at(index);
  const bool waiting = p.group != kNone && pool_->groups_[p.group].waiting;
  const bool alias = p.mapped && p.live == 0 && p.group == kNone;
  return PageView{p.mapped, p.live, waiting, alias};
}

// ------------------------------------------------------------------ ChunkPool: live counts

absl::Status ChunkPool::Acquire(VmmArena& arena, DevicePtr addr, std::size_t bytes) {
  std::size_t first = 0;
  std::size_t end = 0;
  if (absl::Status s = arena.PagesOf("Acquire", addr, bytes, &first, &end); !s.ok()) return s;
  ++clock_;
  for (std::size_t p = first; p < end; ++p) {
    if (arena.pages_[p].live == std::numeric_limits<std::uint32_t>::max()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "vramcache: Acquire of %d bytes at %#x: page %#x already has the most live ranges a "
          "page can count",
          bytes, addr, arena.PageAddress(p)));
    }
  }

  // First every page becomes live, those holding their chunk first, so that no chunk this call
  // needs is stolen from a page of its own range nor claimed by one of its aliases; then the
  // aliases take their chunks back where they can; then the rest get chunks.
  std::vector<AcquiredFreePage>& taken = acquire_scratch_;
  taken.clear();
  bool needs_chunks = false;
  bool has_aliases = false;
  bool took_waiting = false;
  for (std::size_t p = first; p < end; ++p) {
    VmmArena::Page& page = arena.pages_[p];
    if (page.live++ > 0) continue;
    ++arena.live_pages_;
    if (arena.small_) ++small_live_pages_;
    page.live_since = clock_;
    peak_live_pages_ = std::max(peak_live_pages_, ++live_pages_);
    if (page.group != kNone) {
      const FreeGroup& group = groups_[page.group];
      taken.push_back({p, TakenKind::kOwn, group.seq, page.group, group.waiting});
      took_waiting |= group.waiting;
      RemoveFree(arena, p);
    } else if (page.mapped) {
      taken.push_back({p, TakenKind::kAlias});
      has_aliases = true;
    } else {
      taken.push_back({p, TakenKind::kNeedsChunk});
      needs_chunks = true;
    }
  }
  if (has_aliases) {
    std::uint32_t busy_mark = kNone;
    for (AcquiredFreePage& t : taken) {
      if (t.kind != TakenKind::kAlias) continue;
      absl::StatusOr<bool> claimable = AliasClaimable(arena, t.page, &busy_mark);
      if (!claimable.ok()) {
        UndoAcquire(arena, first, end);
        return claimable.status();
      }
      if (!*claimable) {
        t.kind = TakenKind::kConflict;
        needs_chunks = true;
        continue;
      }
      ChunkRecord& record = chunk_records_.at(arena.pages_[t.page].chunk);
      VmmArena& holder_arena = *arenas_[record.holder.arena];
      const FreeGroup& group = groups_[PageAt(record.holder).group];
      t.kind = TakenKind::kClaimed;
      t.free_seq = group.seq;
      t.group = PageAt(record.holder).group;
      t.waiting = group.waiting;
      t.holder = record.holder;
      took_waiting |= group.waiting;
      RemoveFree(holder_arena, record.holder.page);
      SetHolder(record, PageRef{arena.id_, static_cast<std::uint32_t>(t.page)});
      if (t.waiting) {
        // Claimed on the same stream before the old holder's last use was seen complete: the
        // old holder, now an alias, keeps that use of the mark as its fence.
        VmmArena::Page& old_holder = PageAt(t.holder);
        old_holder.fence = t.group;
        old_holder.fence_seq = t.free_seq;
        t.fenced = true;
      }
      ++counters_.alias_reuses;
    }
  }
  created_scratch_.clear();
  created_cached_scratch_.clear();
  if (needs_chunks) {
    // A request that cannot fit by arithmetic creates and maps nothing: more pages than the
    // reusable chunks plus what the budget and the device's free memory allow.
    std::size_t unbacked = 0;
    for (const AcquiredFreePage& t : taken) {
      unbacked += t.kind == TakenKind::kNeedsChunk || t.kind == TakenKind::kConflict;
    }
    if (absl::Status s = CheckFeasible(unbacked); !s.ok()) {
      UndoAcquire(arena, first, end);
      return ExhaustedError(arena, addr, bytes, unbacked, s);
    }
    bool scan_waiting = true;
    for (AcquiredFreePage& t : taken) {
      if (t.kind != TakenKind::kNeedsChunk && t.kind != TakenKind::kConflict) continue;
      absl::Status s = absl::OkStatus();
      if (t.kind == TakenKind::kConflict) {
        s = UnmapAlias(arena, t.page);
        if (s.ok()) t.kind = TakenKind::kNeedsChunk;
      }
      if (s.ok()) s = BackPage(arena, t.page, &scan_waiting);
      if (!s.ok()) {
        UndoAcquire(arena, first, end);
        // What this call created goes back: a failed request leaves held memory as it was.
        ReleaseCreated(arena);
        if (absl::IsResourceExhausted(s)) {
          std::size_t unbacked = 0;
          for (const AcquiredFreePage& a : taken) {
            unbacked += a.kind == TakenKind::kNeedsChunk || a.kind == TakenKind::kConflict;
          }
          return ExhaustedError(arena, addr, bytes, unbacked, s);
        }
        return s;
      }
    }
  }
  // Pages reused in place no longer need their marks (a fence keeps its use); aliases that took
  // their chunk back hold it again and need no fence.
  if (took_waiting || has_aliases) {
    for (const AcquiredFreePage& t : taken) {
      if (t.waiting && !t.fenced) DropMarkUse(t.group, t.free_seq);
      if (t.kind == TakenKind::kClaimed) DropFence(arena.pages_[t.page]);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> ChunkPool::AliasClaimable(const VmmArena& arena, std::size_t page,
                                               std::uint32_t* busy_mark) {
  const ChunkRecord& record = chunk_records_.at(arena.pages_[page].chunk);
  const VmmArena::Page& holder = PageAt(record.holder);
  if (holder.live > 0) return false;
  const std::uint32_t group = holder.group;
  if (!groups_[group].waiting) return true;
  // Work on the same stream runs after the holder's last use; another stream's must be done.
  if (arenas_[record.holder.arena]->stream_slot_ == arena.stream_slot_) return true;
  if (group == *busy_mark || !QueriesAllowed()) return false;
  RelaxedCapture relaxed(device_);
  absl::StatusOr<bool> done = device_->QueryEvent(groups_[group].event);
  if (!done.ok()) return done.status();
  if (*done) {
    ResolveMark(group);
  } else {
    *busy_mark = group;
  }
  return *done;
}

void ChunkPool::UndoAcquire(VmmArena& arena, std::size_t first, std::size_t end) {
  for (std::size_t p = first; p < end; ++p) --arena.pages_[p].live;
  // acquire_scratch_ lists exactly the pages that had no live count.
  for (const AcquiredFreePage& t : acquire_scratch_) {
    --arena.live_pages_;
    --live_pages_;
    if (arena.small_) --small_live_pages_;
    switch (t.kind) {
      case TakenKind::kOwn:
        Relist(arena, t.page, t);
        break;
      case TakenKind::kClaimed: {
        // The chunk goes back to the holder it was taken from (outside this range, untouched).
        ChunkRecord& record = chunk_records_.at(arena.pages_[t.page].chunk);
        SetHolder(record, t.holder);
        if (t.fenced) PageAt(t.holder).fence = kNone;  // its mark use goes back with it
        Relist(*arenas_[t.holder.arena], t.holder.page, t);
        break;
      }
      case TakenKind::kNeedsChunk:
        // Mapped by this call and never used: ready at once.
        if (arena.pages_[t.page].mapped) {
          AddToGroup(arena, t.page, ReadyGroup(next_seq_++, arena.id_), /*append=*/true);
        }
        break;
      case TakenKind::kAlias:
      case TakenKind::kConflict:
        break;  // still an alias
    }
  }
}

void ChunkPool::Relist(VmmArena& arena, std::size_t page, const AcquiredFreePage& before) {
  // Its mark may have completed (and been retired) meanwhile.
  const FreeGroup& mark = groups_[before.group];
  if (before.waiting && mark.waiting && mark.seq == before.free_seq) {
    AddToGroup(arena, page, before.group, /*append=*/false);
  } else {
    AddToGroup(arena, page, ReadyGroup(before.free_seq, arena.id_), /*append=*/false);
  }
}

// Inline into Release, its only caller (a call cost the replays about 90,000 instructions a
// pass, docs/benchmarks.md "#14 host cost").
inline void ChunkPool::EndUses(VmmArena& arena, std::size_t first, std::size_t end,
                               std::uint32_t group) {
  for (std::size_t p = first; p < end; ++p) {
    VmmArena::Page& page = arena.pages_[p];
    if (--page.live > 0) continue;
    --arena.live_pages_;
    --live_pages_;
    if (arena.small_) --small_live_pages_;
    if (page.uses.size() == VmmArena::kPageHistory) page.uses.erase(page.uses.begin());
    page.uses.push_back({page.live_since, clock_});
    AddToGroup(arena, p, group, /*append=*/true);
  }
}

absl::Status ChunkPool::Release(VmmArena& arena, DevicePtr addr, std::size_t bytes,
                                bool last_use_complete, VmmArena::MarkRule rule) {
  std::size_t first = 0;
  std::size_t end = 0;
  if (absl::Status s = arena.PagesOf("Release", addr, bytes, &first, &end); !s.ok()) return s;
  ++clock_;
  std::size_t freed = 0;
  for (std::size_t p = first; p < end; ++p) {
    const VmmArena::Page& page = arena.pages_[p];
    if (page.live == 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "vramcache: Release of %d bytes at %#x: page %#x is not in use (released more often "
          "than acquired)",
          bytes, addr, arena.PageAddress(p)));
    }
    freed += page.live == 1 ? 1 : 0;
  }
  if (freed == 0) {
    for (std::size_t p = first; p < end; ++p) --arena.pages_[p].live;
    return absl::OkStatus();
  }
  if (last_use_complete) {
    EndUses(arena, first, end, ReadyGroup(next_seq_++, arena.id_));
    return absl::OkStatus();
  }
  if (rule == VmmArena::MarkRule::kUnlessStreamCaptures && StreamCaptures(arena.stream())) {
    return absl::UnavailableError("vramcache: Release: no free mark may be recorded now");
  }
  absl::StatusOr<EventHandle> event = TakeEvent();
  if (!event.ok()) return event.status();
  if (absl::Status s = device_->RecordEvent(*event, arena.stream()); !s.ok()) {
    spare_events_.push_back(*event);
    return s;
  }
  // The new mark: the newest of all and of its stream.
  const std::uint32_t g = NewGroup(next_seq_++, arena.id_);
  FreeGroup& mark = groups_[g];
  mark.waiting = true;
  mark.event = *event;
  mark.pages = freed;
  mark.stream_slot = arena.stream_slot_;
  mark.older = newest_mark_;
  if (newest_mark_ != kNone) {
    groups_[newest_mark_].newer = g;
  } else {
    oldest_mark_ = g;
  }
  newest_mark_ = g;
  StreamMarks& stream = streams_[arena.stream_slot_];
  mark.older_in_stream = stream.newest;
  if (stream.newest != kNone) {
    groups_[stream.newest].newer_in_stream = g;
  } else {
    stream.oldest = g;
  }
  stream.newest = g;
  ++mark_count_;
  EndUses(arena, first, end, g);
  return absl::OkStatus();
}

// ------------------------------------------------------------------ ChunkPool: free groups

std::uint32_t ChunkPool::NewGroup(std::uint64_t seq, std::uint32_t arena) {
  std::uint32_t g;
  if (!recycled_groups_.empty()) {
    g = recycled_groups_.back();
    recycled_groups_.pop_back();
    groups_[g] = FreeGroup{};
  } else {
    g = static_cast<std::uint32_t>(groups_.size());
    groups_.emplace_back();
  }
  groups_[g].seq = seq;
  groups_[g].arena = arena;
  return g;
}

void ChunkPool::RecycleGroup(std::uint32_t group) {
  groups_[group].seq = 0;
  groups_[group].waiting = false;
  recycled_groups_.push_back(group);
}

std::uint32_t ChunkPool::ReadyGroup(std::uint64_t seq, std::uint32_t arena) {
  auto [it, inserted] = ready_.try_emplace(seq, kNone);
  if (inserted) it->second = NewGroup(seq, arena);
  return it->second;
}

void ChunkPool::AddToGroup(VmmArena& arena, std::size_t page, std::uint32_t group, bool append) {
  FreeGroup& g = groups_[group];
  VmmArena::Page& p = arena.pages_[page];
  const auto index = static_cast<std::uint32_t>(page);
  // The page that will follow it: none when appending, else the first one above it.
  std::uint32_t next = kNone;
  if (!append) {
    next = g.head;
    while (next != kNone && next < index) next = arena.pages_[next].next;
  }
  const std::uint32_t prev = next == kNone ? g.tail : arena.pages_[next].prev;
  p.group = group;
  p.prev = prev;
  p.next = next;
  if (prev != kNone) {
    arena.pages_[prev].next = index;
  } else {
    g.head = index;
  }
  if (next != kNone) {
    arena.pages_[next].prev = index;
  } else {
    g.tail = index;
  }
  ++g.listed;
  ++arena.free_pages_;
  if (g.waiting) {
    ++waiting_pages_;
  } else {
    ++ready_pages_;
  }
}

void ChunkPool::RemoveFree(VmmArena& arena, std::size_t page) {
  VmmArena::Page& p = arena.pages_[page];
  const std::uint32_t group = p.group;
  FreeGroup& g = groups_[group];
  if (p.prev != kNone) {
    arena.pages_[p.prev].next = p.next;
  } else {
    g.head = p.next;
  }
  if (p.next != kNone) {
    arena.pages_[p.next].prev = p.prev;
  } else {
    g.tail = p.prev;
  }
  p.group = kNone;
  p.prev = kNone;
  p.next = kNone;
  --g.listed;
  --arena.free_pages_;
  if (g.waiting) {
    --waiting_pages_;  // the mark stays until its pages stop needing it (DropMarkUse)
    return;
  }
  --ready_pages_;
  if (g.listed == 0) {
    ready_.erase(g.seq);
    RecycleGroup(group);
  }
}

std::uint32_t ChunkPool::StreamSlot(StreamHandle stream) {
  for (std::size_t i = 0; i < streams_.size(); ++i) {
    if (streams_[i].stream == stream && !streams_[i].retired) return static_cast<std::uint32_t>(i);
  }
  streams_.push_back(StreamMarks{stream, kNone, kNone});
  return static_cast<std::uint32_t>(streams_.size() - 1);
}

}  // namespace vramcache

namespace vramcache {

void ChunkPool::StreamDestroyed(StreamHandle stream) {
  std::uint32_t fresh = kNone;
  for (const std::unique_ptr<VmmArena>& arena : arenas_) {
    if (arena->stream() != stream) continue;
    if (fresh == kNone) {
      for (StreamMarks& marks : streams_) marks.retired |= marks.stream == stream;
      streams_.push_back(StreamMarks{stream, kNone, kNone});
      fresh = static_cast<std::uint32_t>(streams_.size() - 1);
    }
    arena->stream_slot_ = fresh;
  }
}

}  // namespace vramcache
