// The virtual-memory backing: address ranges reserved per growth (VmmArena), whose pages get
// physical chunks (ChunkPool, vmm_arena.h) while live blocks cover them. It owns the chunk pool,
// acquires and releases a block's pages, keeps the releases that cannot happen now (a capture
// is under way, or the free mark could not be recorded) until they can, trims cached chunks,
// and keeps reserved_bytes and the device-call counters following the chunks. Its device calls
// (map, unmap, create, release, event record and query) do not block, so it runs under the
// allocator's lock; the device synchronization after which waiting pages can give their chunks
// is the allocator's to make, without the lock (MustWaitToTrim says when it helps).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "allocator/core/backing.h"
#include "allocator/core/config.h"
#include "allocator/core/stats_ledger.h"
#include "allocator/core/vmm_arena.h"
#include "allocator/device/device.h"

namespace vramcache {

class VmmBacking final : public Backing {
 public:
  // Address space reserved per growth of the large pool. Address space is cheap and physical
  // pages follow the live blocks, so one large range per stream lets best fit pack blocks
  // across what would be segment boundaries (fewer partly used pages).
  static constexpr std::size_t kLargeRangeBytes = std::size_t{1} << 30;

  // `device` and `ledger` must outlive the backing. `budget`: the hard cap (0: none).
  VmmBacking(Device* device, const AllocatorConfig& config, StatsLedger* ledger,
             std::size_t budget);

  // The chunk pool, for growth (ranges), snapshots and invariant checks.
  ChunkPool& chunks() { return *pool_; }
  const ChunkPool& chunks() const { return *pool_; }

  std::size_t HeldBytes() const override { return pool_->held_bytes(); }
  void SetBudget(std::size_t bytes) override { pool_->SetBudget(bytes); }
  std::size_t AddressSpaceBytes() const override { return pool_->address_bytes(); }
  CachedFree FreeMemory() const override;
  std::size_t LargestAllocation(std::size_t,
                                absl::FunctionRef<std::size_t()> headroom) const override {
    return FreeMemory().bytes + headroom();
  }
  bool RetriesWithTightSegment() const override { return false; }
  void BeforeHeapSearch(std::optional<bool> stream_captures, bool captures_active,
                        StreamHandle stream) override {
    if (stream_captures.has_value() || captures_active) {
      pool_->SetEventQueriesAllowed(captures_active ? false : !*stream_captures);
    } else {
      pool_->SetEventQueriesAllowedUnlessCapturing(stream);  // asked at the first query
    }
  }
  absl::Status AcquirePages(Block* block) override;
  void ReleasePages(Block* block, const StreamsNow& streams) override;
  absl::Status EnablePeerAccess(int peer_ordinal) override { return pool_->AddPeer(peer_ordinal); }
  void StreamDestroyed(StreamHandle stream) override {
    ReleaseDeferredOf(stream);
    pool_->StreamDestroyed(stream);
    pool_->ForgetProbe(stream);
  }
  // A range's chunks are counted where they are released (SettleStats), not here.
  void Detached(const Segment& segment) override { ledger_->CountSegmentReleased(segment); }
  void SegmentsFreed(std::int64_t, std::size_t) override {}  // no segment is freed on its own
  absl::Status ReleaseAllAtShutdown(std::vector<Segment*>* released) override;
  // A snapshot segment is a run of consecutive pages of one arena that hold a chunk (in use,
  // or free and keeping it), so that the segments add up to the memory mapped, each chunk once;
  // aliases and unbacked address space hold no memory and do not appear. Its blocks are the
  // arena's blocks clipped to the run (a block in use lies wholly in one run).
  void AppendSnapshot(const Segment& segment, std::vector<SegmentInfo>* out) const override;

  // A new range for a request of `rounded` bytes on `stream`: the large pool's is
  // kLargeRangeBytes (unless that would be at or above `max_split_size`, when it could serve no
  // ordinary request), the small pool's and a private pool's the segment size. A private
  // pool's range is backed whole at once (Segment::pinned); when that fails, the range goes
  // back and the error is returned.
  absl::StatusOr<VmmArena*> ReserveRange(std::size_t rounded, bool small, bool private_pool,
                                         StreamHandle stream, std::size_t max_split_size);

  // Releases a range of `arena` (a private pool's pinned range when the pool is released), or
  // keeps it for FlushDeferredReleases when that cannot happen now.
  void ReleaseRangeOrDefer(VmmArena* arena, DevicePtr addr, std::size_t bytes,
                           const StreamsNow& streams);
  // Retries the releases kept; nothing during a capture.
  void FlushDeferredReleases(const StreamsNow& streams) override;
  // The chunk pool may query events again; the releases kept are retried.
  void CaptureEnded(const StreamsNow& streams) override {
    pool_->SetEventQueriesAllowed(true);
    FlushDeferredReleases(streams);
  }
  // Gives up to `bytes` of cached chunks back to the device (SIZE_MAX: all that can go);
  // what was released.
  absl::StatusOr<std::size_t> Trim(std::size_t bytes);
  // Free pages whose last use may still be running cannot give their chunks: a device
  // synchronization lets them.
  bool MustWaitToTrim() const { return pool_->waiting_bytes() > 0; }
  // Shutdown: the kept releases are moot (every chunk and range goes back).
  void DropDeferredReleases() override { deferred_.clear(); }
  // Copies the chunk pool's device calls and held bytes into the statistics (the ledger's
  // SettleVmmReserved); after every step that may have changed them.
  void SettleStats() { ledger_->SettleVmmReserved(); }

 private:
  // The deferred releases of `stream`'s ranges (a capture on it kept their marks from being
  // recorded), released now with their marks recorded on it: StreamDestroyed calls it while the
  // stream still exists. A release after that would take the stream's last use as complete
  // (ReleaseRange: no mark can be recorded on a dead handle) while its work may still run
  // (oracle seed 97441; HazardRegressionTest.APageReleaseDeferredAcrossAStreamsDestruction...).
  // One that fails stays deferred.
  void ReleaseDeferredOf(StreamHandle stream);

  // A block range whose pages could not be released when it was freed.
  struct DeferredRelease {
    VmmArena* arena;
    DevicePtr addr;
    std::size_t bytes;
  };

  // Whether `stream` is capturing a graph the allocator was not told about: a mark recorded on
  // it would be captured, and could never be queried.
  bool StreamCapturing(StreamHandle stream, const StreamsNow& streams);
  // When the arena's stream was destroyed, every use of the range has completed already (the
  // allocator's StreamDestroyed) and no mark can be recorded on it.
  absl::Status ReleaseRange(VmmArena* arena, DevicePtr addr, std::size_t bytes,
                            const StreamsNow& streams);

  StatsLedger* const ledger_;
  std::unique_ptr<ChunkPool> pool_;
  std::vector<DeferredRelease> deferred_;
};

}  // namespace vramcache
