// SnapshotInfo from vramcache's snapshot JSON. The JSON uses torch.cuda.memory._snapshot()'s
// field names (allocator/api/snapshot_json.cc), so this is a field-by-field copy; block states
// map back to PyTorch's two flags (allocated, active).
#include "snapshot_from_json.h"

#include <c10/util/Exception.h>

#include <string>
#include <utility>

#include "json_reader.h"

namespace vramcache::torch_adapter {
namespace {

namespace alloc = c10::cuda::CUDACachingAllocator;
using c10::CachingDeviceAllocator::BlockInfo;
using c10::CachingDeviceAllocator::SegmentInfo;
using c10::CachingDeviceAllocator::TraceEntry;

void* AsPointer(const JsonValue& value) {
  return reinterpret_cast<void*>(static_cast<std::uintptr_t>(value.as_uint()));
}

// segment_pool_id is PyTorch's [first, second] pair.
c10::MempoolId_t PoolOf(const JsonValue& segment) {
  const std::vector<JsonValue>& id = segment["segment_pool_id"].items();
  if (id.size() != 2) return {0, 0};
  return {id[0].as_uint(), id[1].as_uint()};
}

BlockInfo BlockFromJson(const JsonValue& block) {
  BlockInfo info;
  const std::string& state = block["state"].as_string();
  info.size = block["size"].as_uint();
  info.requested_size = block["requested_size"].as_uint();
  info.allocated = state == "active_allocated";
  // Freed but still in use by another stream (record_stream) counts as active, as in PyTorch.
  info.active = info.allocated || state == "active_pending_free";
  return info;
}

SegmentInfo SegmentFromJson(const JsonValue& segment) {
  SegmentInfo info;
  info.device = static_cast<c10::DeviceIndex>(segment["device"].as_int());
  info.address = segment["address"].as_uint();
  info.total_size = segment["total_size"].as_uint();
  info.requested_size = segment["requested_size"].as_uint();
  info.allocated_size = segment["allocated_size"].as_uint();
  info.active_size = segment["active_size"].as_uint();
  info.stream = AsPointer(segment["stream"]);
  info.is_large = segment["segment_type"].as_string() == "large";
  info.is_expandable = segment["is_expandable"].as_bool();
  info.owner_private_pool_id = PoolOf(segment);
  for (const JsonValue& block : segment["blocks"].items()) {
    info.blocks.push_back(BlockFromJson(block));
  }
  return info;
}

bool ActionFromName(const std::string& name, TraceEntry::Action* action) {
  static const std::pair<const char*, TraceEntry::Action> kActions[] = {
      {"alloc", TraceEntry::ALLOC},
      {"free_requested", TraceEntry::FREE_REQUESTED},
      {"free_completed", TraceEntry::FREE_COMPLETED},
      {"segment_alloc", TraceEntry::SEGMENT_ALLOC},
      {"segment_free", TraceEntry::SEGMENT_FREE},
      {"segment_map", TraceEntry::SEGMENT_MAP},
      {"segment_unmap", TraceEntry::SEGMENT_UNMAP},
      {"snapshot", TraceEntry::SNAPSHOT},
      {"oom", TraceEntry::OOM},
  };
  for (const auto& [spelled, value] : kActions) {
    if (name == spelled) {
      *action = value;
      return true;
    }
  }
  return false;
}

std::vector<TraceEntry> TraceFromJson(c10::DeviceIndex device, const JsonValue& trace) {
  std::vector<TraceEntry> entries;
  entries.reserve(trace.items().size());
  for (const JsonValue& entry : trace.items()) {
    TraceEntry::Action action{};
    const std::string& name = entry["action"].as_string();
    TORCH_CHECK(ActionFromName(name, &action), "vramcache: the snapshot's trace has action '", name,
                "', which PyTorch does not know; the library is newer than this adapter");
    TraceEntry converted(action, device, entry["addr"].as_uint(), entry["size"].as_uint(),
                         AsPointer(entry["stream"]), /*mempool=*/{0, 0}, /*time=*/0);
    // PyTorch's snapshot() hands traces out with the time already in microseconds (time_.t_).
    converted.time_.t_ = static_cast<time_t>(entry["time_us"].as_int());
    entries.push_back(std::move(converted));
  }
  return entries;
}

}  // namespace

alloc::SnapshotInfo SnapshotFromJson(std::string_view json, c10::MempoolId_t pool,
                                     bool include_traces) {
  JsonValue document;
  std::string error;
  TORCH_CHECK(ParseJson(json, &document, &error),
              "vramcache: cannot read the snapshot the library returned: ", error);
  TORCH_CHECK(document.is_object() && document["segments"].is_array(),
              "vramcache: the library's snapshot has no \"segments\" array");

  alloc::SnapshotInfo snapshot{};
  const bool every_pool = pool.first == 0 && pool.second == 0;
  for (const JsonValue& segment : document["segments"].items()) {
    if (!every_pool && PoolOf(segment) != pool) continue;
    snapshot.segments.push_back(SegmentFromJson(segment));
  }
  if (include_traces) {
    // One trace per device, in device order (the library serves devices 0..n-1).
    const std::vector<JsonValue>& traces = document["device_traces"].items();
    for (std::size_t device = 0; device < traces.size(); ++device) {
      snapshot.device_traces.push_back(
          TraceFromJson(static_cast<c10::DeviceIndex>(device), traces[device]));
    }
  }
  return snapshot;
}

}  // namespace vramcache::torch_adapter
