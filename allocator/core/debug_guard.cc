// DebugGuard: writes and verifies guard bands, poisons freed blocks and zeroes new ones, through
// Device::Fill and Device::VerifyPatterns; turns what the device finds into reports a user can
// act on (which allocation, which band, how far from the user pointer, which stream).
#include "allocator/core/debug_guard.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace vramcache {
namespace {

// CheckAll lists this many violations in full; a longer message helps nobody.
constexpr std::size_t kMaxListedViolations = 64;

const char* Plural(std::size_t n, const char* one, const char* many) { return n == 1 ? one : many; }

}  // namespace

DebugGuard::DebugGuard(Device* device, const AllocatorConfig& config)
    : device_(device),
      canaries_(config.canaries),
      poison_on_free_(config.poison_on_free),
      zero_on_alloc_(config.zero_on_alloc) {}

std::size_t DebugGuard::PaddedSize(std::size_t user_size) const {
  if (!canaries_) return user_size;
  constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();
  if (user_size > kMax - kCanaryFrontBytes - 2 * kCanaryBackBytes) return kMax;
  const std::size_t back =
      kCanaryBackBytes + (kCanaryBackBytes - user_size % kCanaryBackBytes) % kCanaryBackBytes;
  return kCanaryFrontBytes + user_size + back;
}

absl::Status DebugGuard::CheckGeometry(const GuardedBlock& b) const {
  const bool wraps = b.block_addr + b.block_size < b.block_addr;
  const bool inside = b.user_ptr >= b.block_addr && b.user_size <= b.block_size &&
                      b.user_ptr - b.block_addr <= b.block_size - b.user_size;
  if (b.block_addr == 0 || wraps || !inside) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache debug modes: allocation %#x (%d bytes) does not lie in its block %#x "
        "(%d bytes)",
        b.user_ptr, b.user_size, b.block_addr, b.block_size));
  }
  if (canaries_ && b.user_ptr - b.block_addr != front_bytes()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache canaries: allocation %#x starts %d bytes into its block %#x; the front band "
        "is %d bytes",
        b.user_ptr, b.user_ptr - b.block_addr, b.block_addr, front_bytes()));
  }
  if (canaries_ && b.block_size < PaddedSize(b.user_size)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "vramcache canaries: block %#x has %d bytes; an allocation of %d bytes needs %d with its "
        "bands",
        b.block_addr, b.block_size, b.user_size, PaddedSize(b.user_size)));
  }
  return absl::OkStatus();
}

std::vector<PatternCheck> DebugGuard::BandChecks(const GuardedBlock& b) {
  const DevicePtr user_end = b.user_ptr + b.user_size;
  return {PatternCheck{b.block_addr, b.user_ptr - b.block_addr, kCanaryPattern},
          PatternCheck{user_end, b.block_addr + b.block_size - user_end, kCanaryPattern}};
}

absl::Status DebugGuard::OnAllocate(const GuardedBlock& b) {
  if (!active()) return absl::OkStatus();
  if (absl::Status s = CheckGeometry(b); !s.ok()) return s;
  if (canaries_) {
    for (const PatternCheck& band : BandChecks(b)) {
      if (absl::Status s = device_->Fill({band.ptr, band.bytes, kCanaryPattern}, b.stream);
          !s.ok()) {
        return s;
      }
    }
  }
  if (zero_on_alloc_) return device_->Fill({b.user_ptr, b.user_size, 0}, b.stream);
  return absl::OkStatus();
}

absl::Status DebugGuard::OnFree(const GuardedBlock& b) {
  absl::Status status = VerifyBands(b);
  status.Update(PoisonFreed(b));
  return status;
}

absl::Status DebugGuard::VerifyBands(const GuardedBlock& b) {
  if (!canaries_ || b.stream_dead) return absl::OkStatus();
  if (absl::Status s = CheckGeometry(b); !s.ok()) return s;
  absl::StatusOr<bool> capturing = device_->IsCapturing(b.stream);
  if (!capturing.ok()) return capturing.status();
  if (*capturing) return absl::OkStatus();
  absl::StatusOr<std::vector<std::optional<PatternMismatch>>> found =
      device_->VerifyPatterns(BandChecks(b), b.stream);
  if (!found.ok()) return found.status();
  std::vector<std::string> lines;
  DescribeViolations(b, (*found)[0], (*found)[1], &lines);
  if (lines.empty()) return absl::OkStatus();
  return absl::DataLossError(
      absl::StrCat("vramcache canaries: out-of-bounds write detected when freeing an allocation: ",
                   absl::StrJoin(lines, "; ")));
}

absl::Status DebugGuard::PoisonFreed(const GuardedBlock& b) {
  if (!poison_on_free_) return absl::OkStatus();
  if (absl::Status s = CheckGeometry(b); !s.ok()) return s;
  return device_->Fill({b.block_addr, b.block_size, kPoisonPattern}, b.stream);
}

absl::Status DebugGuard::CheckAll(const std::vector<GuardedBlock>& live) {
  if (!canaries_ || live.empty()) return absl::OkStatus();
  std::vector<PatternCheck> checks;
  checks.reserve(2 * live.size());
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (absl::Status s = CheckGeometry(live[i]); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrFormat("%s (live block %d of %d)", s.message(), i, live.size()));
    }
    for (const PatternCheck& band : BandChecks(live[i])) checks.push_back(band);
  }
  if (absl::Status s = device_->SynchronizeDevice(); !s.ok()) return s;
  absl::StatusOr<std::vector<std::optional<PatternMismatch>>> found =
      device_->VerifyPatterns(checks, /*stream=*/0);
  if (!found.ok()) return found.status();

  std::vector<std::string> lines;
  std::size_t damaged_blocks = 0;
  for (std::size_t i = 0; i < live.size(); ++i) {
    const std::size_t before = lines.size();
    DescribeViolations(live[i], (*found)[2 * i], (*found)[2 * i + 1], &lines);
    if (lines.size() > before) ++damaged_blocks;
  }
  if (lines.empty()) return absl::OkStatus();
  const std::size_t total = lines.size();
  if (total > kMaxListedViolations) {
    lines.resize(kMaxListedViolations);
    lines.push_back(absl::StrFormat("... and %d more", total - kMaxListedViolations));
  }
  return absl::DataLossError(absl::StrFormat(
      "vramcache canaries: %d damaged %s in %d of %d live %s:\n  %s", total,
      Plural(total, "band", "bands"), damaged_blocks, live.size(),
      Plural(live.size(), "allocation", "allocations"), absl::StrJoin(lines, "\n  ")));
}

void DebugGuard::DescribeViolations(const GuardedBlock& b,
                                    const std::optional<PatternMismatch>& front,
                                    const std::optional<PatternMismatch>& back,
                                    std::vector<std::string>* lines) {
  const std::string where =
      absl::StrFormat("allocation %#x (%d bytes, stream %#x) in block %#x (%d bytes)", b.user_ptr,
                      b.user_size, b.stream, b.block_addr, b.block_size);
  const std::size_t front_bytes = b.user_ptr - b.block_addr;
  if (front.has_value()) {
    // Offsets relative to the user pointer: the front band's are negative.
    const std::size_t before_start = front_bytes - front->first_offset;
    lines->push_back(absl::StrFormat(
        "%s: front band [-%d, 0) overwritten: %d of %d bytes differ; the lowest at offset -%d "
        "(start - %d) holds 0x%02x, expected 0x%02x",
        where, front_bytes, front->differing_bytes, front_bytes, before_start, before_start,
        front->found, front->expected));
  }
  if (back.has_value()) {
    const std::size_t back_bytes = b.block_size - front_bytes - b.user_size;
    const std::size_t past_end = back->first_offset;
    lines->push_back(absl::StrFormat(
        "%s: back band [+%d, +%d) overwritten: %d of %d bytes differ; the lowest at offset +%d "
        "(end + %d) holds 0x%02x, expected 0x%02x",
        where, b.user_size, b.user_size + back_bytes, back->differing_bytes, back_bytes,
        b.user_size + past_end, past_end, back->found, back->expected));
  }
}

}  // namespace vramcache
