// What a work item on the simulated device touches, for hazard checking. Tests describe a
// kernel's accesses by address (SimAccess); the device resolves each to the physical bytes
// behind it at launch time (SimPiece), so that aliases (one chunk mapped at several addresses)
// and stitches are seen for what they are, and keeps the address too, for unmap checks and
// messages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "allocator/device/device.h"

namespace vramcache {

// One range a simulated kernel reads or writes. `owner` is the test's id of the allocation it
// belongs to: work of one owner is the user's own business, two owners on the same bytes need
// ordering. Fills the allocator issues touch their range with owner 0.
struct SimAccess {
  DevicePtr ptr = 0;
  std::size_t bytes = 0;
  std::uint64_t owner = 0;
};

// A piece of an access within one physical allocation: a chunk (by handle) or a Malloc'ed block
// (by base address), bytes [begin, end) of it, seen at address `va`.
struct SimPiece {
  bool chunk = false;  // true: `id` is a ChunkHandle; false: the Malloc'ed block's base
  std::uint64_t id = 0;
  std::size_t begin = 0;
  std::size_t end = 0;
  DevicePtr va = 0;
  std::uint64_t owner = 0;

  bool SamePhysicalBytes(const SimPiece& other) const {
    return chunk == other.chunk && id == other.id && begin < other.end && other.begin < end;
  }
  bool TouchesAddresses(DevicePtr start, std::size_t bytes) const {
    return va < start + bytes && start < va + (end - begin);
  }
};

// What one submitted item does, kept on the item while it is incomplete.
struct SimWorkInfo {
  std::string label;  // "Fill" for fills, the caller's label for LaunchWork
  StreamHandle stream = 0;
  std::vector<SimPiece> pieces;
};

}  // namespace vramcache
