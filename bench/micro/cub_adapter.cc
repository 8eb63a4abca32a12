// CubAdapter: CUB's caching allocator behind the benchmark adapter shape, with CUDA errors
// turned into statuses that name the call and the error.
#include "bench/micro/cub_adapter.h"

#include <cuda_runtime_api.h>

#include <cub/util_allocator.cuh>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "bench/micro/cuda_host_runtime.h"

namespace vramcache::bench {

namespace {

constexpr unsigned int kBinGrowth = 2;
constexpr unsigned int kMinBin = 9;   // 512 B, vramcache's smallest block too
constexpr unsigned int kMaxBin = 31;  // 2 GiB; CUB computes bin bytes in unsigned int

absl::Status FromCuda(cudaError_t error, absl::string_view call) {
  if (error == cudaSuccess) return absl::OkStatus();
  const std::string message = absl::StrFormat("%s: %s", call, cudaGetErrorString(error));
  if (error == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

cudaStream_t ToCuda(StreamHandle stream) { return reinterpret_cast<cudaStream_t>(stream); }

}  // namespace

struct CubAdapter::State {
  cub::CachingDeviceAllocator allocator{kBinGrowth, kMinBin, kMaxBin,
                                        cub::CachingDeviceAllocator::INVALID_SIZE};
  cudaEvent_t cross_stream_event = nullptr;  // orders an owning stream after a user's
};

CubAdapter::CubAdapter() : state_(std::make_unique<State>()) {}

CubAdapter::~CubAdapter() {
  if (state_->cross_stream_event != nullptr) cudaEventDestroy(state_->cross_stream_event);
}

absl::StatusOr<void*> CubAdapter::Allocate(std::size_t size, StreamHandle stream) {
  void* ptr = nullptr;
  if (absl::Status s = FromCuda(state_->allocator.DeviceAllocate(&ptr, size, ToCuda(stream)),
                                "cub::CachingDeviceAllocator::DeviceAllocate");
      !s.ok()) {
    return s;
  }
  return ptr;
}

absl::Status CubAdapter::Free(void* ptr, StreamHandle /*stream: CUB remembers it*/) {
  return FromCuda(state_->allocator.DeviceFree(ptr), "cub::CachingDeviceAllocator::DeviceFree");
}

absl::Status CubAdapter::FreeCrossStream(void* ptr, StreamHandle allocated_on,
                                         StreamHandle used_on) {
  if (used_on != allocated_on) {
    if (state_->cross_stream_event == nullptr) {
      if (absl::Status s = FromCuda(
              cudaEventCreateWithFlags(&state_->cross_stream_event, cudaEventDisableTiming),
              "cudaEventCreateWithFlags");
          !s.ok()) {
        return s;
      }
    }
    if (absl::Status s = FromCuda(cudaEventRecord(state_->cross_stream_event, ToCuda(used_on)),
                                  "cudaEventRecord");
        !s.ok()) {
      return s;
    }
    if (absl::Status s =
            FromCuda(cudaStreamWaitEvent(ToCuda(allocated_on), state_->cross_stream_event, 0),
                     "cudaStreamWaitEvent");
        !s.ok()) {
      return s;
    }
  }
  return Free(ptr, allocated_on);
}

std::size_t CubAdapter::DeviceHeldBytes() const { return HostRuntimeDevice().HeldBytes(); }

}  // namespace vramcache::bench
