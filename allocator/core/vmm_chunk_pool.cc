// Where a page's chunk comes from and where chunks go: the cache, stitching from ready pages (a
// compatible chunk first; the old page keeps its mapping as an alias), creation within the
// budget and the compatibility headroom; the chunk records (holder and mappings); Trim,
// UnmapFreePages and ReleaseAll. The free marks that say when a freed page's chunk is ready are
// vmm_chunk_marks.cc's concern, the pool's self-check vmm_chunk_invariants.cc's, and the live
// counts that decide when a page needs a chunk vmm_arena.cc's.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/core/relaxed_capture.h"
#include "allocator/core/vmm_arena.h"

namespace vramcache {

namespace {

absl::Status CheckGranularity(std::size_t granularity) {
  if (granularity == 0 || (granularity & (granularity - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("vramcache: chunk granularity %d is not a power of two", granularity));
  }
  return absl::OkStatus();
}

}  // namespace

ChunkPool::ChunkPool(Device* device, std::size_t granularity)
    : device_(device), granularity_(granularity) {
  if (absl::Status s = CheckGranularity(granularity); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    std::abort();
  }
}

absl::StatusOr<std::unique_ptr<ChunkPool>> ChunkPool::Create(Device* device,
                                                             std::size_t granularity) {
  if (absl::Status s = CheckGranularity(granularity); !s.ok()) return s;
  return std::make_unique<ChunkPool>(device, granularity);
}

ChunkPool::~ChunkPool() { ReleaseAll().IgnoreError(); }

absl::StatusOr<VmmArena*> ChunkPool::CreateArena(std::size_t bytes, StreamHandle stream,
                                                 bool small) {
  if (bytes == 0 || bytes % granularity_ != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: an arena of %d bytes: the size must be a positive multiple of the "
        "granularity (%d bytes)",
        bytes, granularity_));
  }
  if (bytes / granularity_ >= VmmArena::kNone) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache: an arena of %d bytes: more pages of %d bytes than an arena can count", bytes,
        granularity_));
  }
  absl::StatusOr<DevicePtr> base = device_->ReserveAddress(bytes);
  if (!base.ok()) return base.status();
  const auto id = static_cast<std::uint32_t>(arenas_.size());
  arenas_.push_back(
      std::unique_ptr<VmmArena>(new VmmArena(this, id, *base, bytes, granularity_, stream, small)));
  arenas_.back()->stream_slot_ = StreamSlot(stream);
  address_bytes_ += bytes;
  return arenas_.back().get();
}

absl::Status ChunkPool::DiscardNewestArena(VmmArena* arena) {
  if (arenas_.empty() || arenas_.back().get() != arena || arena->mapped_pages_ > 0 ||
      arena->live_pages_ > 0) {
    return absl::FailedPreconditionError(
        "vramcache: only the newest arena, with nothing mapped, can be discarded");
  }
  if (absl::Status s = device_->ReleaseAddress(arena->base(), arena->size()); !s.ok()) return s;
  address_bytes_ -= arena->size();
  arenas_.pop_back();
  return absl::OkStatus();
}

// ------------------------------------------------------------------ backing a page

absl::Status ChunkPool::BackPage(VmmArena& arena, std::size_t page, bool* scan_waiting) {
  if (!cached_chunks_.empty()) {
    const ChunkHandle chunk = cached_chunks_.back();
    cached_chunks_.pop_back();
    return MapChunk(arena, page, StolenChunk{chunk});
  }
  // Stealing before creating: held memory (what the user pays for) grows only when no free
  // page anywhere can give its chunk, or, within the headroom, when none is compatible.
  absl::StatusOr<std::optional<StolenChunk>> stolen =
      StealChunk(*scan_waiting, aliasing_, aliasing_ ? &arena.pages_[page] : nullptr);
  if (!stolen.ok()) return stolen.status();
  if (aliasing_ && !stolen->has_value() && !ready_.empty()) {
    if (CompatibilityHeadroom()) {
      absl::StatusOr<ChunkHandle> created = device_->CreateChunk(granularity_);
      if (created.ok()) {
        ++counters_.chunks_created;
        ++counters_.compatibility_creations;
        return MapCreated(arena, page, *created);
      }
      if (!absl::IsResourceExhausted(created.status())) return created.status();
      ++counters_.device_refusals;
    }
    stolen = StealChunk(/*scan_waiting=*/false, aliasing_);  // the oldest, compatible or not
    if (!stolen.ok()) return stolen.status();
  }
  if (!stolen->has_value()) *scan_waiting = false;  // nothing completes meanwhile, as a rule

  if (!stolen->has_value()) {
    absl::Status refusal = absl::OkStatus();
    if (budget_bytes_ > 0 && held_bytes() + granularity_ > budget_bytes_) {
      ++counters_.budget_refusals;
      refusal = absl::ResourceExhaustedError(
          "one more chunk would pass the budget, and no free page can give its chunk");
    } else {
      absl::StatusOr<ChunkHandle> created = device_->CreateChunk(granularity_);
      if (created.ok()) {
        ++counters_.chunks_created;
        return MapCreated(arena, page, *created);
      }
      if (!absl::IsResourceExhausted(created.status())) return created.status();
      ++counters_.device_refusals;
      refusal = created.status();
    }
    // Before giving up: a mark may have completed since the last scan.
    stolen = StealChunk(/*scan_waiting=*/true, aliasing_);
    if (!stolen.ok()) return stolen.status();
    if (!stolen->has_value()) return refusal;
  }
  if (absl::Status s = MapChunk(arena, page, **stolen); !s.ok()) return s;
  ++counters_.stitches;
  return absl::OkStatus();
}

absl::Status ChunkPool::MapChunk(VmmArena& arena, std::size_t page, const StolenChunk& stolen) {
  // A chunk mapped nowhere else goes back to the cache on failure; a stolen alias goes back to
  // its holder, which is ready again.
  auto give_back = [&] {
    if (!stolen.aliased) {
      cached_chunks_.push_back(stolen.chunk);
      return;
    }
    VmmArena& holder_arena = *arenas_[stolen.holder.arena];
    AddToGroup(holder_arena, stolen.holder.page, ReadyGroup(next_seq_++, stolen.holder.arena),
               /*append=*/true);
  };
  const DevicePtr va = arena.PageAddress(page);
  if (absl::Status s = device_->Map(va, granularity_, stolen.chunk); !s.ok()) {
    give_back();
    return s;
  }
  ++counters_.maps;
  for (int peer : peers_) {
    // A page a peer cannot reach is not handed out: unmapped again.
    if (absl::Status s = device_->GrantPeerAccess(va, granularity_, peer); !s.ok()) {
      if (device_->Unmap(va, granularity_).ok()) ++counters_.unmaps;
      give_back();
      return s;
    }
  }
  VmmArena::Page& p = arena.pages_[page];
  p.chunk = stolen.chunk;
  p.mapped = true;
  ++arena.mapped_pages_;
  ++mapped_pages_;
  const PageRef here{arena.id_, static_cast<std::uint32_t>(page)};
  auto [it, inserted] = chunk_records_.try_emplace(stolen.chunk);
  if (inserted) {
    it->second.holder = here;
    if (arena.small_) ++small_held_chunks_;
  } else {
    SetHolder(it->second, here);
  }
  it->second.mappings.push_back(here);
  return absl::OkStatus();
}

absl::Status ChunkPool::MapCreated(VmmArena& arena, std::size_t page, ChunkHandle chunk) {
  absl::Status s = MapChunk(arena, page, StolenChunk{chunk});
  if (s.ok()) {
    created_scratch_.push_back(page);
  } else {
    created_cached_scratch_.push_back(chunk);  // cached by MapChunk: released on failure too
  }
  return s;
}

absl::Status ChunkPool::CheckFeasible(std::size_t unbacked) {
  const std::size_t reusable = cached_chunks_.size() + ready_pages_ + waiting_pages_;
  if (unbacked <= reusable) return absl::OkStatus();
  const std::size_t to_create = (unbacked - reusable) * granularity_;
  if (budget_bytes_ > 0 && held_bytes() + to_create > budget_bytes_) {
    ++counters_.budget_refusals;
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%d more bytes would pass the budget even with every free page's chunk reused", to_create));
  }
  absl::StatusOr<DeviceMemInfo> info = device_->MemInfo();
  if (info.ok() && info->free_bytes < to_create) {
    ++counters_.device_refusals;
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%d more bytes are needed even with every free page's chunk reused, and the device has "
        "%d bytes free",
        to_create, info->free_bytes));
  }
  return absl::OkStatus();
}

void ChunkPool::ReleaseCreated(VmmArena& arena) {
  // Pages this call mapped with new chunks are ready pages now (UndoAcquire); the chunks a
  // failed Map left cached are in the cache.
  for (std::size_t page : created_scratch_) {
    VmmArena::Page& p = arena.pages_[page];
    if (!p.mapped || p.live > 0 || p.group == kNone || groups_[p.group].waiting) continue;
    const ChunkHandle chunk = p.chunk;
    ChunkRecord& record = chunk_records_.at(chunk);
    if (record.mappings.size() != 1) continue;  // stitched elsewhere meanwhile: keep it
    if (!device_->Unmap(arena.PageAddress(page), granularity_).ok()) continue;
    ++counters_.unmaps;
    RemoveFree(arena, page);
    if (arena.small_) --small_held_chunks_;
    chunk_records_.erase(chunk);
    p.chunk = 0;
    p.mapped = false;
    --arena.mapped_pages_;
    --mapped_pages_;
    cached_chunks_.push_back(chunk);
    created_cached_scratch_.push_back(chunk);
  }
  for (ChunkHandle chunk : created_cached_scratch_) {
    auto it = std::find(cached_chunks_.begin(), cached_chunks_.end(), chunk);
    if (it == cached_chunks_.end()) continue;
    if (!device_->ReleaseChunk(chunk).ok()) continue;
    ++counters_.chunks_released;
    cached_chunks_.erase(it);
  }
  created_scratch_.clear();
  created_cached_scratch_.clear();
}

void ChunkPool::SetHolder(ChunkRecord& record, PageRef holder) {
  if (arenas_[record.holder.arena]->small_) --small_held_chunks_;
  if (arenas_[holder.arena]->small_) ++small_held_chunks_;
  record.holder = holder;
}

bool ChunkPool::Compatible(const VmmArena::Page& page, ChunkHandle chunk) const {
  for (const PageRef& ref : chunk_records_.at(chunk).mappings) {
    // Both histories are in time order: one merge pass finds any overlap.
    const auto& mine = page.uses;
    const auto& theirs = PageAt(ref).uses;
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < mine.size() && j < theirs.size()) {
      if (mine[i].begin < theirs[j].end && theirs[j].begin < mine[i].end) return false;
      if (mine[i].end <= theirs[j].end) {
        ++i;
      } else {
        ++j;
      }
    }
  }
  return true;
}

bool ChunkPool::CompatibilityHeadroom() const {
  const std::size_t chunks = chunk_records_.size() + cached_chunks_.size() + 1;
  const std::size_t limit = peak_live_pages_ + (peak_live_pages_ >> kCompatibilityHeadroomShift);
  return chunks <= limit && (budget_bytes_ == 0 || chunks * granularity_ <= budget_bytes_);
}

absl::StatusOr<std::optional<ChunkPool::StolenChunk>> ChunkPool::StealChunk(
    bool scan_waiting, bool aliasing, const VmmArena::Page* for_page) {
  // Any ready page will do: one completed mark is enough. A compatible one is looked for among
  // as many ready pages as the scan examines, so completed marks are resolved up to that.
  const std::size_t wanted = for_page == nullptr ? 1 : kCompatibleScan;
  if (scan_waiting && QueriesAllowed()) {
    while (ready_pages_ < wanted) {
      absl::StatusOr<bool> resolved = ResolveCompletedMark();
      if (!resolved.ok()) return resolved.status();
      if (!*resolved) break;
    }
  }
  if (ready_.empty()) return std::nullopt;
  if (!aliasing) {
    const std::optional<PageRef> detachable = DetachableReadyPage();
    if (!detachable) return std::nullopt;
    absl::StatusOr<ChunkHandle> chunk = DetachReadyChunk(*detachable);
    if (!chunk.ok()) return chunk.status();
    return std::optional<StolenChunk>(StolenChunk{*chunk});
  }
  // The ready page keeps its mapping, as an alias of the chunk's new holder.
  std::optional<PageRef> holder;
  if (for_page == nullptr) {
    const FreeGroup& group = groups_[ready_.begin()->second];
    holder = PageRef{group.arena, group.head};
  } else {
    int examined = 0;
    for (auto it = ready_.begin(); it != ready_.end() && !holder && examined < kCompatibleScan;
         ++it) {
      const FreeGroup& group = groups_[it->second];
      const VmmArena& arena = *arenas_[group.arena];
      for (std::uint32_t p = group.head; p != kNone && examined < kCompatibleScan;
           p = arena.pages_[p].next, ++examined) {
        if (Compatible(*for_page, arena.pages_[p].chunk)) {
          holder = PageRef{group.arena, p};
          break;
        }
      }
    }
    if (!holder) return std::nullopt;
  }
  RemoveFree(*arenas_[holder->arena], holder->page);
  return std::optional<StolenChunk>(StolenChunk{PageAt(*holder).chunk, true, *holder});
}

std::optional<ChunkPool::PageRef> ChunkPool::DetachableReadyPage() {
  for (const auto& [seq, index] : ready_) {
    const FreeGroup& group = groups_[index];
    const VmmArena& arena = *arenas_[group.arena];
    for (std::uint32_t p = group.head; p != kNone; p = arena.pages_[p].next) {
      // Asked only when it matters: the answer may cost a device call (a pending probe).
      if (!AliasFenceRunning(chunk_records_.at(arena.pages_[p].chunk)) || QueriesAllowed()) {
        return PageRef{group.arena, p};
      }
    }
  }
  return std::nullopt;
}

bool ChunkPool::AliasFenceRunning(const ChunkRecord& record) const {
  for (const PageRef& mapping : record.mappings) {
    if (FenceRunning(PageAt(mapping))) return true;
  }
  return false;
}

absl::StatusOr<ChunkHandle> ChunkPool::DetachReadyChunk(PageRef holder) {
  const ChunkHandle chunk = PageAt(holder).chunk;
  // Aliases first, the holder last: on a failure the chunk still has its holder, listed.
  if (absl::Status s = UnmapAliases(chunk_records_.at(chunk)); !s.ok()) return s;
  VmmArena& arena = *arenas_[holder.arena];
  if (absl::Status s = device_->Unmap(arena.PageAddress(holder.page), granularity_); !s.ok()) {
    return s;
  }
  ++counters_.unmaps;
  RemoveFree(arena, holder.page);
  if (arena.small_) --small_held_chunks_;
  chunk_records_.erase(chunk);
  // Unmapped; its history stays (it is about the address, not the chunk).
  arena.pages_[holder.page].chunk = 0;
  arena.pages_[holder.page].mapped = false;
  --arena.mapped_pages_;
  --mapped_pages_;
  return chunk;
}

absl::Status ChunkPool::UnmapAlias(VmmArena& arena, std::size_t page) {
  if (absl::Status s = UnmapPage(arena, page); !s.ok()) return s;
  ++counters_.alias_conflicts;
  return absl::OkStatus();
}

bool ChunkPool::FenceRunning(const VmmArena::Page& page) const {
  if (page.fence == kNone) return false;
  const FreeGroup& mark = groups_[page.fence];
  return mark.waiting && mark.seq == page.fence_seq;
}

void ChunkPool::DropFence(VmmArena::Page& page) {
  if (FenceRunning(page)) DropMarkUse(page.fence, page.fence_seq);
  page.fence = kNone;
  page.fence_seq = 0;
}

absl::Status ChunkPool::AwaitFence(VmmArena& arena, std::size_t page) {
  VmmArena::Page& p = arena.pages_[page];
  if (!FenceRunning(p)) return absl::OkStatus();
  if (!QueriesAllowed()) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "the alias at %#x may still be in use by queued work, and no event may be queried "
        "during a graph capture",
        arena.PageAddress(page)));
  }
  const std::uint32_t group = p.fence;
  RelaxedCapture relaxed(device_);
  absl::StatusOr<bool> done = device_->QueryEvent(groups_[group].event);
  if (!done.ok()) return done.status();
  if (!*done) {
    if (absl::Status s = device_->SynchronizeEvent(groups_[group].event); !s.ok()) return s;
    ++counters_.fence_waits;
  }
  ResolveMark(group);
  return absl::OkStatus();
}

absl::Status ChunkPool::UnmapAliases(ChunkRecord& record) {
  while (record.mappings.size() > 1) {
    const PageRef alias =
        record.mappings[0] == record.holder ? record.mappings[1] : record.mappings[0];
    if (absl::Status s = UnmapPage(*arenas_[alias.arena], alias.page); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status ChunkPool::UnmapPage(VmmArena& arena, std::size_t page) {
  // cuMemUnmap does not wait for kernels: an alias's last use must be over first.
  if (absl::Status s = AwaitFence(arena, page); !s.ok()) return s;
  if (absl::Status s = device_->Unmap(arena.PageAddress(page), granularity_); !s.ok()) return s;
  ++counters_.unmaps;
  VmmArena::Page& p = arena.pages_[page];
  DropFence(p);
  ChunkRecord& record = chunk_records_.at(p.chunk);
  const PageRef here{arena.id_, static_cast<std::uint32_t>(page)};
  record.mappings.erase(std::find(record.mappings.begin(), record.mappings.end(), here));
  p.chunk = 0;
  p.mapped = false;
  --arena.mapped_pages_;
  --mapped_pages_;
  return absl::OkStatus();
}

absl::Status ChunkPool::ExhaustedError(const VmmArena& arena, DevicePtr addr, std::size_t bytes,
                                       std::size_t unbacked,
                                       const absl::Status& device_error) const {
  return absl::ResourceExhaustedError(absl::StrFormat(
      "vramcache: cannot back %d bytes at %#x (arena [%#x, %#x), stream %#x): %d page(s) of %d "
      "bytes needed a chunk; holding %d bytes (%d mapped, %d of them free but still in use by "
      "their streams' work, %d cached), budget %s: %s",
      bytes, addr, arena.base(), arena.base() + arena.size(), arena.stream(), unbacked,
      granularity_, held_bytes(), held_bytes() - cached_bytes(), waiting_bytes(), cached_bytes(),
      budget_bytes_ > 0 ? absl::StrCat(budget_bytes_, " bytes") : "none", device_error.message()));
}

// ------------------------------------------------------------------ giving memory back

absl::StatusOr<std::size_t> ChunkPool::Trim(std::size_t bytes_wanted) {
  std::size_t released = 0;
  while (released < bytes_wanted) {
    // Cached chunks first (no unmap needed), then free pages whose marks have completed.
    ChunkHandle chunk = 0;
    if (!cached_chunks_.empty()) {
      chunk = cached_chunks_.back();
      cached_chunks_.pop_back();
    } else {
      absl::StatusOr<std::optional<StolenChunk>> stolen =
          StealChunk(/*scan_waiting=*/true, /*aliasing=*/false);
      if (!stolen.ok()) return stolen.status();
      if (!stolen->has_value()) break;
      chunk = (*stolen)->chunk;
    }
    if (absl::Status s = device_->ReleaseChunk(chunk); !s.ok()) {
      cached_chunks_.push_back(chunk);
      return s;
    }
    ++counters_.chunks_released;
    released += granularity_;
  }
  return released;
}

absl::Status ChunkPool::AddPeer(int peer_ordinal) {
  if (std::find(peers_.begin(), peers_.end(), peer_ordinal) != peers_.end()) {
    return absl::OkStatus();
  }
  for (const std::unique_ptr<VmmArena>& arena : arenas_) {
    for (std::size_t p = 0; p < arena->pages_.size(); ++p) {
      if (!arena->pages_[p].mapped) continue;
      if (absl::Status s =
              device_->GrantPeerAccess(arena->PageAddress(p), granularity_, peer_ordinal);
          !s.ok()) {
        return s;
      }
    }
  }
  peers_.push_back(peer_ordinal);
  return absl::OkStatus();
}

absl::StatusOr<std::size_t> ChunkPool::UnmapFreePages() {
  std::size_t unmapped = 0;
  for (;;) {
    absl::StatusOr<std::optional<StolenChunk>> stolen =
        StealChunk(/*scan_waiting=*/true, /*aliasing=*/false);
    if (!stolen.ok()) return stolen.status();
    if (!stolen->has_value()) break;
    cached_chunks_.push_back((*stolen)->chunk);
    ++unmapped;
  }
  if (mapped_pages_ == chunk_records_.size()) return unmapped;  // no alias left
  for (auto& [chunk, record] : chunk_records_) {
    if (absl::Status s = UnmapAliases(record); !s.ok()) return s;
  }
  return unmapped;
}

absl::Status ChunkPool::ReleaseAll() {
  absl::Status status = absl::OkStatus();
  // cuMemUnmap does not wait for kernels: the last uses of free pages must be over first.
  for (std::uint32_t g = oldest_mark_; g != kNone; g = groups_[g].newer) {
    status.Update(device_->SynchronizeEvent(groups_[g].event));
  }
  for (const std::unique_ptr<VmmArena>& arena : arenas_) {
    for (std::size_t p = 0; p < arena->pages_.size(); ++p) {
      if (!arena->pages_[p].mapped) continue;
      absl::Status unmapped = device_->Unmap(arena->PageAddress(p), granularity_);
      status.Update(unmapped);
      if (unmapped.ok()) ++counters_.unmaps;
    }
  }
  // A chunk whose unmap failed is released anyway; the device refuses it and says so.
  for (const auto& [chunk, record] : chunk_records_) cached_chunks_.push_back(chunk);
  for (ChunkHandle chunk : cached_chunks_) {
    absl::Status s = device_->ReleaseChunk(chunk);
    if (s.ok()) ++counters_.chunks_released;
    status.Update(s);
  }
  for (const std::unique_ptr<VmmArena>& arena : arenas_) {
    status.Update(device_->ReleaseAddress(arena->base(), arena->size()));
  }
  for (std::uint32_t g = oldest_mark_; g != kNone; g = groups_[g].newer) {
    spare_events_.push_back(groups_[g].event);
  }
  for (EventHandle event : spare_events_) status.Update(device_->DestroyEvent(event));
  arenas_.clear();
  cached_chunks_.clear();
  chunk_records_.clear();
  mapped_pages_ = 0;
  small_held_chunks_ = 0;
  address_bytes_ = 0;
  groups_.clear();
  recycled_groups_.clear();
  ready_.clear();
  ready_pages_ = 0;
  waiting_pages_ = 0;
  live_pages_ = 0;
  small_live_pages_ = 0;
  peak_live_pages_ = 0;
  oldest_mark_ = kNone;
  newest_mark_ = kNone;
  mark_count_ = 0;
  streams_.clear();
  spare_events_.clear();
  return status;
}

}  // namespace vramcache
