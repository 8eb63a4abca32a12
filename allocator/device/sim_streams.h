// Simulated streams and events for SimDevice. Each stream runs its work in order; a work item
// (a "kernel", a fill, or the wait that StreamWaitEvent inserts) completes only when the test
// or the completion mode says so, so tests control exactly what the allocator can observe.
//
// Glossary:
//   ticket    - the number of one submitted work item, unique across all streams, never 0.
//   identity  - the internal id of one stream's lifetime. A stream handle may be destroyed and
//               handed out again; the new stream gets a new identity and is not ordered after
//               the old one's work, exactly as with reused cudaStream_t values.
//   captured  - the (identity, ticket) an event recorded: the stream's latest work at the time.
//   frontier  - per identity, the latest ticket known to happen before some new work: its own
//               stream's earlier work and, transitively, what the waits among it point at.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "allocator/device/device.h"
#include "allocator/device/sim_work.h"

namespace vramcache {

// When submitted work completes.
enum class SimCompletion {
  kImmediate,     // as soon as it is submitted: every query reports complete
  kManual,        // only when a test completes it (or a synchronize waits for it)
  kAfterQueries,  // a pending event reports complete on its n-th query (and completes its work)
  kRandom,        // each item runs a seeded random number of device calls (Tick), in order
};

struct SimStreamConfig {
  SimCompletion completion = SimCompletion::kImmediate;
  int queries_until_complete = 2;
  bool reuse_stream_handles = true;
  std::uint64_t seed = 0;        // kRandom: the durations' generator
  int max_work_duration = 8;     // kRandom: durations are uniform in [0, this] ticks
  int ordinal = 0;               // registered with created streams (sim_handle_registry.h)
  bool register_events = false;  // events too: only hazard checking needs them
};

// Not thread-safe: SimDevice calls it under its own lock. Error messages name the Device call.
class SimStreamModel {
 public:
  explicit SimStreamModel(const SimStreamConfig& config);
  // Forgets this model's streams and events in the process-wide registry.
  ~SimStreamModel();
  SimStreamModel(const SimStreamModel&) = delete;
  SimStreamModel& operator=(const SimStreamModel&) = delete;

  SimCompletion completion() const { return completion_; }

  // Simulates a kernel launch on `stream`; returns its ticket. `info` (what it touches) stays
  // with the item while it is incomplete, for hazard checks.
  std::uint64_t SubmitWork(StreamHandle stream, std::shared_ptr<const SimWorkInfo> info = nullptr);
  // kRandom: one device call's worth of time passes; items whose duration is over complete, in
  // stream order and after what they wait on. Nothing in the other modes (inline: every device
  // call ticks, and replays and benchmarks run in the other modes).
  void Tick() {
    if (completion_ == SimCompletion::kRandom) TickRandom();
  }
  // Completes `stream`'s work up to and including `ticket` (the stream runs in order), and
  // first everything that work waits on, as the GPU guarantees.
  absl::Status CompleteWork(StreamHandle stream, std::uint64_t ticket);
  void CompleteStream(StreamHandle stream);
  void CompleteAll();
  // Whether work item `ticket` (from SubmitWork, on any stream, destroyed ones too) is done.
  bool IsWorkComplete(std::uint64_t ticket) const;

  // Explicit streams. A destroyed stream's pending work stays pending under its identity.
  StreamHandle CreateStream();
  absl::Status DestroyStream(StreamHandle stream);

  void SetCapturing(StreamHandle stream, bool capturing);
  bool IsCapturing(StreamHandle stream) const { return capturing_.contains(stream); }
  bool AnyCapturing() const { return !capturing_.empty(); }
  // The error CUDA gives for a synchronizing or querying call while any stream is capturing
  // (cudaErrorStreamCaptureUnsupported in global capture mode); OK when none is.
  absl::Status CheckNoCapture(absl::string_view call) const;

  // The Device calls. Capture checks are left to the caller, which owns the call's name.
  // Whether `stream` was created by CreateStream and not destroyed since.
  bool IsLiveCreatedStream(StreamHandle stream) const { return created_handles_.contains(stream); }

  // The capturing stream an event was last recorded on, if it was recorded during a capture:
  // such an event may only be waited on by capturing streams (cudaErrorCapturedEvent).
  std::optional<StreamHandle> CaptureRecordOf(EventHandle event) const;
  // Whether any event has a capture record (CaptureRecordOf can answer other than nullopt).
  bool AnyCaptureRecords() const { return capture_records_ != 0; }

  // What happens before a new item on `stream`: call Precedes(stream identity, ticket) for an
  // incomplete item. Valid until the model changes.
  class Frontier {
   public:
    bool Precedes(std::uint64_t identity, std::uint64_t ticket) const {
      auto it = latest_.find(identity);
      return it != latest_.end() && ticket <= it->second;
    }

   private:
    friend class SimStreamModel;
    absl::flat_hash_map<std::uint64_t, std::uint64_t> latest_;
  };
  Frontier FrontierOf(StreamHandle stream) const;

  // Every incomplete item that carries an info, with its stream identity and ticket.
  void ForEachPendingInfo(const std::function<void(std::uint64_t identity, std::uint64_t ticket,
                                                   const SimWorkInfo& info)>& visit) const;
  bool HasPendingInfo() const { return pending_with_info_ > 0; }

  EventHandle CreateEvent();
  absl::Status DestroyEvent(EventHandle event);
  absl::Status RecordEvent(EventHandle event, StreamHandle stream);
  absl::StatusOr<bool> QueryEvent(EventHandle event);
  absl::Status SynchronizeEvent(EventHandle event);
  absl::Status StreamWaitEvent(StreamHandle stream, EventHandle event);
  void SynchronizeDevice() { CompleteAll(); }

  std::size_t LiveEvents() const { return events_.size(); }
  std::size_t LiveStreams() const { return created_handles_.size(); }
  // Work items submitted but not complete, on live and destroyed streams alike.
  std::size_t PendingWork() const;
  std::uint64_t SubmittedWork() const { return next_ticket_ - 1; }

 private:
  using StreamId = std::uint64_t;
  struct WorkRef {
    StreamId stream = 0;
    std::uint64_t ticket = 0;  // 0: no work, always complete
  };
  struct WorkItem {
    std::uint64_t ticket = 0;
    std::vector<WorkRef> waits_on;            // incomplete work this item may not overtake
    bool wait_only = false;                   // inserted by StreamWaitEvent; completes on its own
    std::uint64_t due = 0;                    // kRandom: the tick from which it may complete
    std::shared_ptr<const SimWorkInfo> info;  // what it touches; null when not checked
  };
  struct StreamState {
    std::deque<WorkItem> pending;  // in submission order
    std::uint64_t last_ticket = 0;
    bool retired = false;  // its handle was destroyed or handed to a new identity
  };
  struct EventState {
    WorkRef captured;
    int queries_since_record = 0;
    std::optional<StreamHandle> capture_record;  // last recorded on this capturing stream
  };

  StreamId IdentityOf(StreamHandle stream);
  std::uint64_t Submit(StreamHandle stream, std::vector<WorkRef> waits_on, bool wait_only,
                       std::shared_ptr<const SimWorkInfo> info);
  // Pops the front item of `state` (keeps pending_with_info_ right).
  void PopFront(StreamState& state);
  // Tick's work in kRandom mode.
  void TickRandom();
  bool IsComplete(const WorkRef& ref) const;
  void CompleteThrough(const WorkRef& target);
  // After any completion: waits whose work is done complete by themselves, and retired
  // identities with nothing pending are forgotten.
  void Settle();
  void RetireHandle(StreamHandle stream);
  absl::StatusOr<EventState*> FindEvent(absl::string_view call, EventHandle event);

  const SimCompletion completion_;
  const int queries_until_complete_;
  const bool reuse_stream_handles_;
  const int max_work_duration_;
  const int ordinal_;
  const bool register_events_;

  absl::flat_hash_map<StreamHandle, StreamId> identities_;
  absl::flat_hash_map<StreamId, StreamState> streams_;
  absl::flat_hash_set<StreamHandle> created_handles_;
  std::vector<StreamHandle> free_handles_;
  std::set<StreamHandle> capturing_;  // ordered so error messages are deterministic
  absl::flat_hash_map<EventHandle, EventState> events_;
  std::size_t capture_records_ = 0;  // events whose capture_record is set
  StreamId next_identity_ = 1;
  std::uint64_t next_ticket_ = 1;
  std::mt19937_64 durations_;
  std::uint64_t now_ = 0;  // kRandom: ticks so far
  std::size_t pending_with_info_ = 0;
};

}  // namespace vramcache
