// Host API of the verify kernel the canaries debug mode uses: it checks that ranges still hold
// the pattern a fill (kernels/fill.h) wrote there, many ranges in one launch. No CUDA types: a
// stream is the value of a cudaStream_t, a result is a cudaError_t value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vramcache::kernels {

// One range to check: [ptr, ptr + bytes) should hold `pattern` repeated as a little-endian
// 4-byte word from ptr (what LaunchFillPattern32 with the same arguments writes).
struct PatternRange {
  const void* ptr = nullptr;
  std::size_t bytes = 0;
  std::uint32_t pattern = 0;
};

// The answer for one range.
struct PatternRangeResult {
  bool intact = true;
  std::size_t first_offset = 0;  // of the first differing byte, from ptr (when !intact)
  std::uint8_t found = 0;        // the byte there
  std::size_t differing_bytes = 0;
};

// Checks `count` ranges (host array) after the work already on `stream` and writes one result
// per range to `results` (host array). One kernel launch covers every range: the ranges are cut
// into tiles of equal size, each thread block takes tiles, and a mismatch lowers its range's
// answer with an atomicMin of (offset, byte), so the first differing byte wins whatever block
// finds it. Temporary device memory comes from the stream-ordered pool (cudaMallocAsync).
//
// SYNCHRONOUS: it waits for `stream` (cudaStreamSynchronize), because the answer is needed on
// the host; a debug path only, never to be called on a capturing stream.
//
// Every non-empty range must be device memory (cudaPointerGetAttributes is asked about its
// first and last byte); otherwise nothing is launched and cudaErrorInvalidValue is returned with
// the range's index in *bad_range (when bad_range is not null). Returns 0 (cudaSuccess) or the
// cudaError_t of the failure. count == 0 succeeds without touching the GPU.
int VerifyPatterns32(const PatternRange* ranges, std::size_t count, PatternRangeResult* results,
                     std::uintptr_t stream, std::size_t* bad_range);

// Loads the verify kernel on the current device now, so that its first use is not a lazy
// module load (which waits for all work in flight on the device).
int LoadVerifyKernel();

}  // namespace vramcache::kernels
