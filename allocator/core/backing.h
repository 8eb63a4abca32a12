// The backing: where the memory under the allocator's segments comes from and goes back to.
// Two implementations: SegmentBacking (segment_backing.h), one device allocation per segment,
// and VmmBacking (vmm_backing.h), address ranges whose pages get physical chunks as live blocks
// need them. The facade asks this interface what either can answer (held bytes, the budget,
// free memory, a block's pages), so that it branches on the mode only where the two grow or
// give back memory in different steps (segment mode's device calls block and are made without
// the lock; virtual memory's do not). Each also says how its segments appear in a snapshot,
// what the largest allocation that can succeed is, how growth sizes its segments, and what
// shutdown gives back under the lock. Called with the allocator's lock held; never blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "allocator/core/block.h"

namespace vramcache {

struct SegmentInfo;  // caching_allocator.h

// What a release of pages needs to know about streams, from the allocator's stream state.
struct StreamsNow {
  // A graph capture the allocator knows of is under way: nothing may be recorded or queried.
  bool captures_active = false;
  // Streams destroyed whose handle was not used since (no event may be recorded on them).
  const absl::flat_hash_set<StreamHandle>* dead_streams = nullptr;

  bool Dead(StreamHandle stream) const {
    return dead_streams != nullptr && !dead_streams->empty() && dead_streams->contains(stream);
  }
};

// Free memory as the out-of-memory report and cacheInfo mean it.
struct CachedFree {
  std::size_t bytes = 0;
  std::size_t largest_block = 0;
};

class Backing {
 public:
  virtual ~Backing() = default;

  // Bytes held from the device: what the budget caps and reserved_bytes shows.
  virtual std::size_t HeldBytes() const = 0;
  // The hard budget changed (the chunk pool enforces it on each chunk it creates).
  virtual void SetBudget(std::size_t bytes) = 0;
  // Address space reserved (virtual memory; 0 in segment mode).
  virtual std::size_t AddressSpaceBytes() const = 0;
  // Cached free memory a request could use: free blocks in segment mode; free pages and
  // cached chunks in virtual-memory mode, where free address space is not memory.
  virtual CachedFree FreeMemory() const = 0;
  // The largest allocation that could succeed now (PyTorch's cacheInfo: device free memory or
  // the largest cached block, whichever is larger). Segment mode: the largest cached free
  // block, `reuse_cache_largest` among them. Virtual memory: free address space is plentiful,
  // and any request is stitched from free pages, cached chunks and new chunks alike, so all of
  // those; `headroom` says how much new memory the device and the budget allow (asked only
  // there: it asks the device).
  virtual std::size_t LargestAllocation(std::size_t reuse_cache_largest,
                                        absl::FunctionRef<std::size_t()> headroom) const = 0;
  // Growth: when a segment of the preferred size does not fit, one of the request's size might
  // (segment mode); in virtual memory address space is not what runs out, so one size is
  // enough.
  virtual bool RetriesWithTightSegment() const = 0;
  // An allocation is about to search the heap on `stream`. Virtual memory: whether the chunk
  // pool may query events in it (not while a capture the allocator knows of is under way, nor
  // when `stream` captures; `stream_captures`: the answer when the caller already asked the
  // device, else asked at the pool's first query). Nothing in segment mode.
  virtual void BeforeHeapSearch(std::optional<bool> stream_captures, bool captures_active,
                                StreamHandle stream) = 0;

  // `block` is about to be handed out: its pages get chunks. ResourceExhausted when they cannot
  // now (the growth ladder frees some and retries). Nothing to do in segment mode.
  virtual absl::Status AcquirePages(Block* block) = 0;
  // `block`'s use of its pages ended (only called for a block that holds pages).
  virtual void ReleasePages(Block* block, const StreamsNow& streams) = 0;

  // Peer access to this device was enabled: virtual memory makes every mapping, present and
  // future, accessible to the peer (cudaDeviceEnablePeerAccess covers only cudaMalloc's).
  virtual absl::Status EnablePeerAccess(int peer_ordinal) = 0;
  // `stream` was destroyed: no mark may be recorded on it any more, nor its capture state asked.
  virtual void StreamDestroyed(StreamHandle stream) = 0;
  // Retries the page releases a capture (or a failed mark) kept back; nothing during a capture.
  // Segment mode keeps none.
  virtual void FlushDeferredReleases(const StreamsNow& streams) = 0;
  // The last capture the allocator knew of ended: events may be queried again, and the
  // releases kept back are retried.
  virtual void CaptureEnded(const StreamsNow& streams) = 0;
  // Shutdown: the releases kept back are moot (everything goes back).
  virtual void DropDeferredReleases() = 0;

  // `segment` left the heap (released, a new range discarded, or shutdown): the ledger counts
  // it released. Segment mode's device free follows, without the lock.
  virtual void Detached(const Segment& segment) = 0;
  // `calls` device frees of detached segments, `bytes` in all, completed (segment mode; the
  // facade makes them without the lock).
  virtual void SegmentsFreed(std::int64_t calls, std::size_t bytes) = 0;
  // Shutdown, once every segment in `released` left the heap. Virtual memory unmaps every page,
  // live ones included, releases every chunk and range (none of those calls blocks), and
  // deletes the segments, leaving `released` empty. Segment mode leaves them for the facade's
  // device frees, made without the lock.
  virtual absl::Status ReleaseAllAtShutdown(std::vector<Segment*>* released) = 0;

  // How `segment` appears in a snapshot (memory_viz), appended to `out`, so that the segments
  // listed add up to the memory held: segment mode, the segment whole with every block;
  // virtual memory, each run of pages holding a chunk, with the blocks clipped to it.
  virtual void AppendSnapshot(const Segment& segment, std::vector<SegmentInfo>* out) const = 0;
};

}  // namespace vramcache
