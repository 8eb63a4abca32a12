// SimDevice: validation and bookkeeping of the memory and virtual-memory calls under CUDA's rules,
// plus Fill and host copies. The bytes themselves live in a SimBacking.
#include "allocator/device/sim_device.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vramcache {

namespace {

// cudaMalloc gives large allocations 2 MiB alignment; matching it costs nothing here.
constexpr std::size_t kMallocAlignment = std::size_t{2} << 20;
// Far more than any GPU's physical memory, far less than the host's address space.
constexpr std::size_t kMaxReservationBytes = std::size_t{1} << 46;
constexpr std::size_t kMinGranularity = 4096;

absl::Status InCall(absl::string_view call, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat("SimDevice::", call, ": ", status.message()));
}

bool Overflows(DevicePtr ptr, std::size_t bytes) { return ptr + bytes < ptr; }

DeviceCapabilities CapabilitiesOf(const SimDeviceOptions& options) {
  DeviceCapabilities caps;
  caps.ordinal = options.ordinal;
  caps.name = options.name;
  caps.total_bytes = options.capacity;
  caps.granularity = options.granularity;
  caps.vmm_supported = options.vmm_supported;
  return caps;
}

// Writes the 4-byte pattern repeatedly from `destination`, whatever its alignment and length.
void WritePattern(DevicePtr destination, std::size_t bytes, std::uint32_t pattern) {
  std::array<unsigned char, 4096> tile;  // a multiple of 4, so every copy starts in phase
  unsigned char word[sizeof(pattern)];
  std::memcpy(word, &pattern, sizeof(pattern));
  for (std::size_t i = 0; i < tile.size(); ++i) tile[i] = word[i % sizeof(pattern)];
  auto* out = reinterpret_cast<unsigned char*>(destination);
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t n = std::min(tile.size(), bytes - done);
    std::memcpy(out + done, tile.data(), n);
    done += n;
  }
}

}  // namespace

absl::Status SimDeviceOptions::Validate() const {
  if (capacity == 0) return absl::InvalidArgumentError("SimDeviceOptions: capacity is 0");
  if (granularity < kMinGranularity || (granularity & (granularity - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDeviceOptions: granularity %d is not a power of two of at least %d bytes", granularity,
        kMinGranularity));
  }
  if (queries_until_complete < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("SimDeviceOptions: queries_until_complete is %d; it must be at least 1",
                        queries_until_complete));
  }
  if (ordinal < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("SimDeviceOptions: ordinal %d is negative", ordinal));
  }
  if (max_work_duration < 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDeviceOptions: max_work_duration is %d; it must not be negative", max_work_duration));
  }
  switch (completion) {
    case SimCompletion::kImmediate:
    case SimCompletion::kManual:
    case SimCompletion::kAfterQueries:
    case SimCompletion::kRandom:
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("SimDeviceOptions: unknown completion mode");
}

SimDevice::SimDevice(const SimDeviceOptions& options)
    : options_(options),
      capabilities_(CapabilitiesOf(options)),
      backing_(options.accounting_only ? MakeAccountingBacking()
                                       : MakeHostMemoryBacking(options.capacity)),
      streams_(SimStreamConfig{options.completion, options.queries_until_complete,
                               options.reuse_stream_handles, options.seed,
                               options.max_work_duration, options.ordinal,
                               /*register_events=*/options.check_hazards}) {
  if (absl::Status valid = options.Validate(); !valid.ok()) {
    // A programming error in a test or tool; users' options go through Create().
    std::fprintf(stderr, "vramcache: invalid SimDeviceOptions: %s\n", valid.ToString().c_str());
    std::abort();
  }
}

absl::StatusOr<std::unique_ptr<SimDevice>> SimDevice::Create(const SimDeviceOptions& options) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  return std::make_unique<SimDevice>(options);
}

SimDevice::~SimDevice() {
  MutexLock lock(&mu_);
  // Give the host back whatever the user of the device leaked; mappings go with their ranges.
  for (const auto& [base, reservation] : reservations_) {
    backing_->ReleaseRange(base, reservation.bytes).IgnoreError();
  }
  for (const auto& [base, block] : blocks_) backing_->FreeBlock(base, block.bytes).IgnoreError();
}

absl::Status SimDevice::Enter(SimOp op) {
  const auto index = static_cast<std::size_t>(op);
  ++counters_.calls[index];
  streams_.Tick();
  absl::Status injected = faults_.OnCall(op);
  if (!injected.ok()) ++counters_.injected_failures[index];
  return injected;
}

absl::Status SimDevice::CheckCapacity(absl::string_view call, std::size_t bytes) const {
  const std::size_t used = counters_.held_bytes + external_bytes_;
  const std::size_t free = used >= options_.capacity ? 0 : options_.capacity - used;
  if (bytes <= free) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrFormat(
      "SimDevice::%s: out of memory (cudaErrorMemoryAllocation): requested %d bytes; device "
      "capacity %d bytes, %d held by this process, %d by other processes, %d free",
      call, bytes, options_.capacity, counters_.held_bytes, external_bytes_, free));
}

absl::Status SimDevice::CheckVmm(absl::string_view call) const {
  if (options_.vmm_supported) return absl::OkStatus();
  return absl::UnimplementedError(
      absl::StrFormat("SimDevice::%s: this device does not support virtual memory management "
                      "(SimDeviceOptions::vmm_supported is false)",
                      call));
}

absl::Status SimDevice::CheckGranular(absl::string_view call, absl::string_view what,
                                      std::size_t value) const {
  if (value != 0 && value % options_.granularity == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrFormat("SimDevice::%s: %s %#x is not a non-zero multiple of the granularity "
                      "(%d bytes)",
                      call, what, value, options_.granularity));
}

absl::Status SimDevice::CheckCoveredByMappings(absl::string_view call, DevicePtr va,
                                               std::size_t bytes, bool whole_mappings) const {
  const DevicePtr end = va + bytes;
  auto it = mappings_.upper_bound(va);
  if (it == mappings_.begin() || std::prev(it)->first + std::prev(it)->second.bytes <= va) {
    return absl::InvalidArgumentError(
        absl::StrFormat("SimDevice::%s: nothing is mapped at %#x", call, va));
  }
  --it;
  if (whole_mappings && it->first != va) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::%s: %#x is inside the mapping at %#x (%d bytes); chunks are unmapped whole, "
        "never a sub-range",
        call, va, it->first, it->second.bytes));
  }
  DevicePtr covered = it->first + it->second.bytes;
  for (++it; covered < end; ++it) {
    if (it == mappings_.end() || it->first != covered) {
      return absl::InvalidArgumentError(
          absl::StrFormat("SimDevice::%s: [%#x, %#x) is not all mapped: nothing is mapped at %#x",
                          call, va, end, covered));
    }
    covered = it->first + it->second.bytes;
  }
  if (whole_mappings && covered != end) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::%s: [%#x, %#x) ends inside the mapping that ends at %#x; chunks are "
        "unmapped whole, never a sub-range",
        call, va, end, covered));
  }
  return absl::OkStatus();
}

absl::Status SimDevice::CheckAccessible(absl::string_view call, DevicePtr ptr,
                                        std::size_t bytes) const {
  if (Overflows(ptr, bytes)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::%s: %#x + %d bytes wraps around the address space", call, ptr, bytes));
  }
  if (auto it = blocks_.upper_bound(ptr); it != blocks_.begin()) {
    --it;
    if (ptr < it->first + it->second.bytes) {
      if (ptr + bytes <= it->first + it->second.bytes) return absl::OkStatus();
      return absl::InvalidArgumentError(absl::StrFormat(
          "SimDevice::%s: [%#x, %#x) runs past the end of the Malloc'ed block at %#x (%d bytes)",
          call, ptr, ptr + bytes, it->first, it->second.bytes));
    }
  }
  absl::Status mapped = CheckCoveredByMappings(call, ptr, bytes, /*whole_mappings=*/false);
  if (mapped.ok()) return mapped;
  return absl::InvalidArgumentError(absl::StrCat(
      mapped.message(), absl::StrFormat(" (and %#x is not inside a Malloc'ed block)", ptr)));
}

void SimDevice::AddHeld(std::size_t bytes) {
  counters_.held_bytes += bytes;
  counters_.peak_held_bytes = std::max(counters_.peak_held_bytes, counters_.held_bytes);
}

absl::StatusOr<DeviceMemInfo> SimDevice::MemInfo() {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kMemInfo); !s.ok()) return s;
  const std::size_t used = counters_.held_bytes + external_bytes_;
  DeviceMemInfo info;
  info.total_bytes = options_.capacity;
  info.free_bytes = used >= options_.capacity ? 0 : options_.capacity - used;
  return info;
}

absl::StatusOr<DevicePtr> SimDevice::Malloc(std::size_t bytes) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kMalloc); !s.ok()) return s;
  // Legal during a capture, unlike Free: CudaDevice::Malloc switches its thread to relaxed
  // capture mode around cudaMalloc (as PyTorch does), so a graph's private pool can grow.
  if (bytes == 0) {
    return absl::InvalidArgumentError(
        "SimDevice::Malloc: 0 bytes requested (the allocator should never ask for nothing)");
  }
  if (absl::Status s = CheckCapacity("Malloc", bytes); !s.ok()) return s;
  absl::StatusOr<DevicePtr> ptr = backing_->AllocateBlock(bytes, kMallocAlignment);
  if (!ptr.ok()) return InCall("Malloc", ptr.status());
  blocks_.emplace(*ptr, Block{bytes});
  counters_.malloc_bytes += bytes;
  AddHeld(bytes);
  return *ptr;
}

absl::Status SimDevice::Free(DevicePtr ptr) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kFree); !s.ok()) return s;
  // cudaFree synchronizes the device, which global capture mode forbids.
  if (absl::Status s = CheckNoCapture("Free"); !s.ok()) return s;
  if (ptr == 0) return absl::OkStatus();  // cudaFree(nullptr)
  auto it = blocks_.find(ptr);
  if (it == blocks_.end()) {
    std::string inside;
    if (auto next = blocks_.upper_bound(ptr); next != blocks_.begin()) {
      auto prev = std::prev(next);
      if (ptr < prev->first + prev->second.bytes) {
        inside = absl::StrFormat(" (it lies inside the block at %#x)", prev->first);
      }
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::Free: %#x is not the start of a live Malloc allocation%s", ptr, inside));
  }
  // Like cudaFree: all work on the device completes first, so no kernel can still use the block.
  streams_.CompleteAll();
  if (absl::Status s = backing_->FreeBlock(ptr, it->second.bytes); !s.ok()) {
    return InCall("Free", s);
  }
  counters_.malloc_bytes -= it->second.bytes;
  counters_.held_bytes -= it->second.bytes;
  blocks_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<DevicePtr> SimDevice::ReserveAddress(std::size_t bytes) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kReserveAddress); !s.ok()) return s;
  if (absl::Status s = CheckVmm("ReserveAddress"); !s.ok()) return s;
  if (absl::Status s = CheckGranular("ReserveAddress", "size", bytes); !s.ok()) return s;
  if (bytes > kMaxReservationBytes) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "SimDevice::ReserveAddress: %d bytes exceed the largest reservation the simulated device "
        "allows (%d bytes)",
        bytes, kMaxReservationBytes));
  }
  absl::StatusOr<DevicePtr> base = backing_->ReserveRange(bytes, options_.granularity);
  if (!base.ok()) return InCall("ReserveAddress", base.status());
  reservations_.emplace(*base, Reservation{bytes, 0});
  counters_.reserved_bytes += bytes;
  return *base;
}

absl::Status SimDevice::ReleaseAddress(DevicePtr base, std::size_t bytes) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kReleaseAddress); !s.ok()) return s;
  if (absl::Status s = CheckVmm("ReleaseAddress"); !s.ok()) return s;
  auto it = reservations_.find(base);
  if (it == reservations_.end()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::ReleaseAddress: %#x is not the start of a live reservation", base));
  }
  if (it->second.bytes != bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::ReleaseAddress: the reservation at %#x has %d bytes, not %d; a reservation "
        "is released whole",
        base, it->second.bytes, bytes));
  }
  if (it->second.mappings > 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "SimDevice::ReleaseAddress: the reservation at %#x still has %d chunk(s) mapped; unmap "
        "them first",
        base, it->second.mappings));
  }
  if (options_.check_hazards) {
    CheckRelease(absl::StrFormat("ReleaseAddress(%#x, %d bytes)", base, bytes),
                 [&](const SimPiece& p) { return p.chunk && p.TouchesAddresses(base, bytes); });
  }
  if (absl::Status s = backing_->ReleaseRange(base, bytes); !s.ok()) {
    return InCall("ReleaseAddress", s);
  }
  counters_.reserved_bytes -= bytes;
  reservations_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<ChunkHandle> SimDevice::CreateChunk(std::size_t bytes) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kCreateChunk); !s.ok()) return s;
  if (absl::Status s = CheckVmm("CreateChunk"); !s.ok()) return s;
  if (absl::Status s = CheckGranular("CreateChunk", "size", bytes); !s.ok()) return s;
  if (absl::Status s = CheckCapacity("CreateChunk", bytes); !s.ok()) return s;
  absl::StatusOr<std::uint64_t> location = backing_->CreateStorage(bytes);
  if (!location.ok()) return InCall("CreateChunk", location.status());
  const ChunkHandle handle = next_chunk_++;
  chunks_.emplace(handle, Chunk{bytes, *location, false, 0});
  counters_.chunk_bytes += bytes;
  AddHeld(bytes);
  return handle;
}

absl::Status SimDevice::ReleaseChunk(ChunkHandle chunk) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kReleaseChunk); !s.ok()) return s;
  if (absl::Status s = CheckVmm("ReleaseChunk"); !s.ok()) return s;
  auto it = chunks_.find(chunk);
  if (it == chunks_.end()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::ReleaseChunk: unknown chunk %d (never created or already released)", chunk));
  }
  if (it->second.mappings > 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "SimDevice::ReleaseChunk: chunk %d is still mapped (%d mapping(s), the latest at %#x); "
        "unmap it first",
        chunk, it->second.mappings, it->second.mapped_at));
  }
  if (options_.check_hazards) {
    CheckRelease(absl::StrFormat("ReleaseChunk(chunk %d)", chunk),
                 [&](const SimPiece& p) { return p.chunk && p.id == chunk; });
  }
  if (absl::Status s = backing_->ReleaseStorage(it->second.location, it->second.bytes); !s.ok()) {
    return InCall("ReleaseChunk", s);
  }
  counters_.chunk_bytes -= it->second.bytes;
  counters_.held_bytes -= it->second.bytes;
  chunks_.erase(it);
  return absl::OkStatus();
}

absl::Status SimDevice::Map(DevicePtr va, std::size_t bytes, ChunkHandle chunk) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kMap); !s.ok()) return s;
  if (absl::Status s = CheckVmm("Map"); !s.ok()) return s;
  if (absl::Status s = CheckGranular("Map", "address", va); !s.ok()) return s;
  if (absl::Status s = CheckGranular("Map", "size", bytes); !s.ok()) return s;
  auto chunk_it = chunks_.find(chunk);
  if (chunk_it == chunks_.end()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::Map: unknown chunk %d (never created or already released)", chunk));
  }
  Chunk& target = chunk_it->second;
  if (bytes != target.bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::Map: %d bytes asked but chunk %d has %d; a chunk is mapped whole", bytes, chunk,
        target.bytes));
  }
  auto res = reservations_.upper_bound(va);
  if (Overflows(va, bytes) || res == reservations_.begin() ||
      va + bytes > std::prev(res)->first + std::prev(res)->second.bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::Map: [%#x, %#x) is not inside one reserved address range", va, va + bytes));
  }
  --res;
  if (auto after = mappings_.lower_bound(va + bytes); after != mappings_.begin()) {
    const auto& [other_va, other] = *std::prev(after);
    if (other_va + other.bytes > va) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "SimDevice::Map: [%#x, %#x) overlaps the mapping of chunk %d at %#x (%d bytes); a "
          "range is mapped at most once",
          va, va + bytes, other.chunk, other_va, other.bytes));
    }
  }
  if (absl::Status s = backing_->MapStorage(va, bytes, target.location); !s.ok()) {
    return InCall("Map", s);
  }
  ++target.mappings;
  target.mapped_at = va;
  ++res->second.mappings;
  mappings_.emplace(va, Mapping{bytes, chunk, res->first});
  counters_.mapped_bytes += bytes;
  return absl::OkStatus();
}

absl::Status SimDevice::Unmap(DevicePtr va, std::size_t bytes) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kUnmap); !s.ok()) return s;
  if (absl::Status s = CheckVmm("Unmap"); !s.ok()) return s;
  if (absl::Status s = CheckGranular("Unmap", "address", va); !s.ok()) return s;
  if (absl::Status s = CheckGranular("Unmap", "size", bytes); !s.ok()) return s;
  if (Overflows(va, bytes)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::Unmap: %#x + %d bytes wraps around the address space", va, bytes));
  }
  if (absl::Status s = CheckCoveredByMappings("Unmap", va, bytes, /*whole_mappings=*/true);
      !s.ok()) {
    return s;
  }
  if (options_.check_hazards) {
    CheckRelease(absl::StrFormat("Unmap(%#x, %d bytes)", va, bytes),
                 [&](const SimPiece& p) { return p.chunk && p.TouchesAddresses(va, bytes); });
  }
  if (absl::Status s = backing_->UnmapRange(va, bytes); !s.ok()) return InCall("Unmap", s);
  auto first = mappings_.find(va);
  auto last = mappings_.lower_bound(va + bytes);
  for (auto it = first; it != last; ++it) {
    Chunk& chunk = chunks_.at(it->second.chunk);
    --chunk.mappings;
    --reservations_.at(it->second.reservation).mappings;
    counters_.mapped_bytes -= it->second.bytes;
  }
  mappings_.erase(first, last);
  return absl::OkStatus();
}

absl::Status SimDevice::GrantPeerAccess(DevicePtr va, std::size_t bytes, int peer_ordinal) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kGrantPeerAccess); !s.ok()) return s;
  if (absl::Status s = CheckVmm("GrantPeerAccess"); !s.ok()) return s;
  if (peer_ordinal < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("SimDevice::GrantPeerAccess: peer ordinal %d is negative", peer_ordinal));
  }
  if (absl::Status s = CheckGranular("GrantPeerAccess", "address", va); !s.ok()) return s;
  if (absl::Status s = CheckGranular("GrantPeerAccess", "size", bytes); !s.ok()) return s;
  if (Overflows(va, bytes)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "SimDevice::GrantPeerAccess: %#x + %d bytes wraps around the address space", va, bytes));
  }
  // One host has no peers to grant anything to: only the range is checked, as CUDA would.
  return CheckCoveredByMappings("GrantPeerAccess", va, bytes, /*whole_mappings=*/false);
}
absl::Status SimDevice::Fill(const FillRequest& request, StreamHandle stream) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kFill); !s.ok()) return s;
  if (request.bytes == 0) return absl::OkStatus();  // like a zero-length cudaMemsetAsync
  if (absl::Status s = CheckAccessible("Fill", request.ptr, request.bytes); !s.ok()) return s;
  CheckStream("Fill", stream);
  if (backing_->has_memory()) WritePattern(request.ptr, request.bytes, request.pattern);
  SubmitChecked(stream, {SimAccess{request.ptr, request.bytes, /*owner=*/0}},
                absl::StrFormat("Fill %#x", request.pattern));
  counters_.filled_bytes += request.bytes;
  return absl::OkStatus();
}

absl::Status SimDevice::CopyToHost(DevicePtr source, void* destination, std::size_t bytes) {
  MutexLock lock(&mu_);
  if (!backing_->has_memory()) {
    return absl::FailedPreconditionError(
        "SimDevice::CopyToHost: the device is accounting-only; its addresses have no memory");
  }
  if (bytes == 0) return absl::OkStatus();
  if (absl::Status s = CheckAccessible("CopyToHost", source, bytes); !s.ok()) return s;
  std::memcpy(destination, reinterpret_cast<const void*>(source), bytes);
  return absl::OkStatus();
}

absl::Status SimDevice::CopyFromHost(DevicePtr destination, const void* source, std::size_t bytes) {
  MutexLock lock(&mu_);
  if (!backing_->has_memory()) {
    return absl::FailedPreconditionError(
        "SimDevice::CopyFromHost: the device is accounting-only; its addresses have no memory");
  }
  if (bytes == 0) return absl::OkStatus();
  if (absl::Status s = CheckAccessible("CopyFromHost", destination, bytes); !s.ok()) return s;
  std::memcpy(reinterpret_cast<void*>(destination), source, bytes);
  return absl::OkStatus();
}

}  // namespace vramcache
