// DebugGuard: the policy of the debug modes that catch memory errors in user kernels.
//   canaries        - guard bands before and after each allocation, filled with kCanaryPattern
//                     when it is handed out and verified when it is freed (or on CheckAll), so
//                     an out-of-bounds write is reported with the block, the band and the
//                     offset instead of corrupting a neighbour silently.
//   poison_on_free  - a freed block is filled with kPoisonPattern, so a use after free reads
//                     NaNs (every float format) instead of plausible stale data.
//   zero_on_alloc   - each allocation is zeroed before it is handed out, so a read of memory
//                     never written gives the same answer on every run.
// unmap_on_free needs the virtual-memory mode and is not handled here.
//
// Layout with canaries (the allocator asks PaddedSize(size) and hands out block + front_bytes):
//
//   block_addr        user_ptr                  user_ptr + user_size           block end
//   | front band 512 B | user bytes ............ | back band (>= 512 B, to the end) |
//
// Policy only: every fill and check goes through the Device, ordered on the block's stream.
// Stateless after construction, so it is as thread-safe as the Device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "allocator/core/config.h"
#include "allocator/device/device.h"

namespace vramcache {

// Guard bands: bytes 0xde 0xc0 0xfe 0x5a repeating. No zero and no 0xff byte, so the commonest
// stray writes (zeros, -1, NaN fills) always differ from it.
inline constexpr std::uint32_t kCanaryPattern = 0x5afec0de;
// Freed memory: 0x7fff in every 16-bit half, a NaN as float16, bfloat16, float32 and float64.
inline constexpr std::uint32_t kPoisonPattern = 0x7fff7fff;
// The front band's size: a multiple of 512 so the user pointer keeps the block's alignment.
inline constexpr std::size_t kCanaryFrontBytes = 512;
// The back band is at least this long and reaches the next multiple of it.
inline constexpr std::size_t kCanaryBackBytes = 512;

// One allocation as the allocator sees it: the block it carved, the part the user got, and the
// stream its work is ordered on.
struct GuardedBlock {
  DevicePtr block_addr = 0;
  std::size_t block_size = 0;
  DevicePtr user_ptr = 0;
  std::size_t user_size = 0;
  StreamHandle stream = 0;
  // The stream was destroyed: VerifyBands skips the block (nothing can be ordered on it).
  bool stream_dead = false;
};

class DebugGuard {
 public:
  // `device` must outlive the guard. Reads poison_on_free, canaries and zero_on_alloc.
  DebugGuard(Device* device, const AllocatorConfig& config);

  bool active() const { return canaries_ || poison_on_free_ || zero_on_alloc_; }
  bool canaries() const { return canaries_; }
  bool poison_on_free() const { return poison_on_free_; }
  bool zero_on_alloc() const { return zero_on_alloc_; }

  // kCanaryFrontBytes with canaries, else 0.
  std::size_t front_bytes() const { return canaries_ ? kCanaryFrontBytes : 0; }
  // The block size to ask for: front band + user_size + back band with canaries (a multiple of
  // 512), user_size without. Saturates at SIZE_MAX, which the allocator rejects as too large.
  std::size_t PaddedSize(std::size_t user_size) const;

  // A block was handed out: writes its bands (canaries) and zeroes its user bytes
  // (zero_on_alloc), ordered on b.stream. InvalidArgument, with nothing written, when the user
  // part does not lie in the block; device errors as the device reports them.
  absl::Status OnAllocate(const GuardedBlock& b);

  // A block is being freed: VerifyBands, then PoisonFreed. The poison is written even when the
  // bands were damaged, so the block goes back to the cache in a known state; the first error
  // is returned.
  absl::Status OnFree(const GuardedBlock& b);

  // Canaries: both bands of `b` still hold the pattern, checked after the work on b.stream
  // (which this synchronizes: a debug path). DataLoss with a report (VerifyBands' format, see
  // docs/debugging.md) when one was overwritten. Skipped (OK) while b.stream is capturing a CUDA
  // graph, where no synchronization is allowed; CheckAll catches such blocks later.
  absl::Status VerifyBands(const GuardedBlock& b);

  // poison_on_free: fills the whole block with kPoisonPattern on b.stream. Call it once no
  // stream can still use the block legitimately (with record_stream, when the free completes),
  // since the fill is ordered after b.stream's work only.
  absl::Status PoisonFreed(const GuardedBlock& b);

  // Canaries: verifies the bands of every block in `live` in one device call, after a device
  // synchronization (so every stream's writes so far count). DataLoss listing every violation
  // (the first 64 in full, then a count) when any band was overwritten. Not during a graph
  // capture: synchronizing would invalidate it, and the device refuses.
  absl::Status CheckAll(const std::vector<GuardedBlock>& live);

 private:
  absl::Status CheckGeometry(const GuardedBlock& b) const;
  // The two band checks of `b`, front then back; empty bands included so indices are fixed.
  static std::vector<PatternCheck> BandChecks(const GuardedBlock& b);
  // Appends one line per damaged band of `b`, given what its front and back checks found.
  static void DescribeViolations(const GuardedBlock& b, const std::optional<PatternMismatch>& front,
                                 const std::optional<PatternMismatch>& back,
                                 std::vector<std::string>* lines);

  Device* const device_;
  const bool canaries_;
  const bool poison_on_free_;
  const bool zero_on_alloc_;
};

}  // namespace vramcache
