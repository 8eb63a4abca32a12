// The PyTorch release the adapter is being compiled against, for the few places where
// PyTorch's CUDAAllocator interface differs between the supported releases (the range itself
// is defined in vramcache/_torch_versions.py). One source serves every release.
#pragma once

#include <torch/headeronly/version.h>

#define VRAMCACHE_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||            \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))
