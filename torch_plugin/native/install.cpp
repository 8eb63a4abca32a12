// Install(): puts VramcacheAllocator where PyTorch looks for the CUDA allocator, as PyTorch's own
// changeCurrentAllocator does (torch/csrc/cuda/CUDAPluggableAllocator.cpp): the c10
// CUDACachingAllocator slot, and the kCUDA entry of c10's allocator table (what
// c10::GetAllocator / torch.accelerator use). Plus the C entry points for ctypes.
#include <c10/core/Allocator.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <exception>
#include <mutex>
#include <string>

#if __has_include(<torch/headeronly/version.h>)
#include <torch/headeronly/version.h>
#else
#include <torch/version.h>
#endif

#include "vramcache_torch.h"
#include "vramcache_torch_allocator.h"

namespace vramcache::torch {
namespace {

namespace adapter = ::vramcache::torch_adapter;

std::mutex install_mu;
std::string installed_conf;  // guarded by install_mu

}  // namespace

void Install(const std::string& conf) {
  std::lock_guard<std::mutex> lock(install_mu);
  adapter::VramcacheAllocator* instance = adapter::VramcacheAllocator::Instance();
  c10::cuda::CUDACachingAllocator::CUDAAllocator* current =
      c10::cuda::CUDACachingAllocator::allocator.load();
  if (current == instance) {
    TORCH_CHECK(conf.empty() || conf == installed_conf,
                "vramcache is already installed with "
                "conf '",
                installed_conf,
                "'; the configuration cannot change once PyTorch uses "
                "it (asked for '",
                conf, "')");
    return;
  }
  TORCH_CHECK(current == nullptr || !current->initialized(),
              "vramcache must be installed before CUDA is initialized: PyTorch's '",
              current->name(),
              "' allocator already serves CUDA memory and cannot be swapped. "
              "Install it first thing (C++: vramcache::torch::Install() at the top of main(); "
              "Python: vramcache.install() before the first CUDA call, or python -m vramcache)");
  if (!conf.empty()) instance->Configure(conf);  // raises on a bad conf; nothing installed then
  c10::cuda::CUDACachingAllocator::allocator.store(instance);
  c10::SetAllocator(c10::DeviceType::CUDA, instance);
  if (c10::GetAllocator(c10::DeviceType::CUDA) != instance) {
    // Someone registered the CUDA entry with a priority; ours must win all the same.
    c10::SetAllocator(c10::DeviceType::CUDA, instance, UINT8_MAX);
  }
  installed_conf = conf;
}

bool IsInstalled() {
  return c10::cuda::CUDACachingAllocator::allocator.load() ==
         adapter::VramcacheAllocator::Instance();
}

}  // namespace vramcache::torch

namespace {

thread_local std::string last_error;

int Fail(const char* why) {
  last_error = why;
  return -1;
}

}  // namespace

extern "C" {

int vramcache_torch_install(const char* conf) {
  try {
    vramcache::torch::Install(conf == nullptr ? "" : conf);
  } catch (const c10::Error& e) {
    return Fail(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return Fail(e.what());
  }
  last_error.clear();
  return 0;
}

int vramcache_torch_is_installed(void) {
  last_error.clear();
  return vramcache::torch::IsInstalled() ? 1 : 0;
}

const char* vramcache_torch_last_error(void) { return last_error.c_str(); }

const char* vramcache_torch_built_for(void) {
#define VRAMCACHE_TORCH_STR2(x) #x
#define VRAMCACHE_TORCH_STR(x) VRAMCACHE_TORCH_STR2(x)
  return VRAMCACHE_TORCH_STR(TORCH_VERSION_MAJOR) "." VRAMCACHE_TORCH_STR(
      TORCH_VERSION_MINOR) "." VRAMCACHE_TORCH_STR(TORCH_VERSION_PATCH);
#undef VRAMCACHE_TORCH_STR
#undef VRAMCACHE_TORCH_STR2
}

}  // extern "C"
