// Serializes segments, blocks and history entries with PyTorch's snapshot field names.
#include "allocator/api/snapshot_json.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace vramcache {
namespace {

const char* BlockStateName(BlockState state) {
  switch (state) {
    case BlockState::kAllocated:
      return "active_allocated";
    case BlockState::kPendingFree:
      return "active_pending_free";
    case BlockState::kFree:
    case BlockState::kCached:
    case BlockState::kParked:
      return "inactive";
  }
  return "inactive";
}

std::string SegmentJson(int device, const SegmentInfo& segment) {
  std::size_t allocated = 0, active = 0, requested = 0;
  std::vector<std::string> blocks;
  for (const BlockInfo& b : segment.blocks) {
    if (b.state == BlockState::kAllocated) {
      allocated += b.size;
      requested += b.requested;
    }
    if (b.state == BlockState::kAllocated || b.state == BlockState::kPendingFree) {
      active += b.size;
    }
    blocks.push_back(absl::StrFormat(
        "{\"address\":%d,\"size\":%d,\"requested_size\":%d,\"state\":\"%s\",\"frames\":[]}", b.addr,
        b.size, b.state == BlockState::kAllocated ? b.requested : 0, BlockStateName(b.state)));
  }
  return absl::StrFormat(
      "{\"device\":%d,\"address\":%d,\"total_size\":%d,\"allocated_size\":%d,"
      "\"active_size\":%d,\"requested_size\":%d,\"stream\":%d,\"segment_type\":\"%s\","
      "\"segment_pool_id\":[0,0],\"is_expandable\":false,\"frames\":[],\"blocks\":[%s]}",
      device, segment.base, segment.size, allocated, active, requested, segment.stream,
      segment.small ? "small" : "large", absl::StrJoin(blocks, ","));
}

std::string TraceJson(const std::vector<TraceEntry>& history) {
  std::vector<std::string> entries;
  entries.reserve(history.size());
  for (const TraceEntry& e : history) {
    entries.push_back(absl::StrFormat(
        "{\"action\":\"%s\",\"addr\":%d,\"size\":%d,\"stream\":%d,\"time_us\":%d,\"frames\":[]}",
        TraceActionName(e.action), e.addr, e.size, e.stream, e.time_ns / 1000));
  }
  return absl::StrCat("[", absl::StrJoin(entries, ","), "]");
}

}  // namespace

std::string SnapshotJson(const std::vector<CachingAllocator*>& allocators) {
  std::vector<std::string> segments;
  std::vector<std::string> traces;
  for (CachingAllocator* allocator : allocators) {
    const int device = allocator->device()->Capabilities().ordinal;
    for (const SegmentInfo& segment : allocator->Snapshot()) {
      segments.push_back(SegmentJson(device, segment));
    }
    traces.push_back(TraceJson(allocator->History()));
  }
  return absl::StrCat("{\"segments\":[", absl::StrJoin(segments, ","), "],\"device_traces\":[",
                      absl::StrJoin(traces, ","), "]}");
}

}  // namespace vramcache
