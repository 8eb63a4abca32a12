// CudaDevice::VerifyPatterns: the canary verify kernel (kernels/canary.h) behind the Device
// contract. One launch for all checks, then a synchronizing copy of the answers (a debug path).
#include <cuda_runtime_api.h>

#include <limits>

#include "absl/strings/str_format.h"
#include "allocator/device/cuda_device.h"
#include "allocator/device/cuda_device_scope.h"
#include "allocator/device/cuda_status.h"
#include "kernels/canary.h"
#include "kernels/fill.h"

namespace vramcache {

absl::StatusOr<std::vector<std::optional<PatternMismatch>>> CudaDevice::VerifyPatterns(
    const std::vector<PatternCheck>& checks, StreamHandle stream) {
  std::vector<kernels::PatternRange> ranges(checks.size());
  for (std::size_t i = 0; i < checks.size(); ++i) {
    ranges[i] = {reinterpret_cast<const void*>(checks[i].ptr), checks[i].bytes, checks[i].pattern};
  }
  std::vector<kernels::PatternRangeResult> results(checks.size());
  CudaDeviceScope scope(capabilities_.ordinal);
  if (!scope.status().ok()) return scope.status();
  std::size_t bad_range = std::numeric_limits<std::size_t>::max();
  const int error =
      kernels::VerifyPatterns32(ranges.data(), ranges.size(), results.data(), stream, &bad_range);
  if (error == cudaErrorInvalidValue && bad_range < checks.size()) {
    const PatternCheck& bad = checks[bad_range];
    return absl::InvalidArgumentError(absl::StrFormat(
        "VerifyPatterns: [%#x, +%d bytes) is not device memory of this process (check %d of %d)",
        bad.ptr, bad.bytes, bad_range, checks.size()));
  }
  if (absl::Status status = CudaRuntimeStatus(
          static_cast<cudaError_t>(error),
          absl::StrFormat("verify kernel (%d ranges, stream %#x)", checks.size(), stream));
      !status.ok()) {
    return status;
  }
  std::vector<std::optional<PatternMismatch>> mismatches(checks.size());
  for (std::size_t i = 0; i < checks.size(); ++i) {
    if (results[i].intact) continue;
    mismatches[i] =
        PatternMismatch{results[i].first_offset, results[i].found,
                        kernels::FillPatternByte(checks[i].pattern, results[i].first_offset),
                        results[i].differing_bytes};
  }
  return mismatches;
}

}  // namespace vramcache
