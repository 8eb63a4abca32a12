// Live counts of an arena's pages: Acquire and Release, the page transitions they cause (unbacked
// -> live, free -> live, live -> free with a mark), and the undo of a failed Acquire. Where a
// chunk comes from is vmm_chunk_pool.cc's concern.
#include "allocator/core/vmm_arena.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_format.h"

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

bool VmmArena::Contains(DevicePtr addr, std::size_t bytes) const {
  return addr >= base_ && bytes <= size() && addr - base_ <= size() - bytes;
}

absl::Status VmmArena::PagesOf(const char* operation, DevicePtr addr, std::size_t bytes,
                               std::size_t* first, std::size_t* end) const {
  if (bytes == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vramcache: %s of 0 bytes at %#x: an empty range", operation, addr));
  }
  if (!Contains(addr, bytes)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vramcache: %s of %d bytes at %#x: not inside the arena [%#x, %#x)",
                        operation, bytes, addr, base_, base_ + size()));
  }
  const std::size_t offset = addr - base_;
  *first = offset / granularity_;
  *end = (offset + bytes + granularity_ - 1) / granularity_;
  return absl::OkStatus();
}

absl::Status VmmArena::Acquire(DevicePtr addr, std::size_t bytes) {
  return pool_->Acquire(*this, addr, bytes);
}

absl::Status VmmArena::Release(DevicePtr addr, std::size_t bytes) {
  return pool_->Release(*this, addr, bytes);
}

absl::StatusOr<std::size_t> VmmArena::UnbackedPages(DevicePtr addr, std::size_t bytes) const {
  std::size_t first = 0;
  std::size_t end = 0;
  if (absl::Status s = PagesOf("UnbackedPages", addr, bytes, &first, &end); !s.ok()) return s;
  return static_cast<std::size_t>(std::count_if(pages_.begin() + first, pages_.begin() + end,
                                                [](const Page& p) { return !p.mapped; }));
}

VmmArena::PageView VmmArena::page(std::size_t index) const {
  const Page& p = pages_.at(index);
  return PageView{p.mapped, p.live, p.waiting};
}

// ------------------------------------------------------------------ ChunkPool: live counts

absl::Status ChunkPool::Acquire(VmmArena& arena, DevicePtr addr, std::size_t bytes) {
  std::size_t first = 0;
  std::size_t end = 0;
  if (absl::Status s = arena.PagesOf("Acquire", addr, bytes, &first, &end); !s.ok()) return s;
  for (std::size_t p = first; p < end; ++p) {
    if (arena.pages_[p].live == std::numeric_limits<std::uint32_t>::max()) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "vramcache: Acquire of %d bytes at %#x: page %#x already has the most live ranges a "
          "page can count",
          bytes, addr, arena.PageAddress(p)));
    }
  }

  // First every page becomes live, so that no chunk this call needs is stolen from a page of
  // its own range; then the pages without a chunk get one.
  std::vector<AcquiredFreePage>& newly_live = acquire_scratch_;
  newly_live.clear();
  for (std::size_t p = first; p < end; ++p) {
    VmmArena::Page& page = arena.pages_[p];
    if (page.live++ > 0) continue;
    ++arena.live_pages_;
    if (page.mapped) {
      newly_live.push_back({p, page.free_seq, page.waiting});
      RemoveFree(arena, p);
    } else {
      newly_live.push_back({p, 0, false});
    }
  }
  bool scan_waiting = true;
  for (const AcquiredFreePage& acquired : newly_live) {
    if (arena.pages_[acquired.page].mapped) continue;
    if (absl::Status s = BackPage(arena, acquired.page, &scan_waiting); !s.ok()) {
      UndoAcquire(arena, first, end);
      if (absl::IsResourceExhausted(s)) {
        std::size_t unbacked = 0;
        for (const AcquiredFreePage& a : newly_live) unbacked += a.free_seq == 0 ? 1 : 0;
        return ExhaustedError(arena, addr, bytes, unbacked, s);
      }
      return s;
    }
  }
  // Pages reused in place no longer need their marks.
  for (const AcquiredFreePage& acquired : newly_live) {
    if (acquired.waiting) DropMarkUse(acquired.free_seq);
  }
  return absl::OkStatus();
}

void ChunkPool::UndoAcquire(VmmArena& arena, std::size_t first, std::size_t end) {
  auto acquired = acquire_scratch_.begin();
  for (std::size_t p = first; p < end; ++p) {
    VmmArena::Page& page = arena.pages_[p];
    if (--page.live > 0) continue;
    --arena.live_pages_;
    // acquire_scratch_ lists exactly the pages that were not live, in page order.
    const AcquiredFreePage& before = *acquired++;
    if (!page.mapped) continue;
    if (before.free_seq == 0) {
      // Mapped by this call and never used: ready at once.
      AddFree(arena, p, next_seq_++, /*waiting=*/false);
    } else {
      // Its mark may have completed (and been retired) meanwhile.
      const bool still_waiting = before.waiting && marks_.contains(before.free_seq);
      AddFree(arena, p, before.free_seq, still_waiting);
    }
  }
}

absl::Status ChunkPool::Release(VmmArena& arena, DevicePtr addr, std::size_t bytes) {
  std::size_t first = 0;
  std::size_t end = 0;
  if (absl::Status s = arena.PagesOf("Release", addr, bytes, &first, &end); !s.ok()) return s;
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
  std::uint64_t seq = 0;
  if (freed > 0) {
    absl::StatusOr<EventHandle> event = TakeEvent();
    if (!event.ok()) return event.status();
    if (absl::Status s = device_->RecordEvent(*event, arena.stream()); !s.ok()) {
      spare_events_.push_back(*event);
      return s;
    }
    seq = next_seq_++;
    marks_.emplace(seq, FreeMark{*event, arena.stream(), freed});
  }
  for (std::size_t p = first; p < end; ++p) {
    VmmArena::Page& page = arena.pages_[p];
    if (--page.live > 0) continue;
    --arena.live_pages_;
    AddFree(arena, p, seq, /*waiting=*/true);
  }
  return absl::OkStatus();
}

void ChunkPool::AddFree(VmmArena& arena, std::size_t page, std::uint64_t seq, bool waiting) {
  VmmArena::Page& p = arena.pages_[page];
  p.free_seq = seq;
  p.waiting = waiting;
  const FreeKey key{seq, arena.id_, page};
  if (waiting) {
    waiting_[arena.stream()].insert(key);
    ++waiting_pages_;
  } else {
    ready_.insert(key);
  }
}

void ChunkPool::RemoveFree(VmmArena& arena, std::size_t page) {
  VmmArena::Page& p = arena.pages_[page];
  const FreeKey key{p.free_seq, arena.id_, page};
  if (p.waiting) {
    auto it = waiting_.find(arena.stream());
    it->second.erase(key);
    if (it->second.empty()) waiting_.erase(it);
    --waiting_pages_;
  } else {
    ready_.erase(key);
  }
  p.free_seq = 0;
  p.waiting = false;
}

}  // namespace vramcache
