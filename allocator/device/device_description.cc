// Human-readable descriptions of a device, shared by reports and tools.
#include "allocator/device/device_description.h"

#include "absl/strings/str_format.h"

namespace vramcache {

std::string DescribeDevice(const DeviceCapabilities& caps) {
  return absl::StrFormat("device %d (%s): %.2f GiB, granularity %d KiB, virtual memory %s",
                         caps.ordinal, caps.name, caps.total_bytes / 1073741824.0,
                         caps.granularity / 1024, caps.vmm_supported ? "supported" : "unsupported");
}

}  // namespace vramcache
