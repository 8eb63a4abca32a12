// Stream-ordering hazards the simulated device detects (SimDeviceOptions::check_hazards): work
// whose memory is released or handed to someone else while it may still run, calls that a graph
// capture forbids, and handles that name a dead stream or another device's stream or event. A
// hazard is a vramcache bug, so by default it aborts the process; tests collect them instead.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "allocator/base/mutex.h"

namespace vramcache {

enum class SimHazardKind {
  kReleaseInUse,            // H1: unmap or release of memory that incomplete work touches
  kUnorderedReuse,          // H2: another owner's work on the same bytes without ordering
  kForbiddenDuringCapture,  // H3: a call that a graph capture makes illegal
  kForeignOrDeadHandle,     // H4: a destroyed stream, or another device's stream or event
};

// "H1 release in use", "H2 unordered reuse", "H3 forbidden during capture",
// "H4 foreign or dead handle".
absl::string_view SimHazardName(SimHazardKind kind);

struct SimHazard {
  SimHazardKind kind = SimHazardKind::kReleaseInUse;
  int device = 0;       // the reporting device's ordinal
  std::string message;  // names both sides: the call and the work or handle it conflicts with
};

// Called on the thread that made the hazardous call, while the device's lock is held: a sink
// must not call back into that SimDevice.
using SimHazardSink = std::function<void(const SimHazard&)>;

// Process-wide sink for every hazard any SimDevice with checking on reports. Without one
// installed, the message goes to stderr and the process aborts. nullptr restores that default.
void SetSimHazardSink(SimHazardSink sink);
// Installs `sink` (nullptr: the default) and returns the one it replaces (nullptr: the default),
// so that a scope can put it back.
SimHazardSink ExchangeSimHazardSink(SimHazardSink sink);
// Sends `hazard` to the current sink (what SimDevice calls).
void ReportSimHazard(const SimHazard& hazard);

// For tests that provoke hazards on purpose: while alive, hazards from every thread are
// collected here instead of going to the previous sink, which the destructor restores. Scopes
// nest (the innermost collects).
class ScopedSimHazardCapture {
 public:
  ScopedSimHazardCapture();
  ~ScopedSimHazardCapture();
  ScopedSimHazardCapture(const ScopedSimHazardCapture&) = delete;
  ScopedSimHazardCapture& operator=(const ScopedSimHazardCapture&) = delete;

  std::vector<SimHazard> hazards() const;
  std::size_t count(SimHazardKind kind) const;
  std::size_t size() const;
  // Every message, one per line: for failure output.
  std::string Summary() const;
  void Clear();

 private:
  // Shared with the installed sink, which may outlive nothing but must not dangle if a device
  // reports from another thread while this scope ends.
  struct State {
    mutable Mutex mu;
    std::vector<SimHazard> hazards ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<State> state_;
  SimHazardSink previous_;
};

}  // namespace vramcache
