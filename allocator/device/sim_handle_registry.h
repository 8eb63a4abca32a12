// Process-wide bookkeeping of the stream and event handles SimDevices create. Handles are unique
// across every SimDevice in the process, so a handle used on the wrong device, or a stream used
// after its destruction, can be recognized (hazard H4) instead of silently naming an unrelated
// stream. Handles no SimDevice created (the small values tests use as implicit streams, 0
// included) are in no registry and belong to every device.
#pragma once

#include <cstdint>
#include <optional>

#include "allocator/device/device.h"

namespace vramcache {

// A fresh stream handle value, never handed out before in this process.
StreamHandle NextSimStreamHandle();
// A fresh event handle value, never handed out before in this process.
EventHandle NextSimEventHandle();

struct SimHandleOwner {
  const void* device = nullptr;  // the SimStreamModel that created it
  int ordinal = 0;
  bool live = true;  // streams: false once destroyed and until handed out again
};

// Streams: registered at creation (again when a destroyed handle is handed out again), marked
// dead at destruction, forgotten when their device goes away.
void RegisterSimStream(StreamHandle stream, const void* device, int ordinal);
void MarkSimStreamDestroyed(StreamHandle stream);
void ForgetSimStream(StreamHandle stream);
std::optional<SimHandleOwner> LookupSimStream(StreamHandle stream);

// Events: registered at creation, forgotten at destruction.
void RegisterSimEvent(EventHandle event, const void* device, int ordinal);
void ForgetSimEvent(EventHandle event);
std::optional<SimHandleOwner> LookupSimEvent(EventHandle event);

}  // namespace vramcache
