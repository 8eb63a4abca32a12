// Host API of the spin kernel the GPU hazard scenarios use: a kernel that stays running, on the
// stream it was launched on, until the host releases it (a flag in host-mapped memory) or a
// cycle limit passes, and only then writes its buffer. A late write is what makes an unsafe
// reuse or unmap visible: it lands after whatever the block's next owner wrote, or faults on an
// address that was unmapped under it. No CUDA types, as in kernels/fill.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vramcache::gpu_scenarios {

// Enqueues on `stream` a kernel that spins until *release_flag (device view of host-mapped
// memory) is non-zero or `max_cycles` clock64() cycles have passed, then writes `pattern` as
// 32-bit words over [dst, dst + bytes). dst must be 4-byte aligned and bytes a multiple of 4.
// Returns 0 (cudaSuccess) once enqueued, else the cudaError_t of the failure.
int LaunchSpinThenFill(void* dst, std::size_t bytes, std::uint32_t pattern,
                       const std::uint32_t* release_flag, std::uint64_t max_cycles,
                       std::uintptr_t stream);

// Loads the kernel now: with lazy module loading the first launch would otherwise load it, and
// that load waits for all work in flight on the device, i.e. for a spinning kernel.
int LoadSpinKernel();

}  // namespace vramcache::gpu_scenarios
