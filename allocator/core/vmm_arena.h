// Physical memory stitched into reserved address ranges page by page: the defragmentation layer
// under the caching allocator's virtual-memory mode (GMLake's idea). A ChunkPool owns one
// device's physical chunks; each VmmArena is one reserved address range whose pages get a chunk
// when a byte range touching them comes into use. A page whose uses have all ended keeps its
// chunk mapped (reuse in place costs no device call) until another page, in any arena, needs a
// chunk and none is cached: then the chunk is mapped there too (a stitch), once the work that
// last used it has completed. The old mapping stays as an alias: when that page comes into use
// again while the chunk is free, it takes the chunk back with no device call. A training loop
// replays the same pattern each step, so after the first step its stitches are all in place
// and the loop makes no device calls; physical memory still follows the live bytes, however
// fragmented the addresses are.
//
// Glossary:
//   G             the device granularity (2 MiB on current GPUs): the size of a page and a chunk.
//   page          one G-byte piece of an arena's address range, the unit of mapping.
//   chunk         one G-byte physical allocation (cuMemCreate), mapped at one or more pages.
//   holder        the one page a mapped chunk serves: a page in use, or the free page whose
//                 release freed it (listed in the free order).
//   alias         a mapped page that is not its chunk's holder: it has a live count of 0 and
//                 becomes the holder again, with no device call, when it comes into use while
//                 the chunk's holder is free and done (or on the same stream). When the chunk is
//                 busy elsewhere, the alias is unmapped and the page gets another chunk.
//   live count    how many in-use byte ranges (acquired, not yet released) touch a page. A page
//                 with a live count above 0 always holds its chunk.
//   fence         an alias whose last use may still be running: it was the holder, free but
//                 waiting on its mark, when a page of the same stream took its chunk back
//                 (stream order makes that reuse safe, but not an unmap: cuMemUnmap does not
//                 wait for kernels). It keeps a use of that mark, and is unmapped only once
//                 the mark has completed.
//   free page     a holder with a live count of 0. Its chunk stays mapped.
//   free mark     an event recorded on the arena's stream by the Release that freed pages (one
//                 per Release, shared by the pages it freed): once it completes, so has every
//                 use of those pages, and their chunks may be used elsewhere (cuMemUnmap does
//                 not wait for kernels, nor does work through another mapping).
//   waiting page  a free page whose mark has not yet been seen complete.
//   ready page    a free page whose mark was seen complete (or that was never used).
//   cached chunk  a chunk held but mapped nowhere (left over when a Map fails, or unmapped by
//                 the unmap_on_free debug mode).
//   stitch        mapping the chunk of a ready page at a page that needs one (the ready page
//                 becomes an alias, or is unmapped when aliasing is off).
//   compatible    a chunk is compatible with a page when none of the pages it is mapped at
//                 was in use while that page was (over the uses each page remembers). A stitch
//                 takes a compatible chunk when one is ready; when none is, it creates a chunk
//                 instead, while held bytes stay within 1/64 over the most pages ever in use
//                 at once (else it takes the oldest ready one). So every chunk ends up shared
//                 only by pages whose uses never overlap, and a loop that repeats its steps
//                 takes each chunk back through its aliases with no device call.
//   held bytes    (mapped chunks + cached chunks) * G: what the device gave us; the
//                 allocator's reserved_bytes. Aliases hold no memory of their own.
//
// Not thread-safe: the caching allocator calls it under its own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/device/device.h"

namespace vramcache {

class ChunkPool;

// Totals since the pool was created; each counts successful device calls.
struct ChunkPoolCounters {
  std::uint64_t chunks_created = 0;
  std::uint64_t chunks_released = 0;
  std::uint64_t maps = 0;
  std::uint64_t unmaps = 0;
  std::uint64_t stitches = 0;         // chunks of free pages mapped at a page that needed one
  std::uint64_t alias_reuses = 0;     // pages that took their chunk back through an alias
  std::uint64_t alias_conflicts = 0;  // aliases unmapped because their chunk was busy
  // Chunks created, within the headroom, because no ready chunk was compatible.
  std::uint64_t compatibility_creations = 0;
  std::uint64_t events_created = 0;
  // Aliases whose last use was still running when they had to be unmapped: waited for.
  std::uint64_t fence_waits = 0;
  // A chunk was needed and none could be stolen, but the budget forbade creating one / the
  // device refused (CreateChunk answered ResourceExhausted).
  std::uint64_t budget_refusals = 0;
  std::uint64_t device_refusals = 0;
};

// One reserved address range, used by one stream. Created and destroyed by its ChunkPool.
class VmmArena {
 public:
  VmmArena(const VmmArena&) = delete;
  VmmArena& operator=(const VmmArena&) = delete;

  DevicePtr base() const { return base_; }
  std::size_t size() const { return pages_.size() * granularity_; }
  StreamHandle stream() const { return stream_; }
  // Which of the allocator's pools it serves (the pools' reserved bytes are counted apart).
  bool small() const { return small_; }
  std::size_t page_count() const { return pages_.size(); }
  bool Contains(DevicePtr addr, std::size_t bytes) const {
    return addr >= base_ && bytes <= size() && addr - base_ <= size() - bytes;
  }

  // [addr, addr + bytes) comes into use: every page it touches gets one more live count, and a
  // chunk if it holds none (its alias's chunk when free, else a cached one, else one stolen from
  // a ready page of any arena, else a new one within the budget). ResourceExhausted when no
  // chunk can be found. On any error the live counts are as before; chunks this call mapped
  // stay mapped as ready pages, and a chunk whose Map failed is cached or left with its holder
  // (all still held, all usable by the next Acquire).
  absl::Status Acquire(DevicePtr addr, std::size_t bytes);
  // [addr, addr + bytes) is no longer in use on this arena's stream: every page it touches loses
  // one live count; pages reaching 0 get a free mark and keep their chunk. FailedPrecondition if
  // a page is not in use; an error from recording the mark changes nothing.
  // `last_use_complete`: the caller knows every use of the range has completed (its stream was
  // destroyed and waited for): the pages are ready at once and no mark is recorded.
  // `rule` kUnlessStreamCaptures: when the release would record a mark on this arena's stream
  // (it ends the last use of a page), the device is first asked whether that stream captures a
  // graph (unannounced); if it does, nothing changes and the result is Unavailable (a release
  // that ends no page's last use records nothing and never asks).
  enum class MarkRule { kAnyTime, kUnlessStreamCaptures };
  absl::Status Release(DevicePtr addr, std::size_t bytes, bool last_use_complete = false,
                       MarkRule rule = MarkRule::kAnyTime);

  // How many pages of [addr, addr + bytes) an Acquire would have to find a chunk for: pages
  // that are unmapped, and aliases whose chunk is in use elsewhere.
  absl::StatusOr<std::size_t> UnbackedPages(DevicePtr addr, std::size_t bytes) const;
  // Pages with a mapping (holders and aliases).
  std::size_t mapped_pages() const { return mapped_pages_; }
  std::size_t live_pages() const { return live_pages_; }

  // One page as tests and snapshots see it.
  struct PageView {
    bool mapped = false;
    std::uint32_t live = 0;
    bool waiting = false;  // free, its mark not yet seen complete
    bool alias = false;    // mapped, but its chunk's holder is another page
  };
  PageView page(std::size_t index) const;

 private:
  friend class ChunkPool;

  static constexpr std::uint32_t kNone = 0xFFFFFFFFu;
  // How many past uses a page remembers. A training step uses a page a few times; 16 covered
  // every page of the shared traces (4 and 8 left a few stitches in every step of one).
  static constexpr std::size_t kPageHistory = 16;

  // When a page was in use, in ChunkPool::clock_ ticks: [begin, end).
  struct UseInterval {
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
  };
  struct Page {
    ChunkHandle chunk = 0;
    std::uint32_t live = 0;
    // While free: its free group (ChunkPool::FreeGroup) and its neighbours there (page indices).
    std::uint32_t group = kNone;
    std::uint32_t prev = kNone;
    std::uint32_t next = kNone;
    bool mapped = false;
    std::uint64_t live_since = 0;  // while in use: when this use began
    // An alias whose last use may still run: the mark (group and its seq) it waits for.
    std::uint32_t fence = kNone;
    std::uint64_t fence_seq = 0;
    // Its last uses, oldest first (at most kPageHistory): which chunks it can share.
    absl::InlinedVector<UseInterval, 2> uses;
  };

  VmmArena(ChunkPool* pool, std::uint32_t id, DevicePtr base, std::size_t bytes,
           std::size_t granularity, StreamHandle stream, bool small);

  // The pages [first, end) that [addr, addr + bytes) touches, or why the range is not ours.
  absl::Status PagesOf(const char* operation, DevicePtr addr, std::size_t bytes, std::size_t* first,
                       std::size_t* end) const {
    if (bytes == 0 || !Contains(addr, bytes)) return RangeError(operation, addr, bytes);
    const std::size_t offset = addr - base_;
    *first = offset / granularity_;
    *end = (offset + bytes + granularity_ - 1) / granularity_;
    return absl::OkStatus();
  }
  absl::Status RangeError(const char* operation, DevicePtr addr, std::size_t bytes) const;
  DevicePtr PageAddress(std::size_t index) const { return base_ + index * granularity_; }

  ChunkPool* const pool_;
  const std::uint32_t id_;  // its index in the pool, the tie-break of the free order
  const DevicePtr base_;
  const std::size_t granularity_;
  const StreamHandle stream_;
  const bool small_;
  std::uint32_t stream_slot_ = 0;  // its stream's place in ChunkPool::streams_
  std::vector<Page> pages_;
  std::size_t mapped_pages_ = 0;
  std::size_t live_pages_ = 0;
  std::size_t free_pages_ = 0;  // listed in the free order; the rest of the mapped are aliases
};

// One device's physical chunks and the arenas they are mapped into.
class ChunkPool {
 public:
  // How many of the oldest ready chunks a stitch examines for a compatible one.
  static constexpr int kCompatibleScan = 128;
  // Held bytes may exceed the most pages ever in use at once by this fraction (1/64) when a
  // chunk is created to stay compatible.
  static constexpr std::size_t kCompatibilityHeadroomShift = 6;
  // `device` must outlive the pool; `granularity` is its VMM granularity (a power of two),
  // checked by Create; the constructor aborts on a bad one.
  ChunkPool(Device* device, std::size_t granularity);
  static absl::StatusOr<std::unique_ptr<ChunkPool>> Create(Device* device, std::size_t granularity);
  // Gives everything back (ReleaseAll), ignoring errors.
  ~ChunkPool();
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;

  // Reserves `bytes` (a positive multiple of G) of address space for `stream`; nothing is
  // mapped. The arena lives until ReleaseAll. `small`: which allocator pool it serves.
  absl::StatusOr<VmmArena*> CreateArena(std::size_t bytes, StreamHandle stream, bool small = false);

  // Gives back the address range of `arena`, which must be the newest one and have nothing
  // mapped (a growth whose request failed); `arena` is destroyed.
  absl::Status DiscardNewestArena(VmmArena* arena);

  // Hard cap on held bytes (0: none). Lowering it below held_bytes() releases nothing (Trim
  // does) but no chunk is created until held bytes are back under it.
  void SetBudget(std::size_t bytes) { budget_bytes_ = bytes; }
  std::size_t budget() const { return budget_bytes_; }
  // While false, no event is queried (CUDA forbids it while any stream is capturing a graph in
  // global mode): only pages already seen ready can be stolen or trimmed, and marks are
  // recorded with new events instead of recycled ones. True by default.
  void SetEventQueriesAllowed(bool allowed) {
    queries_allowed_ = allowed;
    probe_pending_ = false;
  }
  // Queries are allowed unless `stream` captures a graph the allocator was not told about; the
  // device is asked at the first query that needs the answer (most Acquires make none).
  void SetEventQueriesAllowedUnlessCapturing(StreamHandle stream) {
    queries_allowed_ = true;
    probe_pending_ = true;
    probe_stream_ = stream;
  }
  // `stream` is being destroyed: it is not asked about afterwards (it would name no stream).
  void ForgetProbe(StreamHandle stream) {
    if (probe_pending_ && probe_stream_ == stream) probe_pending_ = false;
  }
  // Whether `stream` captures a graph the allocator was not told about (an error counts as
  // capturing). The answer also settles a pending probe of the same stream, whose question it
  // is (the pool's next event query would ask it again).
  bool StreamCaptures(StreamHandle stream);
  bool event_queries_allowed() const { return queries_allowed_; }
  // Whether a stitch leaves the old mapping as an alias (the default) or unmaps it. Off for the
  // unmap_on_free debug mode, whose free addresses must fault. Set before the first Acquire.
  void SetAliasing(bool aliasing) { aliasing_ = aliasing; }
  bool aliasing() const { return aliasing_; }
  std::size_t granularity() const { return granularity_; }

  std::size_t held_bytes() const {
    return (chunk_records_.size() + cached_chunks_.size()) * granularity_;
  }
  std::size_t cached_bytes() const { return cached_chunks_.size() * granularity_; }
  // Address bytes mapped: a chunk counts once per mapping (holder and aliases).
  std::size_t mapped_bytes() const { return mapped_pages_ * granularity_; }
  // Held bytes of the mapped chunks whose holder is in an arena created with small = true.
  std::size_t small_mapped_bytes() const { return small_held_chunks_ * granularity_; }
  // Address space reserved by all arenas.
  std::size_t address_bytes() const { return address_bytes_; }
  // Free pages' bytes (mapped, no live count): ready and waiting.
  std::size_t free_mapped_bytes() const { return (ready_pages_ + waiting_pages_) * granularity_; }
  std::size_t waiting_bytes() const { return waiting_pages_ * granularity_; }
  // Pages with a live count (each holds its own chunk), in the arenas of one allocator pool.
  std::size_t live_pages(bool small) const {
    return small ? small_live_pages_ : live_pages_ - small_live_pages_;
  }
  const ChunkPoolCounters& counters() const { return counters_; }
  std::size_t arena_count() const { return arenas_.size(); }

  // Returns up to `bytes_wanted` (rounded up to pages) to the device: cached chunks first, then
  // free pages whose marks have completed, least recently freed first (queries, never waits).
  // The bytes released; on a device error, the error (held_bytes() tells what was released).
  absl::StatusOr<std::size_t> Trim(std::size_t bytes_wanted);

  // Makes every mapping, present and future, accessible to device `peer_ordinal` too
  // (cuMemSetAccess; cudaDeviceEnablePeerAccess does not cover VMM mappings). Idempotent.
  absl::Status AddPeer(int peer_ordinal);
  const std::vector<int>& peers() const { return peers_; }

  // Unmaps every free page whose mark has completed (queries, never waits), and the chunk's
  // aliases, and keeps the chunk cached, held for the next page that needs one; then every
  // alias left (of chunks in use): the free addresses fault at once when used (the
  // unmap_on_free debug mode). The number of chunks cached.
  absl::StatusOr<std::size_t> UnmapFreePages();

  // Stream `stream` is being destroyed (its work so far is covered by the marks already
  // recorded): its handle may name a new stream later, which is not ordered after the old
  // one's work, so the arenas of `stream` record later marks in a new place, never treated as
  // ordered with the old ones.
  void StreamDestroyed(StreamHandle stream);

  // Shutdown: waits for the marks of free pages (their last uses), unmaps every page, live ones
  // included, releases every chunk, address range and event. Arenas are destroyed; the pool is
  // empty and usable again. Every step runs even after an error; the first error is returned.
  absl::Status ReleaseAll();

  // Every page with a live count holds its chunk; every free page is in exactly one free index
  // and its mark exists; every mapped chunk has one holder among its mappings, which are
  // exactly the pages mapping it; counts, marks and held bytes agree; no cached chunk is mapped.
  absl::Status CheckInvariants() const;

 private:
  friend class VmmArena;

  static constexpr std::uint32_t kNone = VmmArena::kNone;

  // Free pages of one arena that share a place in the free order (oldest Release first, then
  // page): the pages one Release freed, waiting on their mark and then ready, or one page an
  // undone Acquire left ready. Its pages form a list in page order through VmmArena::Page, so
  // a Release, a mark seen complete or a page taken back costs O(1) per page and no tree node.
  struct FreeGroup {
    std::uint64_t seq = 0;  // its place in the free order; 0: a recycled slot
    std::uint32_t arena = 0;
    std::uint32_t head = kNone;  // its pages, lowest first
    std::uint32_t tail = kNone;
    std::size_t listed = 0;  // pages in the list
    // While a mark (waiting): the event recorded on the arena's stream after its pages' last
    // use, and how many pages need it (those listed plus those an Acquire in progress took).
    bool waiting = false;
    EventHandle event = 0;
    std::size_t pages = 0;
    std::uint32_t stream_slot = 0;
    std::uint32_t older = kNone;  // marks of all streams, by seq
    std::uint32_t newer = kNone;
    std::uint32_t older_in_stream = kNone;  // marks of its stream, by seq
    std::uint32_t newer_in_stream = kNone;
  };
  // Marks of one stream, oldest first: a stream runs in order, so its oldest mark is the first
  // to complete and the only one worth querying.
  struct StreamMarks {
    StreamHandle stream = 0;
    std::uint32_t oldest = kNone;
    std::uint32_t newest = kNone;
    bool retired = false;  // its stream was destroyed; new arenas of the handle get a new place
  };
  // A page of an arena.
  struct PageRef {
    std::uint32_t arena = 0;
    std::uint32_t page = 0;
    bool operator==(const PageRef& other) const {
      return arena == other.arena && page == other.page;
    }
  };
  // A mapped chunk: its holder and every page it is mapped at (the holder included).
  struct ChunkRecord {
    PageRef holder;
    absl::InlinedVector<PageRef, 2> mappings;
  };
  // How a page with no live count came into use in an Acquire.
  enum class TakenKind : std::uint8_t {
    kOwn,         // it held its chunk (free): reused in place
    kClaimed,     // an alias that took its chunk back from the free holder `holder`
    kAlias,       // an alias not yet looked at
    kConflict,    // an alias whose chunk is busy: to be unmapped and backed
    kNeedsChunk,  // unmapped: to be backed
  };
  // What one Acquire changed on a page that had no live count, to undo it on failure.
  struct AcquiredFreePage {
    std::size_t page = 0;
    TakenKind kind = TakenKind::kNeedsChunk;
    std::uint64_t free_seq = 0;  // kOwn, kClaimed: the free order place of the holder
    std::uint32_t group = kNone;
    bool waiting = false;
    bool fenced = false;  // kClaimed: the holder, still waiting, was left a fence
    PageRef holder;       // kClaimed: the holder it took the chunk from
  };
  // A chunk stolen from a ready page: still mapped at `holder` (now an alias) when aliasing.
  struct StolenChunk {
    ChunkHandle chunk = 0;
    bool aliased = false;
    PageRef holder;
  };

  absl::Status Acquire(VmmArena& arena, DevicePtr addr, std::size_t bytes);
  absl::Status Release(VmmArena& arena, DevicePtr addr, std::size_t bytes, bool last_use_complete,
                       VmmArena::MarkRule rule);
  void UndoAcquire(VmmArena& arena, std::size_t first, std::size_t end);
  // The uses of pages [first, end) end: pages reaching a live count of 0 remember the use and
  // join free group `group` (a mark, or a ready group).
  void EndUses(VmmArena& arena, std::size_t first, std::size_t end, std::uint32_t group);
  // Whether the alias at `page` (no live count) can take its chunk back now; may query the
  // holder's mark (resolving it when complete). `busy_mark`: a mark this Acquire already saw
  // running, not queried again (the pages of one release often come back together).
  absl::StatusOr<bool> AliasClaimable(const VmmArena& arena, std::size_t page,
                                      std::uint32_t* busy_mark);
  // A free page rejoins the free order at the place it had (its mark, when still waiting).
  void Relist(VmmArena& arena, std::size_t page, const AcquiredFreePage& before);

  // Maps a chunk at `page` (cached, stolen, or new). `scan_waiting`: whether waiting marks may
  // be queried (cleared once a query scan found nothing, so one Acquire scans once).
  absl::Status BackPage(VmmArena& arena, std::size_t page, bool* scan_waiting);
  // Maps a chunk just created at `page`, remembering it for ReleaseCreated.
  absl::Status MapCreated(VmmArena& arena, std::size_t page, ChunkHandle chunk);
  // Whether `unbacked` pages can be backed by arithmetic: reusable chunks (cached, free pages
  // ready or waiting), then new ones within the budget and the device's free memory.
  absl::Status CheckFeasible(std::size_t unbacked);
  // After a failed Acquire: the chunks it created are unmapped and released.
  void ReleaseCreated(VmmArena& arena);
  // Whether no page `chunk` is mapped at was in use while `page` was.
  bool Compatible(const VmmArena::Page& page, ChunkHandle chunk) const;
  // Whether one more chunk, created to stay compatible, keeps held bytes within the headroom
  // and the budget.
  bool CompatibilityHeadroom() const;
  // Maps `chunk` at `page`, which becomes its holder. On failure the chunk is cached, or when
  // `stolen` is still mapped, its holder is listed ready again.
  absl::Status MapChunk(VmmArena& arena, std::size_t page, const StolenChunk& stolen);
  // A ready page's chunk (aliased or unmapped, see SetAliasing); nullopt when no page is ready
  // (after querying waiting marks when `scan_waiting`). With `for_page`, the first of the
  // oldest kCompatibleScan ready chunks that is compatible with it, or nullopt when none is.
  absl::StatusOr<std::optional<StolenChunk>> StealChunk(bool scan_waiting, bool aliasing,
                                                        const VmmArena::Page* for_page = nullptr);
  // The oldest ready page whose chunk can be unmapped everywhere now, or nullopt. While no
  // event may be queried (a capture), a chunk with an alias whose fence may still run is passed
  // over: its unmap would have to wait for that fence. EmptyCache during another thread's
  // capture then gives back the other chunks instead of failing.
  std::optional<PageRef> DetachableReadyPage();
  // Whether a mapping of the chunk has a fence not yet seen complete.
  bool AliasFenceRunning(const ChunkRecord& record) const;
  // The ready page `holder`'s chunk, unmapped everywhere (holder and aliases).
  absl::StatusOr<ChunkHandle> DetachReadyChunk(PageRef holder);
  // Unmaps one mapping of a chunk that has others (an alias), once its fence has completed
  // (queried, else waited for: the one blocking call made under the allocator's lock, on a
  // rare path). ResourceExhausted when the fence is still running and queries are not allowed.
  absl::Status UnmapAlias(VmmArena& arena, std::size_t page);
  // Waits until the fence of `page` (if any) has completed: queried, else synchronized.
  absl::Status AwaitFence(VmmArena& arena, std::size_t page);
  // Whether `page` has a fence whose mark has not been seen complete.
  bool FenceRunning(const VmmArena::Page& page) const;
  // The page's fence no longer needs its mark (the page is unmapped or holds its chunk again).
  void DropFence(VmmArena::Page& page);
  // Unmaps `page` and forgets it among its chunk's mappings.
  absl::Status UnmapPage(VmmArena& arena, std::size_t page);
  // Unmaps every mapping of the chunk but its holder's.
  absl::Status UnmapAliases(ChunkRecord& record);
  void SetHolder(ChunkRecord& record, PageRef holder);
  VmmArena::Page& PageAt(PageRef ref) { return arenas_[ref.arena]->pages_[ref.page]; }
  const VmmArena::Page& PageAt(PageRef ref) const { return arenas_[ref.arena]->pages_[ref.page]; }
  // Queries the oldest waiting mark of each stream (oldest first) until one has completed and
  // makes its pages ready. Whether one did.
  absl::StatusOr<bool> ResolveCompletedMark();
  // The mark completed: its listed pages become ready, its event spare.
  void ResolveMark(std::uint32_t group);
  // A page of the mark `group` (while it still has seq `seq`) was reused in place.
  void DropMarkUse(std::uint32_t group, std::uint64_t seq);
  absl::StatusOr<EventHandle> TakeEvent();
  // Whether an event may be queried now (see SetEventQueriesAllowedUnlessCapturing).
  bool QueriesAllowed();
  absl::Status ExhaustedError(const VmmArena& arena, DevicePtr addr, std::size_t bytes,
                              std::size_t unbacked, const absl::Status& device_error) const;

  std::uint32_t NewGroup(std::uint64_t seq, std::uint32_t arena);
  void RecycleGroup(std::uint32_t group);
  // Takes a mark out of the mark lists and keeps its event spare; the group stays.
  void UnlinkMark(std::uint32_t group);
  // A free page joins `group`'s list at the end (`append`) or at its place in page order.
  void AddToGroup(VmmArena& arena, std::size_t page, std::uint32_t group, bool append);
  // The ready group with `seq`, made when there is none.
  std::uint32_t ReadyGroup(std::uint64_t seq, std::uint32_t arena);
  void RemoveFree(VmmArena& arena, std::size_t page);
  std::uint32_t StreamSlot(StreamHandle stream);

  Device* const device_;
  const std::size_t granularity_;
  std::size_t budget_bytes_ = 0;
  bool queries_allowed_ = true;
  bool probe_pending_ = false;  // queries_allowed_ waits for IsCapturing(probe_stream_)
  StreamHandle probe_stream_ = 0;
  std::vector<std::unique_ptr<VmmArena>> arenas_;  // by id
  bool aliasing_ = true;
  std::vector<ChunkHandle> cached_chunks_;
  absl::flat_hash_map<ChunkHandle, ChunkRecord> chunk_records_;  // every mapped chunk
  std::size_t mapped_pages_ = 0;
  std::size_t small_held_chunks_ = 0;
  std::size_t address_bytes_ = 0;
  std::vector<FreeGroup> groups_;
  std::vector<std::uint32_t> recycled_groups_;
  absl::btree_map<std::uint64_t, std::uint32_t> ready_;  // ready groups by seq: oldest first
  std::size_t ready_pages_ = 0;
  std::size_t waiting_pages_ = 0;
  std::uint32_t oldest_mark_ = kNone;  // marks of all streams, by seq
  std::uint32_t newest_mark_ = kNone;
  std::size_t mark_count_ = 0;
  std::vector<StreamMarks> streams_;  // by VmmArena::stream_slot_
  std::vector<EventHandle> spare_events_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t clock_ = 0;           // ticks at every Acquire and Release: the time of page uses
  std::size_t live_pages_ = 0;        // pages in use, all arenas
  std::size_t small_live_pages_ = 0;  // pages in use in arenas created with small = true
  std::size_t peak_live_pages_ = 0;
  ChunkPoolCounters counters_;
  std::vector<AcquiredFreePage> acquire_scratch_;  // reused by every Acquire
  // Pages the current Acquire mapped with chunks it created, and chunks it created that a
  // failed Map left cached: given back when the Acquire fails.
  std::vector<std::size_t> created_scratch_;
  std::vector<ChunkHandle> created_cached_scratch_;
  std::vector<int> peers_;  // granted access to every mapping
};

// Inline: every block served or freed makes one (a call of its own cost the replays ~1%).
inline absl::Status VmmArena::Acquire(DevicePtr addr, std::size_t bytes) {
  return pool_->Acquire(*this, addr, bytes);
}
inline absl::Status VmmArena::Release(DevicePtr addr, std::size_t bytes, bool last_use_complete,
                                      MarkRule rule) {
  return pool_->Release(*this, addr, bytes, last_use_complete, rule);
}

}  // namespace vramcache
