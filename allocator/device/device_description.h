// Human-readable descriptions of a device, shared by reports and tools.
#pragma once

#include <string>

#include "allocator/device/device.h"

namespace vramcache {

std::string DescribeDevice(const DeviceCapabilities& caps);

}  // namespace vramcache
