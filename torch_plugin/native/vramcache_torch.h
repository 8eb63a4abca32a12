// vramcache as PyTorch's CUDA allocator, natively: the LibTorch entry point, and the C entry
// points Python's vramcache.install(native=True) calls through ctypes.
//
//   #include "vramcache_torch.h"
//   int main() {
//     vramcache::torch::Install();         // before anything initializes CUDA
//     auto x = torch::ones({1024}, torch::kCUDA);  // served by vramcache
//   }
//
// The adapter implements c10::cuda::CUDACachingAllocator::CUDAAllocator (PyTorch 2.11) on top of
// vramcache's C ABI only (allocator/api/vramcache.h), so it works with any libvramcache.so of the
// same ABI. torch.cuda.memory_stats(), memory_summary(), empty_cache(), record_stream, CUDA graphs,
// cuDNN autotuning and torch.OutOfMemoryError then work through PyTorch's own names;
// docs/pytorch.md ("Native integration") lists what does not.
#pragma once

#ifdef __cplusplus
#include <string>

namespace vramcache::torch {

// Makes vramcache PyTorch's CUDA allocator (the c10 CUDACachingAllocator slot and the kCUDA
// allocator). `conf` (VRAMCACHE_CONF's syntax, e.g. "budget:20GiB") is applied first when not
// empty, overriding VRAMCACHE_CONF. Must run before CUDA is initialized: PyTorch cannot swap an
// allocator that has handed out memory. Calling it again with the same or an empty conf does
// nothing. Raises c10::Error with the reason otherwise (nothing changes then).
void Install(const std::string& conf = "");

// Whether Install() has made vramcache PyTorch's CUDA allocator in this process.
bool IsInstalled();

}  // namespace vramcache::torch

extern "C" {
#endif

#define VRAMCACHE_TORCH_EXPORT __attribute__((visibility("default")))

/* Install() for callers without C++ exceptions (Python's ctypes): `conf` may be NULL. Returns 0,
 * or -1 with the reason in vramcache_torch_last_error(). */
VRAMCACHE_TORCH_EXPORT int vramcache_torch_install(const char* conf);
/* 1 when installed, else 0. */
VRAMCACHE_TORCH_EXPORT int vramcache_torch_is_installed(void);
/* Why the last vramcache_torch_* call on this thread failed ("" when it did not). */
VRAMCACHE_TORCH_EXPORT const char* vramcache_torch_last_error(void);
/* The PyTorch version the adapter was compiled against, e.g. "2.11.0". */
VRAMCACHE_TORCH_EXPORT const char* vramcache_torch_built_for(void);

#ifdef __cplusplus
}
#endif
