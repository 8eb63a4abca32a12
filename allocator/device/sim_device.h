// SimDevice: the Device contract on host memory, for machines without a GPU. It follows CUDA's
// rules strictly (granularity, whole-chunk mapping, one mapping per range, no release of what
// is in use) so CPU tests catch what the GPU would, and adds what tests need: configurable
// capacity, memory held by "other processes", streams and events whose completion the test
// controls, graph capture, fault injection and counters.
//
// Two modes (SimDeviceOptions::accounting_only):
//   memory mode      - real bytes: chunks are memfd slices mapped with MAP_SHARED, so data
//                      survives unmap and remap at another address; Fill writes the pattern.
//   accounting mode  - addresses with nothing behind them (never dereference them) and the same
//                      bookkeeping; Fill only validates and counts. The default, for replays.
//
// Hazard checking (SimDeviceOptions::check_hazards, on by default): the device remembers which
// physical bytes every incomplete work item touches (LaunchWork, Fill) and reports, through the
// process-wide sink of sim_hazards.h, every stream-ordering hazard: memory unmapped or released
// under running work (H1), another owner's work on the same bytes without a happens-before
// (H2), calls a graph capture forbids (H3), and dead or foreign stream and event handles (H4).
// Happens-before: stream order, RecordEvent/StreamWaitEvent chains (transitively), and
// completion (a query or synchronize that saw it, a device synchronization).
//
// Like CUDA, a chunk may be mapped at several addresses at once (the allocator's aliases share
// its bytes). Stricter than CUDA: releasing a mapped chunk is an error (CUDA defers the free to the
// unmap), and Malloc(0) is an error; Free(0) is accepted like cudaFree(nullptr).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "allocator/base/mutex.h"
#include "allocator/device/device.h"
#include "allocator/device/sim_backing.h"
#include "allocator/device/sim_faults.h"
#include "allocator/device/sim_hazards.h"
#include "allocator/device/sim_op.h"
#include "allocator/device/sim_streams.h"
#include "allocator/device/sim_work.h"

namespace vramcache {

struct SimDeviceOptions {
  // Physical bytes: Malloc'ed bytes plus chunk bytes may not exceed it (less external usage).
  std::size_t capacity = std::size_t{80} << 30;
  // Chunk sizes, reservations and mappings are multiples of it; a power of two, at least a page.
  std::size_t granularity = std::size_t{2} << 20;
  bool accounting_only = true;
  SimCompletion completion = SimCompletion::kImmediate;
  int queries_until_complete = 2;  // kAfterQueries: the query that reports complete
  // kRandom: each work item runs a random number of device calls in [0, max_work_duration],
  // drawn from a generator seeded with `seed` (the same calls give the same completions).
  std::uint64_t seed = 0;
  int max_work_duration = 8;
  // Report stream-ordering hazards (sim_hazards.h). Off, it costs nothing: no access
  // resolution and no bookkeeping; the replay tool and the benchmarks turn it off.
  bool check_hazards = true;
  // Whether CreateStream hands out destroyed streams' handle values again (CUDA does).
  bool reuse_stream_handles = true;
  int ordinal = 0;
  bool vmm_supported = true;
  std::string name = "vramcache simulated device";

  absl::Status Validate() const;
};

// A snapshot of the counters; bytes and counts are what is live now unless named otherwise.
struct SimCounters {
  std::array<std::int64_t, kSimOpCount> calls{};              // every call, failed ones too
  std::array<std::int64_t, kSimOpCount> injected_failures{};  // calls failed by injection
  std::size_t held_bytes = 0;                                 // malloc_bytes + chunk_bytes
  std::size_t peak_held_bytes = 0;
  std::size_t malloc_bytes = 0;
  std::size_t chunk_bytes = 0;
  std::size_t external_bytes = 0;
  std::size_t live_mallocs = 0;
  std::size_t live_chunks = 0;
  std::size_t live_mappings = 0;
  std::size_t mapped_bytes = 0;
  std::size_t live_reservations = 0;
  std::size_t reserved_bytes = 0;
  std::size_t live_events = 0;
  std::size_t live_streams = 0;  // created by CreateStream and not destroyed
  std::size_t pending_work = 0;
  std::uint64_t submitted_work = 0;  // kernels, fills and waits, all time
  std::uint64_t filled_bytes = 0;    // all time

  std::int64_t Calls(SimOp op) const { return calls[static_cast<std::size_t>(op)]; }
};

class SimDevice final : public Device {
 public:
  using Completion = SimCompletion;
  static constexpr int kFailForever = SimFaultInjector::kForever;

  // Options must be valid (SimDeviceOptions::Validate); invalid ones abort with the reason.
  // Create() reports them as an error instead, for options that come from users.
  explicit SimDevice(const SimDeviceOptions& options = {});
  static absl::StatusOr<std::unique_ptr<SimDevice>> Create(const SimDeviceOptions& options);
  ~SimDevice() override;

  SimDevice(const SimDevice&) = delete;
  SimDevice& operator=(const SimDevice&) = delete;

  // Device.
  const DeviceCapabilities& Capabilities() const override { return capabilities_; }
  absl::StatusOr<DeviceMemInfo> MemInfo() override;
  absl::StatusOr<DevicePtr> Malloc(std::size_t bytes) override;
  absl::Status Free(DevicePtr ptr) override;
  absl::StatusOr<DevicePtr> ReserveAddress(std::size_t bytes) override;
  absl::Status ReleaseAddress(DevicePtr base, std::size_t bytes) override;
  absl::StatusOr<ChunkHandle> CreateChunk(std::size_t bytes) override;
  absl::Status ReleaseChunk(ChunkHandle chunk) override;
  absl::Status Map(DevicePtr va, std::size_t bytes, ChunkHandle chunk) override;
  // [va, va + bytes) must be exactly covered by one or several whole, adjacent mappings.
  absl::Status Unmap(DevicePtr va, std::size_t bytes) override;
  absl::Status GrantPeerAccess(DevicePtr va, std::size_t bytes, int peer_ordinal) override;
  absl::StatusOr<EventHandle> CreateEvent() override;
  absl::Status DestroyEvent(EventHandle event) override;
  absl::Status RecordEvent(EventHandle event, StreamHandle stream) override;
  absl::StatusOr<bool> QueryEvent(EventHandle event) override;
  absl::Status SynchronizeEvent(EventHandle event) override;
  absl::Status StreamWaitEvent(StreamHandle stream, EventHandle event) override;
  absl::Status SynchronizeDevice() override;
  absl::StatusOr<bool> IsCapturing(StreamHandle stream) override;
  // Memory mode writes the pattern at once; both modes also submit the fill as work on `stream`.
  absl::Status Fill(const FillRequest& request, StreamHandle stream) override;
  // Like the GPU: synchronizes `stream` (completes its work), so it fails while any stream is
  // capturing. Memory mode compares the bytes; accounting mode has no bytes, so nothing can
  // differ: it validates the ranges and reports them all intact. Counted as a kFill call.
  absl::StatusOr<std::vector<std::optional<PatternMismatch>>> VerifyPatterns(
      const std::vector<PatternCheck>& checks, StreamHandle stream) override;
  // The creating device's ordinal for a stream CreateStream made (of any SimDevice); this
  // device's for any other handle. A destroyed stream is FailedPrecondition (and hazard H4).
  absl::StatusOr<int> StreamOrdinal(StreamHandle stream) override;
  // The calling thread's mode, process-wide like CUDA's: kRelaxed lifts the global-mode capture
  // rule (H3) for this thread's queries, synchronizations, Malloc and Free.
  CaptureMode ExchangeCaptureMode(CaptureMode mode) override;

  // A "kernel" on `stream` that reads and writes every range of `accesses`. Each must be device
  // memory this device handed out (in one Malloc'ed block or adjacent mappings), else
  // InvalidArgument and nothing is submitted. Empty ranges are ignored. Checked for H2 against
  // incomplete work (and H4 on the stream). Returns its ticket. Not a Device call, but it
  // advances kRandom's clock like one.
  absl::StatusOr<std::uint64_t> LaunchWork(StreamHandle stream, std::vector<SimAccess> accesses,
                                           absl::string_view label = "");
  // Every hazard this device found, oldest first (each was also sent to the sink).
  std::vector<SimHazard> Hazards() const;

  // Streams and completion, for tests. Any handle value is a stream, 0 included.
  std::uint64_t SubmitWork(StreamHandle stream);
  absl::Status CompleteWork(StreamHandle stream, std::uint64_t ticket);
  void CompleteStream(StreamHandle stream);
  void CompleteAll();
  // Whether work item `ticket` (from SubmitWork or a fill) has completed, on any stream.
  bool IsWorkComplete(std::uint64_t ticket) const;
  StreamHandle CreateStream();
  absl::Status DestroyStream(StreamHandle stream);
  void SetCapturing(StreamHandle stream, bool capturing);

  // Memory held by other processes: lowers MemInfo's free bytes and what can be allocated.
  void SetExternalUsage(std::size_t bytes);
  // How long SynchronizeDevice keeps its caller after completing the work queued before it,
  // with the device's lock released: a real synchronization's host thread waits while other
  // threads queue more work, which it does not cover. 0 (the default): it returns at once.
  // This opens the window in which another thread frees a block the synchronization's caller
  // must not count as done (defect b of issue 14). Negative or over a second: InvalidArgument.
  absl::Status SetSynchronizeLatency(absl::Duration latency);

  // Fault injection; an injected failure changes nothing but the counters. `count` may be
  // kFailForever.
  void FailNext(SimOp op, absl::Status status, int count = 1);
  void FailAfter(SimOp op, int successes_first, absl::Status status, int count = 1);
  void ClearFailures();

  // Host access for tests (memory mode only), validated like Fill: the range must lie in one
  // Malloc'ed block or in adjacent mapped chunks.
  absl::Status CopyToHost(DevicePtr source, void* destination, std::size_t bytes);
  absl::Status CopyFromHost(DevicePtr destination, const void* source, std::size_t bytes);

  SimCounters Counters() const;
  std::size_t HeldBytes() const;
  std::size_t LiveMappings() const;
  std::size_t LiveReservations() const;
  std::size_t LiveChunks() const;
  std::size_t LiveMallocs() const;
  std::size_t LiveEvents() const;
  std::int64_t Calls(SimOp op) const;
  void ResetCallCounts();

 private:
  struct Block {
    std::size_t bytes = 0;
  };
  struct Reservation {
    std::size_t bytes = 0;
    std::size_t mappings = 0;
  };
  struct Chunk {
    std::size_t bytes = 0;
    std::uint64_t location = 0;  // in the backing
    std::size_t mappings = 0;
    DevicePtr mapped_at = 0;  // the latest mapping, for messages
  };
  struct Mapping {
    std::size_t bytes = 0;
    ChunkHandle chunk = 0;
    DevicePtr reservation = 0;
  };

  // Counts the call, lets kRandom's time pass, and applies fault injection.
  absl::Status Enter(SimOp op) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Hazard checks (sim_device_hazards.cc); all do nothing unless options_.check_hazards.
  void ReportHazard(SimHazardKind kind, std::string message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The capture rule (FailedPrecondition while any stream captures), reported as H3. Inline
  // while no stream captures (every replay and benchmark call): one branch, no call.
  absl::Status CheckNoCapture(absl::string_view call) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!streams_.AnyCapturing()) return absl::OkStatus();
    return CheckNoCaptureNow(call);
  }
  absl::Status CheckNoCaptureNow(absl::string_view call) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // H3 for an event last recorded on a capturing stream, used by a query, a synchronize, or a
  // wait of a stream that is not capturing (`waiter`); FailedPrecondition like CUDA. Inline
  // while no event was recorded during a capture.
  absl::Status CheckCapturedEvent(absl::string_view call, EventHandle event,
                                  std::optional<StreamHandle> waiter)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!streams_.AnyCaptureRecords()) return absl::OkStatus();
    return CheckCapturedEventNow(call, event, waiter);
  }
  absl::Status CheckCapturedEventNow(absl::string_view call, EventHandle event,
                                     std::optional<StreamHandle> waiter)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // H4: a destroyed stream or another device's. Reported only; the call goes on. Inline, so
  // that with checking off (benchmarks, replays) every device call pays one branch, no call.
  void CheckStream(absl::string_view call, StreamHandle stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (options_.check_hazards) CheckStreamHandle(call, stream);
  }
  void CheckStreamHandle(absl::string_view call, StreamHandle stream)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // H4: another device's event. Reported only.
  void CheckEvent(absl::string_view call, EventHandle event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (options_.check_hazards) CheckEventHandle(call, event);
  }
  void CheckEventHandle(absl::string_view call, EventHandle event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The physical pieces behind an accessible range (CheckAccessible passed).
  void Resolve(DevicePtr ptr, std::size_t bytes, std::uint64_t owner,
               std::vector<SimPiece>* pieces) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // H2 for new work `info` about to be submitted on `stream`.
  void CheckNewWork(const SimWorkInfo& info) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // H1: `call` would take away what incomplete work touches; `touches` says which pieces.
  void CheckRelease(const std::string& call, const std::function<bool(const SimPiece&)>& touches)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Submits work on `stream` over already validated ranges: with checking on, resolved to
  // pieces and checked for H2 first; else plain work.
  std::uint64_t SubmitChecked(StreamHandle stream, std::vector<SimAccess> accesses,
                              absl::string_view label) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckCapacity(absl::string_view call, std::size_t bytes) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckVmm(absl::string_view call) const;
  absl::Status CheckGranular(absl::string_view call, absl::string_view what,
                             std::size_t value) const;
  // The mappings that exactly cover [va, va + bytes), in address order, or why not.
  absl::Status CheckCoveredByMappings(absl::string_view call, DevicePtr va, std::size_t bytes,
                                      bool whole_mappings) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Where host code may touch [ptr, ptr + bytes): one Malloc'ed block or adjacent mappings.
  absl::Status CheckAccessible(absl::string_view call, DevicePtr ptr, std::size_t bytes) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddHeld(std::size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const SimDeviceOptions options_;
  const DeviceCapabilities capabilities_;

  mutable Mutex mu_;
  std::unique_ptr<SimBacking> backing_ ABSL_GUARDED_BY(mu_);
  SimStreamModel streams_ ABSL_GUARDED_BY(mu_);
  SimFaultInjector faults_ ABSL_GUARDED_BY(mu_);
  std::map<DevicePtr, Block> blocks_ ABSL_GUARDED_BY(mu_);  // Malloc'ed
  std::map<DevicePtr, Reservation> reservations_ ABSL_GUARDED_BY(mu_);
  std::map<DevicePtr, Mapping> mappings_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<ChunkHandle, Chunk> chunks_ ABSL_GUARDED_BY(mu_);
  ChunkHandle next_chunk_ ABSL_GUARDED_BY(mu_) = 1;
  std::size_t external_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration synchronize_latency_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  SimCounters counters_ ABSL_GUARDED_BY(mu_);  // the call counts and byte totals kept live
  std::vector<SimHazard> hazards_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vramcache
