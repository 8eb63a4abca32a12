// The process-wide hazard sink and the scope that collects hazards for tests.
#include "allocator/device/sim_hazards.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"

namespace vramcache {
namespace {

struct SinkSlot {
  Mutex mu;
  // A shared_ptr so that a report can call the sink without holding `mu` (a sink may be
  // replaced meanwhile, and a sink that reports or logs must not deadlock on it).
  std::shared_ptr<const SimHazardSink> sink ABSL_GUARDED_BY(mu);
};

SinkSlot& Slot() {
  static SinkSlot* const slot = new SinkSlot();  // never destroyed: reports may come at exit
  return *slot;
}

}  // namespace

absl::string_view SimHazardName(SimHazardKind kind) {
  switch (kind) {
    case SimHazardKind::kReleaseInUse:
      return "H1 release in use";
    case SimHazardKind::kUnorderedReuse:
      return "H2 unordered reuse";
    case SimHazardKind::kForbiddenDuringCapture:
      return "H3 forbidden during capture";
    case SimHazardKind::kForeignOrDeadHandle:
      return "H4 foreign or dead handle";
  }
  return "unknown hazard";
}

SimHazardSink ExchangeSimHazardSink(SimHazardSink sink) {
  std::shared_ptr<const SimHazardSink> next;
  if (sink) next = std::make_shared<const SimHazardSink>(std::move(sink));
  SinkSlot& slot = Slot();
  MutexLock lock(&slot.mu);
  std::swap(slot.sink, next);
  return next ? *next : SimHazardSink();
}

void SetSimHazardSink(SimHazardSink sink) { ExchangeSimHazardSink(std::move(sink)); }

void ReportSimHazard(const SimHazard& hazard) {
  std::shared_ptr<const SimHazardSink> sink;
  {
    SinkSlot& slot = Slot();
    MutexLock lock(&slot.mu);
    sink = slot.sink;
  }
  if (sink) {
    (*sink)(hazard);
    return;
  }
  // No sink: a hazard is a vramcache bug, and continuing would hide it.
  std::fprintf(stderr, "vramcache: simulated device %d: %s: %s\n", hazard.device,
               std::string(SimHazardName(hazard.kind)).c_str(), hazard.message.c_str());
  std::abort();
}

ScopedSimHazardCapture::ScopedSimHazardCapture() : state_(std::make_shared<State>()) {
  previous_ = ExchangeSimHazardSink([state = state_](const SimHazard& hazard) {
    MutexLock lock(&state->mu);
    state->hazards.push_back(hazard);
  });
}

ScopedSimHazardCapture::~ScopedSimHazardCapture() { ExchangeSimHazardSink(std::move(previous_)); }

std::vector<SimHazard> ScopedSimHazardCapture::hazards() const {
  MutexLock lock(&state_->mu);
  return state_->hazards;
}

std::size_t ScopedSimHazardCapture::count(SimHazardKind kind) const {
  MutexLock lock(&state_->mu);
  std::size_t n = 0;
  for (const SimHazard& hazard : state_->hazards) n += hazard.kind == kind ? 1 : 0;
  return n;
}

std::size_t ScopedSimHazardCapture::size() const {
  MutexLock lock(&state_->mu);
  return state_->hazards.size();
}

std::string ScopedSimHazardCapture::Summary() const {
  MutexLock lock(&state_->mu);
  std::string summary;
  for (const SimHazard& hazard : state_->hazards) {
    absl::StrAppend(&summary, SimHazardName(hazard.kind), ": ", hazard.message, "\n");
  }
  return summary;
}

void ScopedSimHazardCapture::Clear() {
  MutexLock lock(&state_->mu);
  state_->hazards.clear();
}

}  // namespace vramcache
