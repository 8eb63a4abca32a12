// SimDevice's hazard checks: what each work item touches, resolved to physical bytes at launch,
// is compared with the incomplete work it is not ordered after (H2) and with the memory a call
// takes away (H1); the capture rules (H3) and the handle registry (H4) are checked here too.
// Every hazard is recorded on the device and sent to the process-wide sink.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/device/sim_device.h"
#include "allocator/device/sim_handle_registry.h"

namespace vramcache {
namespace {

std::string DescribePiece(const SimPiece& piece) {
  return absl::StrFormat("[%#x, %#x) (%s %#x bytes [%#x, %#x))", piece.va,
                         piece.va + (piece.end - piece.begin),
                         piece.chunk ? "chunk" : "Malloc block", piece.id, piece.begin, piece.end);
}

std::string DescribeWork(std::uint64_t ticket, const SimWorkInfo& info) {
  return absl::StrFormat("work #%d '%s' on stream %#x", ticket, info.label, info.stream);
}

}  // namespace

void SimDevice::ReportHazard(SimHazardKind kind, std::string message) {
  SimHazard hazard{kind, options_.ordinal,
                   absl::StrCat(SimHazardName(kind), ": SimDevice ", options_.ordinal, ": ",
                                std::move(message))};
  hazards_.push_back(hazard);
  ReportSimHazard(hazard);
}

std::vector<SimHazard> SimDevice::Hazards() const {
  MutexLock lock(&mu_);
  return hazards_;
}

namespace {
thread_local Device::CaptureMode sim_thread_capture_mode = Device::CaptureMode::kGlobal;
}  // namespace

Device::CaptureMode SimDevice::ExchangeCaptureMode(CaptureMode mode) {
  const CaptureMode previous = sim_thread_capture_mode;
  sim_thread_capture_mode = mode;
  return previous;
}

absl::Status SimDevice::CheckNoCaptureNow(absl::string_view call) {
  // Every capture here is in global mode; a relaxed thread may still make the call.
  if (sim_thread_capture_mode == CaptureMode::kRelaxed) return absl::OkStatus();
  absl::Status status = streams_.CheckNoCapture(call);
  if (!status.ok() && options_.check_hazards) {
    ReportHazard(SimHazardKind::kForbiddenDuringCapture, std::string(status.message()));
  }
  return status;
}

absl::Status SimDevice::CheckCapturedEventNow(absl::string_view call, EventHandle event,
                                              std::optional<StreamHandle> waiter) {
  const std::optional<StreamHandle> captured_on = streams_.CaptureRecordOf(event);
  if (!captured_on.has_value()) return absl::OkStatus();
  // A capturing stream may wait on it: that is how a capture forks and joins streams.
  if (waiter.has_value() && streams_.IsCapturing(*waiter)) return absl::OkStatus();
  const std::string message = absl::StrFormat(
      "SimDevice::%s: event %#x was last recorded on stream %#x while it was capturing a CUDA "
      "graph; it may not be %s (cudaErrorCapturedEvent)",
      call, event, *captured_on,
      waiter.has_value()
          ? absl::StrFormat("waited on by stream %#x, which is not capturing", *waiter)
          : std::string("queried or synchronized"));
  if (options_.check_hazards) ReportHazard(SimHazardKind::kForbiddenDuringCapture, message);
  return absl::FailedPreconditionError(message);
}

void SimDevice::CheckStreamHandle(absl::string_view call, StreamHandle stream) {
  const std::optional<SimHandleOwner> owner = LookupSimStream(stream);
  if (!owner.has_value()) return;  // never created: an implicit stream of every device
  if (!owner->live) {
    ReportHazard(SimHazardKind::kForeignOrDeadHandle,
                 absl::StrFormat("SimDevice::%s names stream %#x, which was destroyed "
                                 "(DestroyStream) and has not been created again",
                                 call, stream));
  } else if (owner->ordinal != options_.ordinal) {
    ReportHazard(SimHazardKind::kForeignOrDeadHandle,
                 absl::StrFormat("SimDevice::%s names stream %#x, which belongs to the device "
                                 "with ordinal %d",
                                 call, stream, owner->ordinal));
  }
}

void SimDevice::CheckEventHandle(absl::string_view call, EventHandle event) {
  const std::optional<SimHandleOwner> owner = LookupSimEvent(event);
  if (!owner.has_value() || owner->device == &streams_) return;
  ReportHazard(SimHazardKind::kForeignOrDeadHandle,
               absl::StrFormat("SimDevice::%s names event %#x, which another SimDevice (ordinal "
                               "%d) created",
                               call, event, owner->ordinal));
}

void SimDevice::Resolve(DevicePtr ptr, std::size_t bytes, std::uint64_t owner,
                        std::vector<SimPiece>* pieces) const {
  if (auto it = blocks_.upper_bound(ptr); it != blocks_.begin()) {
    --it;
    if (ptr < it->first + it->second.bytes) {
      pieces->push_back(
          SimPiece{false, it->first, ptr - it->first, ptr - it->first + bytes, ptr, owner});
      return;
    }
  }
  const DevicePtr end = ptr + bytes;
  auto it = std::prev(mappings_.upper_bound(ptr));  // CheckAccessible found it
  for (; it != mappings_.end() && it->first < end; ++it) {
    const DevicePtr from = std::max(ptr, it->first);
    const DevicePtr to = std::min(end, it->first + it->second.bytes);
    pieces->push_back(
        SimPiece{true, it->second.chunk, from - it->first, to - it->first, from, owner});
  }
}

void SimDevice::CheckNewWork(const SimWorkInfo& info) {
  if (!streams_.HasPendingInfo()) return;
  const SimStreamModel::Frontier frontier = streams_.FrontierOf(info.stream);
  streams_.ForEachPendingInfo(
      [&](std::uint64_t identity, std::uint64_t ticket, const SimWorkInfo& old) {
        if (frontier.Precedes(identity, ticket)) return;
        for (const SimPiece& mine : info.pieces) {
          for (const SimPiece& theirs : old.pieces) {
            // One owner's work on its own bytes is its own business.
            if (mine.owner == theirs.owner || !mine.SamePhysicalBytes(theirs)) continue;
            ReportHazard(
                SimHazardKind::kUnorderedReuse,
                absl::StrFormat(
                    "new work '%s' on stream %#x for owner %d touches %s, which %s for owner %d "
                    "still touches at %s; nothing orders that work before the new one (no event "
                    "recorded after it and waited on by stream %#x, and it has not completed)",
                    info.label, info.stream, mine.owner, DescribePiece(mine),
                    DescribeWork(ticket, old), theirs.owner, DescribePiece(theirs), info.stream));
            return;  // one report per pair of work items
          }
        }
      });
}

void SimDevice::CheckRelease(const std::string& call,
                             const std::function<bool(const SimPiece&)>& touches) {
  streams_.ForEachPendingInfo([&](std::uint64_t /*identity*/, std::uint64_t ticket,
                                  const SimWorkInfo& work) {
    for (const SimPiece& piece : work.pieces) {
      if (!touches(piece)) continue;
      ReportHazard(SimHazardKind::kReleaseInUse,
                   absl::StrFormat("%s while %s for owner %d still touches %s", call,
                                   DescribeWork(ticket, work), piece.owner, DescribePiece(piece)));
      return;  // one report per work item
    }
  });
}

std::uint64_t SimDevice::SubmitChecked(StreamHandle stream, std::vector<SimAccess> accesses,
                                       absl::string_view label) {
  if (!options_.check_hazards || streams_.completion() == SimCompletion::kImmediate) {
    return streams_.SubmitWork(stream);  // immediate work is done before anything can race it
  }
  auto info = std::make_shared<SimWorkInfo>();
  info->label = std::string(label);
  info->stream = stream;
  for (const SimAccess& access : accesses) {
    if (access.bytes > 0) Resolve(access.ptr, access.bytes, access.owner, &info->pieces);
  }
  CheckNewWork(*info);
  return streams_.SubmitWork(stream, std::move(info));
}

absl::StatusOr<std::uint64_t> SimDevice::LaunchWork(StreamHandle stream,
                                                    std::vector<SimAccess> accesses,
                                                    absl::string_view label) {
  MutexLock lock(&mu_);
  streams_.Tick();  // a launch is a device call too
  for (std::size_t i = 0; i < accesses.size(); ++i) {
    if (accesses[i].bytes == 0) continue;
    if (absl::Status s = CheckAccessible("LaunchWork", accesses[i].ptr, accesses[i].bytes);
        !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrFormat("%s (access %d of %d)", s.message(), i, accesses.size()));
    }
  }
  CheckStream("LaunchWork", stream);
  return SubmitChecked(stream, std::move(accesses), label.empty() ? "LaunchWork" : label);
}

absl::StatusOr<int> SimDevice::StreamOrdinal(StreamHandle stream) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kStreamOrdinal); !s.ok()) return s;
  const std::optional<SimHandleOwner> owner = LookupSimStream(stream);
  if (!owner.has_value()) return options_.ordinal;
  if (!owner->live) {
    CheckStream("StreamOrdinal", stream);
    return absl::FailedPreconditionError(absl::StrFormat(
        "SimDevice::StreamOrdinal: stream %#x was destroyed (cudaErrorInvalidResourceHandle)",
        stream));
  }
  return owner->ordinal;
}

}  // namespace vramcache
