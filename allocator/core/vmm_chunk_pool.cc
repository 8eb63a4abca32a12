// Where a page's chunk comes from and where chunks go: the cache, stealing (stitching) from ready
// pages, creation within the budget; free marks and their events; Trim and ReleaseAll. The live
// counts that decide when a page needs a chunk are vmm_arena.cc's concern.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
  absl::StatusOr<DevicePtr> base = device_->ReserveAddress(bytes);
  if (!base.ok()) return base.status();
  const auto id = static_cast<std::uint32_t>(arenas_.size());
  arenas_.push_back(
      std::unique_ptr<VmmArena>(new VmmArena(this, id, *base, bytes, granularity_, stream, small)));
  address_bytes_ += bytes;
  return arenas_.back().get();
}

// ------------------------------------------------------------------ backing a page

absl::Status ChunkPool::BackPage(VmmArena& arena, std::size_t page, bool* scan_waiting) {
  if (!cached_chunks_.empty()) {
    const ChunkHandle chunk = cached_chunks_.back();
    cached_chunks_.pop_back();
    return MapChunk(arena, page, chunk);
  }
  // Stealing before creating: held memory (what the user pays for) grows only when no free
  // page anywhere can give its chunk.
  absl::StatusOr<std::optional<ChunkHandle>> stolen = StealChunk(*scan_waiting);
  if (!stolen.ok()) return stolen.status();
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
        return MapChunk(arena, page, *created);
      }
      if (!absl::IsResourceExhausted(created.status())) return created.status();
      ++counters_.device_refusals;
      refusal = created.status();
    }
    // Before giving up: a mark may have completed since the last scan.
    stolen = StealChunk(/*scan_waiting=*/true);
    if (!stolen.ok()) return stolen.status();
    if (!stolen->has_value()) return refusal;
  }
  if (absl::Status s = MapChunk(arena, page, **stolen); !s.ok()) return s;
  ++counters_.stitches;
  return absl::OkStatus();
}

absl::Status ChunkPool::MapChunk(VmmArena& arena, std::size_t page, ChunkHandle chunk) {
  if (absl::Status s = device_->Map(arena.PageAddress(page), granularity_, chunk); !s.ok()) {
    cached_chunks_.push_back(chunk);  // still held; the next page that needs one takes it
    return s;
  }
  ++counters_.maps;
  VmmArena::Page& p = arena.pages_[page];
  p.chunk = chunk;
  p.mapped = true;
  ++arena.mapped_pages_;
  ++mapped_pages_;
  if (arena.small_) ++small_mapped_pages_;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ChunkHandle>> ChunkPool::StealChunk(bool scan_waiting) {
  if (ready_.empty()) {
    if (!scan_waiting || !queries_allowed_) return std::nullopt;
    absl::StatusOr<bool> resolved = ResolveCompletedMark();
    if (!resolved.ok()) return resolved.status();
    if (!*resolved) return std::nullopt;
  }
  absl::StatusOr<ChunkHandle> chunk = UnmapReadyPage();
  if (!chunk.ok()) return chunk.status();
  return std::optional<ChunkHandle>(*chunk);
}

absl::StatusOr<ChunkHandle> ChunkPool::UnmapReadyPage() {
  const FreeKey key = *ready_.begin();
  VmmArena& arena = *arenas_[key.arena];
  VmmArena::Page& page = arena.pages_[key.page];
  if (absl::Status s = device_->Unmap(arena.PageAddress(key.page), granularity_); !s.ok()) {
    return s;
  }
  ++counters_.unmaps;
  ready_.erase(ready_.begin());
  const ChunkHandle chunk = page.chunk;
  page = VmmArena::Page{};
  --arena.mapped_pages_;
  --mapped_pages_;
  if (arena.small_) --small_mapped_pages_;
  return chunk;
}

// ------------------------------------------------------------------ free marks

absl::StatusOr<bool> ChunkPool::ResolveCompletedMark() {
  // Streams run in order, so only each stream's oldest waiting mark can be the first to
  // complete; the oldest of those is queried first, which keeps the choice reproducible.
  std::vector<std::uint64_t> heads;
  heads.reserve(waiting_.size());
  for (const auto& [stream, keys] : waiting_) heads.push_back(keys.begin()->seq);
  std::sort(heads.begin(), heads.end());
  for (std::uint64_t seq : heads) {
    absl::StatusOr<bool> done = device_->QueryEvent(marks_.at(seq).event);
    if (!done.ok()) return done.status();
    if (*done) {
      ResolveMark(seq);
      return true;
    }
  }
  return false;
}

void ChunkPool::ResolveMark(std::uint64_t seq) {
  auto mark = marks_.find(seq);
  auto stream = waiting_.find(mark->second.stream);
  if (stream != waiting_.end()) {
    absl::btree_set<FreeKey>& keys = stream->second;
    auto it = keys.lower_bound(FreeKey{seq, 0, 0});
    while (it != keys.end() && it->seq == seq) {
      arenas_[it->arena]->pages_[it->page].waiting = false;
      ready_.insert(*it);
      it = keys.erase(it);
      --waiting_pages_;
    }
    if (keys.empty()) waiting_.erase(stream);
  }
  spare_events_.push_back(mark->second.event);
  marks_.erase(mark);
}

void ChunkPool::DropMarkUse(std::uint64_t seq) {
  auto mark = marks_.find(seq);
  if (mark == marks_.end()) return;  // seen complete meanwhile: already retired
  if (--mark->second.pages > 0) return;
  spare_events_.push_back(mark->second.event);
  marks_.erase(mark);
}

absl::StatusOr<EventHandle> ChunkPool::TakeEvent() {
  // Marks whose pages are never reused would each keep an event: before creating one, see
  // whether the oldest mark has completed and can give its event back.
  if (spare_events_.empty() && !marks_.empty() && queries_allowed_) {
    absl::StatusOr<bool> done = device_->QueryEvent(marks_.begin()->second.event);
    if (!done.ok()) return done.status();
    if (*done) ResolveMark(marks_.begin()->first);
  }
  if (!spare_events_.empty()) {
    const EventHandle event = spare_events_.back();
    spare_events_.pop_back();
    return event;
  }
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
      granularity_, held_bytes(), mapped_bytes(), waiting_bytes(), cached_bytes(),
      budget_bytes_ > 0 ? absl::StrCat(budget_bytes_, " bytes") : "none", device_error.message()));
}

// ------------------------------------------------------------------ giving memory back

absl::StatusOr<std::size_t> ChunkPool::Trim(std::size_t bytes_wanted) {
  std::size_t released = 0;
  while (released < bytes_wanted && !cached_chunks_.empty()) {
    if (absl::Status s = device_->ReleaseChunk(cached_chunks_.back()); !s.ok()) return s;
    cached_chunks_.pop_back();
    ++counters_.chunks_released;
    released += granularity_;
  }
  while (released < bytes_wanted) {
    if (ready_.empty()) {
      if (!queries_allowed_) break;
      absl::StatusOr<bool> resolved = ResolveCompletedMark();
      if (!resolved.ok()) return resolved.status();
      if (!*resolved) break;
      continue;
    }
    absl::StatusOr<ChunkHandle> chunk = UnmapReadyPage();
    if (!chunk.ok()) return chunk.status();
    if (absl::Status s = device_->ReleaseChunk(*chunk); !s.ok()) {
      cached_chunks_.push_back(*chunk);
      return s;
    }
    ++counters_.chunks_released;
    released += granularity_;
  }
  return released;
}

absl::StatusOr<std::size_t> ChunkPool::UnmapFreePages() {
  std::size_t unmapped = 0;
  while (true) {
    if (ready_.empty()) {
      if (!queries_allowed_) break;
      absl::StatusOr<bool> resolved = ResolveCompletedMark();
      if (!resolved.ok()) return resolved.status();
      if (!*resolved) break;
      continue;
    }
    absl::StatusOr<ChunkHandle> chunk = UnmapReadyPage();
    if (!chunk.ok()) return chunk.status();
    cached_chunks_.push_back(*chunk);
    ++unmapped;
  }
  return unmapped;
}

absl::Status ChunkPool::ReleaseAll() {
  absl::Status status = absl::OkStatus();
  // cuMemUnmap does not wait for kernels: the last uses of free pages must be over first.
  for (const auto& [seq, mark] : marks_) status.Update(device_->SynchronizeEvent(mark.event));
  for (const std::unique_ptr<VmmArena>& arena : arenas_) {
    for (std::size_t p = 0; p < arena->pages_.size(); ++p) {
      VmmArena::Page& page = arena->pages_[p];
      if (!page.mapped) continue;
      absl::Status unmapped = device_->Unmap(arena->PageAddress(p), granularity_);
      status.Update(unmapped);
      if (!unmapped.ok()) continue;
      ++counters_.unmaps;
      cached_chunks_.push_back(page.chunk);
    }
  }
  for (ChunkHandle chunk : cached_chunks_) {
    absl::Status s = device_->ReleaseChunk(chunk);
    if (s.ok()) ++counters_.chunks_released;
    status.Update(s);
  }
  for (const std::unique_ptr<VmmArena>& arena : arenas_) {
    status.Update(device_->ReleaseAddress(arena->base(), arena->size()));
  }
  for (const auto& [seq, mark] : marks_) spare_events_.push_back(mark.event);
  for (EventHandle event : spare_events_) status.Update(device_->DestroyEvent(event));
  arenas_.clear();
  cached_chunks_.clear();
  mapped_pages_ = 0;
  small_mapped_pages_ = 0;
  address_bytes_ = 0;
  ready_.clear();
  waiting_.clear();
  waiting_pages_ = 0;
  marks_.clear();
  spare_events_.clear();
  return status;
}

// ------------------------------------------------------------------ invariants

absl::Status ChunkPool::CheckInvariants() const {
  absl::flat_hash_set<ChunkHandle> chunks(cached_chunks_.begin(), cached_chunks_.end());
  if (chunks.size() != cached_chunks_.size()) {
    return absl::InternalError("a chunk is cached twice");
  }
  std::size_t mapped = 0;
  std::size_t ready = 0;
  std::size_t waiting = 0;
  absl::btree_map<std::uint64_t, std::size_t> mark_pages;
  for (const std::unique_ptr<VmmArena>& arena : arenas_) {
    std::size_t arena_mapped = 0;
    std::size_t arena_live = 0;
    for (std::size_t p = 0; p < arena->pages_.size(); ++p) {
      const VmmArena::Page& page = arena->pages_[p];
      const DevicePtr va = arena->PageAddress(p);
      if (page.live > 0) ++arena_live;
      if (!page.mapped) {
        if (page.live > 0) {
          return absl::InternalError(absl::StrFormat("page %#x is in use but unmapped", va));
        }
        if (page.waiting || page.free_seq != 0) {
          return absl::InternalError(absl::StrFormat("unmapped page %#x is in a free index", va));
        }
        continue;
      }
      ++arena_mapped;
      if (!chunks.insert(page.chunk).second) {
        return absl::InternalError(
            absl::StrFormat("chunk %d is at page %#x and somewhere else too", page.chunk, va));
      }
      if (page.live > 0) {
        if (page.waiting || page.free_seq != 0) {
          return absl::InternalError(absl::StrFormat("live page %#x is in a free index", va));
        }
        continue;
      }
      const FreeKey key{page.free_seq, arena->id_, p};
      if (page.waiting) {
        auto it = waiting_.find(arena->stream());
        if (it == waiting_.end() || !it->second.contains(key) || ready_.contains(key)) {
          return absl::InternalError(
              absl::StrFormat("waiting page %#x is not (only) in its stream's index", va));
        }
        auto mark = marks_.find(page.free_seq);
        if (mark == marks_.end() || mark->second.stream != arena->stream()) {
          return absl::InternalError(
              absl::StrFormat("waiting page %#x has no mark on its stream", va));
        }
        ++mark_pages[page.free_seq];
        ++waiting;
      } else {
        if (!ready_.contains(key)) {
          return absl::InternalError(
              absl::StrFormat("ready page %#x is not in the ready index", va));
        }
        ++ready;
      }
    }
    if (arena_mapped != arena->mapped_pages_ || arena_live != arena->live_pages_) {
      return absl::InternalError(absl::StrFormat(
          "arena %#x counts %d mapped and %d live pages but has %d and %d", arena->base(),
          arena->mapped_pages_, arena->live_pages_, arena_mapped, arena_live));
    }
    mapped += arena_mapped;
  }
  if (mapped != mapped_pages_) {
    return absl::InternalError(
        absl::StrFormat("%d pages counted mapped but %d are", mapped_pages_, mapped));
  }
  std::size_t indexed_waiting = 0;
  for (const auto& [stream, keys] : waiting_) {
    if (keys.empty()) return absl::InternalError("an empty waiting index is kept");
    indexed_waiting += keys.size();
  }
  if (ready != ready_.size() || waiting != waiting_pages_ || indexed_waiting != waiting_pages_) {
    return absl::InternalError(absl::StrFormat(
        "free indexes hold %d ready and %d (%d counted) waiting pages; the pages say %d and %d",
        ready_.size(), indexed_waiting, waiting_pages_, ready, waiting));
  }
  absl::flat_hash_set<EventHandle> events(spare_events_.begin(), spare_events_.end());
  for (const auto& [seq, mark] : marks_) {
    auto counted = mark_pages.find(seq);
    if (counted == mark_pages.end() || counted->second != mark.pages) {
      return absl::InternalError(
          absl::StrFormat("mark %d counts %d pages but %d wait on it", seq, mark.pages,
                          counted == mark_pages.end() ? 0 : counted->second));
    }
    if (!events.insert(mark.event).second) {
      return absl::InternalError(absl::StrFormat("event %d is used twice", mark.event));
    }
  }
  if (events.size() != spare_events_.size() + marks_.size()) {
    return absl::InternalError("a spare event is listed twice");
  }
  if (held_bytes() != chunks.size() * granularity_) {
    return absl::InternalError(
        absl::StrFormat("held bytes %d but %d distinct chunks", held_bytes(), chunks.size()));
  }
  return absl::OkStatus();
}

}  // namespace vramcache
