// Host API of the fill kernels the debug modes use (poisoning freed blocks, zeroing new ones).
// No CUDA types: a stream is the value of a cudaStream_t, a result is a cudaError_t value, so
// plain C++ callers need no CUDA headers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vramcache::kernels {

// The byte a fill with `pattern` leaves `offset` bytes after its start: the pattern repeats as
// a little-endian 4-byte word from the first byte filled, whatever that byte's alignment.
constexpr std::uint8_t FillPatternByte(std::uint32_t pattern, std::size_t offset) {
  return static_cast<std::uint8_t>(pattern >> (8 * (offset % 4)));
}

// Enqueues on `stream` (0: the legacy default stream of the current device) a fill of
// [dst, dst + bytes) with `pattern` repeated as described above. Any alignment and length:
// unaligned head and tail bytes are written one by one, the middle with 16-byte stores.
// Returns 0 (cudaSuccess) once enqueued, else the cudaError_t of the failure: bytes == 0
// enqueues nothing and succeeds; a null dst with bytes > 0 is cudaErrorInvalidValue.
int LaunchFillPattern32(void* dst, std::size_t bytes, std::uint32_t pattern, std::uintptr_t stream);

// LaunchFillPattern32 with a zero pattern.
int LaunchZeroFill(void* dst, std::size_t bytes, std::uintptr_t stream);

// Loads the fill kernels on the current device now. With CUDA's lazy module loading (the
// default) the first launch loads them instead, and that load waits for all work in flight on
// the device, which would turn a debug-mode fill into a hidden device-wide synchronize.
// Returns 0 (cudaSuccess) or the cudaError_t of the failure.
int LoadFillKernels();

}  // namespace vramcache::kernels
