// The chunk pool's self-check (ChunkPool::CheckInvariants, vmm_arena.h): every chunk record,
// mapping, free mark and ready list against the arenas' pages and the pool's counters. Run by
// the allocator's invariant recount and by the chunk pool's tests; it changes nothing.
#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/core/vmm_arena.h"

namespace vramcache {

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
