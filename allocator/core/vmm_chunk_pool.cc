// Where a page's chunk comes from and where chunks go: the cache, stitching from ready pages (a
// compatible chunk first; the old page keeps its mapping as an alias), creation within the
// budget and the compatibility headroom; the chunk records (holder and mappings); free marks
// and their events; Trim, UnmapFreePages and ReleaseAll. The live counts that decide when a
// page needs a chunk are vmm_arena.cc's concern.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
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
    absl::StatusOr<ChunkHandle> chunk = DetachReadyChunk();
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

absl::StatusOr<ChunkHandle> ChunkPool::DetachReadyChunk() {
  const FreeGroup& group = groups_[ready_.begin()->second];
  const PageRef holder{group.arena, group.head};
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

// ------------------------------------------------------------------ free marks

absl::StatusOr<bool> ChunkPool::ResolveCompletedMark() {
  // Streams run in order, so only each stream's oldest waiting mark can be the first to
  // complete; the oldest of those is queried first, which keeps the choice reproducible. A mark
  // whose pages are all being taken by an Acquire in progress is not a candidate.
  absl::InlinedVector<std::pair<std::uint64_t, std::uint32_t>, 4> heads;
  for (const StreamMarks& stream : streams_) {
    std::uint32_t g = stream.oldest;
    while (g != kNone && groups_[g].listed == 0) g = groups_[g].newer_in_stream;
    if (g != kNone) heads.emplace_back(groups_[g].seq, g);
  }
  std::sort(heads.begin(), heads.end());
  std::optional<RelaxedCapture> relaxed;
  if (!heads.empty()) relaxed.emplace(device_);
  for (const auto& [seq, g] : heads) {
    absl::StatusOr<bool> done = device_->QueryEvent(groups_[g].event);
    if (!done.ok()) return done.status();
    if (*done) {
      ResolveMark(g);
      return true;
    }
  }
  return false;
}

void ChunkPool::UnlinkMark(std::uint32_t group) {
  FreeGroup& g = groups_[group];
  if (g.older != kNone) {
    groups_[g.older].newer = g.newer;
  } else {
    oldest_mark_ = g.newer;
  }
  if (g.newer != kNone) {
    groups_[g.newer].older = g.older;
  } else {
    newest_mark_ = g.older;
  }
  StreamMarks& stream = streams_[g.stream_slot];
  if (g.older_in_stream != kNone) {
    groups_[g.older_in_stream].newer_in_stream = g.newer_in_stream;
  } else {
    stream.oldest = g.newer_in_stream;
  }
  if (g.newer_in_stream != kNone) {
    groups_[g.newer_in_stream].older_in_stream = g.older_in_stream;
  } else {
    stream.newest = g.older_in_stream;
  }
  g.older = g.newer = g.older_in_stream = g.newer_in_stream = kNone;
  g.waiting = false;
  g.pages = 0;
  --mark_count_;
  spare_events_.push_back(g.event);
}

void ChunkPool::ResolveMark(std::uint32_t group) {
  UnlinkMark(group);
  FreeGroup& g = groups_[group];
  if (g.listed == 0) {
    RecycleGroup(group);
    return;
  }
  // Its listed pages are ready now, in the same order, with the same place in the free order.
  waiting_pages_ -= g.listed;
  ready_pages_ += g.listed;
  ready_.emplace(g.seq, group);
}

void ChunkPool::DropMarkUse(std::uint32_t group, std::uint64_t seq) {
  FreeGroup& g = groups_[group];
  if (!g.waiting || g.seq != seq) return;  // seen complete meanwhile: already retired
  if (--g.pages > 0) return;
  UnlinkMark(group);
  RecycleGroup(group);
}

bool ChunkPool::QueriesAllowed() {
  if (probe_pending_) {
    probe_pending_ = false;
    absl::StatusOr<bool> capturing = device_->IsCapturing(probe_stream_);
    queries_allowed_ = capturing.ok() && !*capturing;
  }
  return queries_allowed_;
}

absl::StatusOr<EventHandle> ChunkPool::TakeEvent() {
  // Marks whose pages are never reused would each keep an event: before creating one, see
  // whether the oldest mark has completed and can give its event back.
  if (spare_events_.empty() && oldest_mark_ != kNone && QueriesAllowed()) {
    RelaxedCapture relaxed(device_);
    absl::StatusOr<bool> done = device_->QueryEvent(groups_[oldest_mark_].event);
    if (!done.ok()) return done.status();
    if (*done) ResolveMark(oldest_mark_);
  }
  if (!spare_events_.empty()) {
    const EventHandle event = spare_events_.back();
    spare_events_.pop_back();
    return event;
  }
  // Rare; relaxed, as StreamOrderedFrees::AcquireEvent, in case a driver counts event creation
  // among the calls a global-mode capture forbids.
  RelaxedCapture relaxed(device_);
  absl::StatusOr<EventHandle> event = device_->CreateEvent();
  if (event.ok()) ++counters_.events_created;
  return event;
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

// ------------------------------------------------------------------ invariants

absl::Status ChunkPool::CheckInvariants() const {
  absl::flat_hash_set<ChunkHandle> cached(cached_chunks_.begin(), cached_chunks_.end());
  if (cached.size() != cached_chunks_.size()) {
    return absl::InternalError("a chunk is cached twice");
  }
  // Every mapped chunk: its holder and mappings as recorded, none of them cached.
  std::size_t recorded_mappings = 0;
  std::size_t small_held = 0;
  absl::flat_hash_set<std::uint64_t> listed_pages;
  for (const auto& [chunk, record] : chunk_records_) {
    if (cached.contains(chunk)) {
      return absl::InternalError(absl::StrFormat("chunk %d is cached and mapped", chunk));
    }
    if (std::find(record.mappings.begin(), record.mappings.end(), record.holder) ==
        record.mappings.end()) {
      return absl::InternalError(absl::StrFormat("chunk %d is not mapped at its holder", chunk));
    }
    for (const PageRef& ref : record.mappings) {
      if (ref.arena >= arenas_.size() || ref.page >= arenas_[ref.arena]->pages_.size()) {
        return absl::InternalError(absl::StrFormat("chunk %d lists a page of no arena", chunk));
      }
      if (!listed_pages.insert(std::uint64_t{ref.arena} << 32 | ref.page).second) {
        return absl::InternalError(absl::StrFormat("a page is listed twice among mappings"));
      }
      const VmmArena::Page& page = arenas_[ref.arena]->pages_[ref.page];
      if (!page.mapped || page.chunk != chunk) {
        return absl::InternalError(absl::StrFormat(
            "chunk %d lists page %#x, which maps %s", chunk,
            arenas_[ref.arena]->PageAddress(ref.page),
            page.mapped ? absl::StrCat("chunk ", page.chunk) : std::string("nothing")));
      }
      const bool is_holder = ref == record.holder;
      const bool holds = page.live > 0 || page.group != kNone;
      if (is_holder != holds) {
        return absl::InternalError(absl::StrFormat(
            "page %#x of chunk %d is %s but %s", arenas_[ref.arena]->PageAddress(ref.page), chunk,
            is_holder ? "its holder" : "an alias", holds ? "in use or listed free" : "neither"));
      }
    }
    recorded_mappings += record.mappings.size();
    if (arenas_[record.holder.arena]->small_) ++small_held;
  }
  if (small_held != small_held_chunks_) {
    return absl::InternalError(absl::StrFormat("%d chunks counted held by small arenas but %d are",
                                               small_held_chunks_, small_held));
  }
  std::size_t mapped = 0;
  std::size_t free_pages = 0;
  absl::flat_hash_map<std::uint32_t, std::size_t> fences;  // running fences per mark
  for (const std::unique_ptr<VmmArena>& arena : arenas_) {
    std::size_t arena_mapped = 0;
    std::size_t arena_live = 0;
    std::size_t arena_free = 0;
    for (std::size_t p = 0; p < arena->pages_.size(); ++p) {
      const VmmArena::Page& page = arena->pages_[p];
      const DevicePtr va = arena->PageAddress(p);
      if (page.live > 0) ++arena_live;
      if (!page.mapped) {
        if (FenceRunning(page)) {
          return absl::InternalError(absl::StrFormat("unmapped page %#x has a fence", va));
        }
        if (page.live > 0) {
          return absl::InternalError(absl::StrFormat("page %#x is in use but unmapped", va));
        }
        if (page.group != kNone) {
          return absl::InternalError(absl::StrFormat("unmapped page %#x is in a free index", va));
        }
        continue;
      }
      ++arena_mapped;
      if (FenceRunning(page)) {
        if (page.live > 0 || page.group != kNone) {
          return absl::InternalError(
              absl::StrFormat("page %#x holds its chunk but still has a fence", va));
        }
        ++fences[page.fence];
      }
      // Listed pages are distinct and map their chunk (above); with the totals equal (below),
      // every mapped page is listed.
      if (!chunk_records_.contains(page.chunk)) {
        return absl::InternalError(
            absl::StrFormat("page %#x maps chunk %d, which has no record", va, page.chunk));
      }
      if (page.live > 0) {
        if (page.group != kNone) {
          return absl::InternalError(absl::StrFormat("live page %#x is in a free index", va));
        }
        continue;
      }
      if (page.group == kNone) continue;  // an alias
      if (page.group >= groups_.size() || groups_[page.group].seq == 0 ||
          groups_[page.group].arena != arena->id_) {
        return absl::InternalError(absl::StrFormat("free page %#x is in no free index", va));
      }
      ++free_pages;
      ++arena_free;
    }
    if (arena_mapped != arena->mapped_pages_ || arena_live != arena->live_pages_ ||
        arena_free != arena->free_pages_) {
      return absl::InternalError(absl::StrFormat(
          "arena %#x counts %d mapped, %d live and %d free pages but has %d, %d and %d",
          arena->base(), arena->mapped_pages_, arena->live_pages_, arena->free_pages_, arena_mapped,
          arena_live, arena_free));
    }
    mapped += arena_mapped;
  }
  std::size_t live_total = 0;
  std::size_t small_live_total = 0;
  for (const std::unique_ptr<VmmArena>& arena : arenas_) {
    live_total += arena->live_pages_;
    if (arena->small_) small_live_total += arena->live_pages_;
  }
  if (small_live_total != small_live_pages_) {
    return absl::InternalError(absl::StrFormat("%d small-pool pages counted in use but %d are",
                                               small_live_pages_, small_live_total));
  }
  if (live_total != live_pages_ || live_pages_ > peak_live_pages_) {
    return absl::InternalError(absl::StrFormat("%d pages counted in use (peak %d) but %d are",
                                               live_pages_, peak_live_pages_, live_total));
  }
  if (mapped != mapped_pages_ || mapped != recorded_mappings) {
    return absl::InternalError(
        absl::StrFormat("%d pages counted mapped, %d are, %d are recorded with their chunks",
                        mapped_pages_, mapped, recorded_mappings));
  }
  // Every group's list: its pages, free, in page order, each pointing back at it.
  std::size_t ready = 0;
  std::size_t waiting = 0;
  std::size_t in_use = 0;
  for (std::uint32_t g = 0; g < groups_.size(); ++g) {
    const FreeGroup& group = groups_[g];
    if (group.seq == 0) continue;
    ++in_use;
    if (group.arena >= arenas_.size()) return absl::InternalError("a free group has no arena");
    const VmmArena& arena = *arenas_[group.arena];
    std::size_t listed = 0;
    std::uint32_t prev = kNone;
    for (std::uint32_t p = group.head; p != kNone; p = arena.pages_[p].next) {
      if (p >= arena.pages_.size()) return absl::InternalError("a free group lists no page");
      const VmmArena::Page& page = arena.pages_[p];
      if (page.group != g || page.prev != prev || (prev != kNone && prev >= p) || !page.mapped ||
          page.live > 0 || ++listed > group.listed) {
        return absl::InternalError(
            absl::StrFormat("free group %d (seq %d) lists page %d of arena %#x wrongly", g,
                            group.seq, p, arena.base()));
      }
      prev = p;
    }
    if (listed != group.listed || prev != group.tail) {
      return absl::InternalError(
          absl::StrFormat("free group %d lists %d pages but counts %d", g, listed, group.listed));
    }
    if (group.waiting) {
      const std::size_t fenced = fences.contains(g) ? fences.at(g) : 0;
      if (group.pages != group.listed + fenced || group.pages == 0) {
        return absl::InternalError(
            absl::StrFormat("mark %d counts %d pages but %d wait on it (%d listed, %d fences)",
                            group.seq, group.pages, group.listed + fenced, group.listed, fenced));
      }
      if (streams_.size() <= group.stream_slot ||
          streams_[group.stream_slot].stream != arena.stream()) {
        return absl::InternalError(absl::StrFormat("mark %d is not on its stream", group.seq));
      }
      waiting += listed;
    } else {
      auto it = ready_.find(group.seq);
      if (it == ready_.end() || it->second != g || listed == 0) {
        return absl::InternalError(absl::StrFormat(
            "ready group %d (seq %d) is not (only) in the ready index", g, group.seq));
      }
      ready += listed;
    }
  }
  if (in_use + recycled_groups_.size() != groups_.size() || ready_.size() + mark_count_ != in_use) {
    return absl::InternalError(
        absl::StrFormat("%d free groups in use, %d recycled, %d ready, %d marks, of %d", in_use,
                        recycled_groups_.size(), ready_.size(), mark_count_, groups_.size()));
  }
  if (ready + waiting != free_pages || ready != ready_pages_ || waiting != waiting_pages_) {
    return absl::InternalError(absl::StrFormat(
        "free groups hold %d ready and %d waiting pages (%d and %d counted); %d pages are free",
        ready, waiting, ready_pages_, waiting_pages_, free_pages));
  }
  // The mark lists: every mark once, oldest first, on its stream's list too.
  absl::flat_hash_set<EventHandle> events(spare_events_.begin(), spare_events_.end());
  std::size_t marks = 0;
  std::uint64_t last_seq = 0;
  std::uint32_t prev = kNone;
  for (std::uint32_t g = oldest_mark_; g != kNone; g = groups_[g].newer) {
    const FreeGroup& mark = groups_[g];
    if (!mark.waiting || mark.older != prev || mark.seq <= last_seq || ++marks > mark_count_) {
      return absl::InternalError("the list of marks is out of order");
    }
    if (!events.insert(mark.event).second) {
      return absl::InternalError(absl::StrFormat("event %d is used twice", mark.event));
    }
    last_seq = mark.seq;
    prev = g;
  }
  if (marks != mark_count_ || prev != newest_mark_) {
    return absl::InternalError("the list of marks misses some");
  }
  std::size_t stream_marks = 0;
  for (std::uint32_t slot = 0; slot < streams_.size(); ++slot) {
    last_seq = 0;
    prev = kNone;
    for (std::uint32_t g = streams_[slot].oldest; g != kNone; g = groups_[g].newer_in_stream) {
      const FreeGroup& mark = groups_[g];
      if (!mark.waiting || mark.stream_slot != slot || mark.older_in_stream != prev ||
          mark.seq <= last_seq || ++stream_marks > mark_count_) {
        return absl::InternalError("a stream's list of marks is out of order");
      }
      last_seq = mark.seq;
      prev = g;
    }
    if (prev != streams_[slot].newest) return absl::InternalError("a stream's marks end wrongly");
  }
  if (stream_marks != mark_count_) {
    return absl::InternalError("the streams' lists of marks miss some");
  }
  if (events.size() != spare_events_.size() + mark_count_) {
    return absl::InternalError("a spare event is listed twice");
  }
  if (held_bytes() != (chunk_records_.size() + cached.size()) * granularity_) {
    return absl::InternalError(absl::StrFormat("held bytes %d but %d distinct chunks", held_bytes(),
                                               chunk_records_.size() + cached.size()));
  }
  return absl::OkStatus();
}

}  // namespace vramcache
