// The stream filter a test gives BeginAllocateToPool for a CUDA graph capture, modelled on
// PyTorch's: CUDAGraph::capture_begin announces the pool before cudaStreamBeginCapture and
// capture_end ends it after cudaStreamEndCapture, and its filter takes a stream only while
// cudaStreamGetCaptureInfo says that stream is capturing this graph. A filter that takes the
// stream for the whole announcement (`s == stream`) also hands the graph's private pool to
// allocations made on that stream just before or just after the capture, outside the graph,
// including blocks the graph freed during the capture and that its replays still touch.
#pragma once

#include <functional>

#include "absl/status/statusor.h"
#include "allocator/device/device.h"

namespace vramcache {

inline std::function<bool(StreamHandle)> GraphCaptureFilter(Device* device,
                                                            StreamHandle capture_stream) {
  return [device, capture_stream](StreamHandle s) {
    if (s != capture_stream) return false;
    absl::StatusOr<bool> capturing = device->IsCapturing(s);
    return capturing.ok() && *capturing;
  };
}

}  // namespace vramcache
